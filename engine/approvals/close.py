"""Ending a pending request: its final state, the result document, and its timers retired.

Decisions, cancels, expiries and the end of an execution all close requests the same way,
so the `result` shape (state, by, on, plus details) is written in this one place.
"""
from __future__ import annotations

import sqlite3
from typing import Any

from signoff.engine import jsonutil


def close_request(tx: sqlite3.Connection, request_id: str, state: str, *, by: str, now: str,
                  **details: Any) -> dict[str, Any]:
    result = {"state": state, "by": by, "on": now, **details}
    # guarded: a request is closed once; callers hold its row lock (PostgreSQL) and saw it pending
    tx.execute("UPDATE requests SET state=?, decided_at=?, result=? WHERE id=? AND state='PENDING'",
               (state, now, jsonutil.dumps(result), request_id))
    retire_timers(tx, request_id, now)
    return result


def retire_timers(tx: sqlite3.Connection, request_id: str, now: str) -> None:
    """Mark the request's outstanding timers (expiry, reminders) done."""
    tx.execute("UPDATE timers SET done_at=? WHERE request_id=? AND done_at IS NULL", (now, request_id))
