"""Governance: the policy file (who may do what)."""
