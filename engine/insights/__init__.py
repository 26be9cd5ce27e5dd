"""Insights: how long approvals take and where they pile up (signoff stats, the Insights view)."""
