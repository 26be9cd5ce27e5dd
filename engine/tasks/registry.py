"""Imports every leaf handler module so :data:`engine.tasks.base.HANDLERS` is complete."""
from __future__ import annotations

from signoff.engine.tasks.base import HANDLERS, Handler


def load_handlers() -> dict[str, Handler]:
    """The registry of leaf task handlers by Kestra full type name."""
    from signoff.engine.tasks import http, log, notify, outputs, shell  # noqa: F401 - registers handlers

    return HANDLERS
