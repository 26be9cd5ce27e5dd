"""Triggers: flows that start by themselves (Kestra's Schedule, Webhook and Flow triggers)."""
