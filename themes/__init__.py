"""Console themes, one TOML file each; a package so they ship with a plain `pip install .`."""
