"""Example flows shipped with signoff (one YAML file each); loaded in demo mode."""
