"""Ending a pending request: its final state, the result document, and its timers retired.

Decisions, cancels, expiries and the end of an execution all close requests the same way,
so the `result` shape (state, by, on, plus details) is written in this one place.
"""
from __future__ import annotations

import sqlite3
from typing import Any

from signoff.engine import jsonutil
from signoff.engine.clock import seconds_between


def close_request(tx: sqlite3.Connection, request_id: str, state: str, *, by: str, now: str,
                  created_at: str | None = None, elapsed: float | None = None, result_json: str | None = None,
                  **details: Any) -> None:
    """``created_at`` or ``elapsed`` (seconds from it to ``now``): when the caller has the
    request's row (saves a read per request). ``details``: the result's other members; or
    ``result_json``, the whole :func:`result_document` as canonical JSON already (a bulk
    decision encodes it once for all its items)."""
    # guarded: a request is closed once; callers hold its row lock (PostgreSQL) and saw it pending.
    # decision_s (creation to closing) is what `signoff stats` sorts for its percentiles.
    if elapsed is None:
        if created_at is None:
            row = tx.execute("SELECT created_at FROM requests WHERE id=?", (request_id,)).fetchone()
            created_at = row[0] if row is not None else None
        elapsed = seconds_between(created_at, now) if created_at is not None else None
    tx.execute("UPDATE requests SET state=?, decided_at=?, result=?, decision_s=? WHERE id=? AND state='PENDING'",
               (state, now, jsonutil.dumps(result_document(state, by, now, **details)) if result_json is None
                else result_json, elapsed, request_id))
    retire_timers(tx, request_id, now)


def result_document(state: str, by: str, now: str, **details: Any) -> dict[str, Any]:
    """A closed request's ``result`` column: its state, who closed it, when, and the details."""
    return {"state": state, "by": by, "on": now, **details}


def retire_timers(tx: sqlite3.Connection, request_id: str, now: str) -> None:
    """Mark the request's outstanding timers (expiry, reminders) done."""
    tx.execute("UPDATE timers SET done_at=? WHERE request_id=? AND done_at IS NULL", (now, request_id))
