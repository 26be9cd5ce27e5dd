"""Notifications to people about requests (created, reminded, escalated, decided...).

Targets come from a notifications file; messages are queued in the database outbox in the
same transaction as the change they announce, and delivered afterwards with retries, so a
slow or failing endpoint never blocks or undoes a decision.
"""
