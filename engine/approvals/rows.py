"""The pending list's row, defined once: its fields and its order.

The service reads rows as compact tuples of these fields (``ApprovalService.pending_rows``), the
server pages the list in this order, the remote backend turns the server's summaries into the
same tuples, and the console's list (console.widgets.pending_table) keeps its rows sorted by the
same key, so a live insert lands where a fresh read would put it.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: the fields of a compact pending row, in order
PENDING_ROW_FIELDS = ("id", "execution_id", "namespace", "flow_id", "task_id", "summary", "requested_by",
                      "created_at", "due_at", "approvals", "required")

#: what a summary without the field means (a request needs one approval unless it says more)
_DEFAULTS: dict[str, Any] = {"approvals": 0, "required": 1}

#: the order as SQL over the requests table aliased ``r`` (the same as :func:`sort_key`)
PENDING_ORDER_SQL = "r.due_at IS NULL, r.due_at, r.created_at, r.id"

SortKey = tuple[bool, str, str, str]


def sort_key(due_at: str | None, created_at: str, request_id: str) -> SortKey:
    """The pending list's order: due time (none last), then creation, then id. Times are
    fixed-width UTC text (engine.clock.format_time), so they sort as text."""
    return (due_at is None, due_at or "", created_at, request_id)


def pending_sort_key(summary: Mapping[str, Any]) -> SortKey:
    """:func:`sort_key` of a request summary (or database row)."""
    return sort_key(summary["due_at"], summary["created_at"], summary["id"])


def row_tuple(summary: Mapping[str, Any]) -> tuple[Any, ...]:
    """A request summary (the service's or the server's dict) as a compact pending row."""
    return tuple(summary.get(name, _DEFAULTS.get(name)) for name in PENDING_ROW_FIELDS)
