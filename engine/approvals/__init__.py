"""Approval requests and decisions: creating requests, deciding them, outcomes."""
