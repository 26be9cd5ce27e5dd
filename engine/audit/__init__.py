"""The append-only, hash-chained audit trail."""
from signoff.engine.audit.log import append_event

__all__ = ["append_event"]
