"""Appending audit events.

Each event's hash is SHA-256 over the previous event's hash and the event's own canonical
content, so changing, removing or reordering any stored row breaks every hash after it.
Appends happen inside the caller's write transaction: the event commits with the change it
describes, or not at all.
"""
from __future__ import annotations

import sqlite3
from typing import Any

from signoff.engine import jsonutil

GENESIS = "0" * 64


def event_content(seq: int, at: str, actor: str, action: str, namespace: str | None, flow_id: str | None,
                  execution_id: str | None, request_id: str | None, data_json: str) -> str:
    return jsonutil.dumps([seq, at, actor, action, namespace, flow_id, execution_id, request_id, data_json])


def event_hash(prev_hash: str, content: str) -> str:
    import hashlib  # here, not at the top: the console starts without writing (and OpenSSL loads slowly)

    return hashlib.sha256((prev_hash + content).encode("utf-8")).hexdigest()


def append_event(tx: sqlite3.Connection, *, at: str, actor: str, action: str, namespace: str | None = None,
                 flow_id: str | None = None, execution_id: str | None = None, request_id: str | None = None,
                 data: dict[str, Any] | None = None) -> int:
    last = tx.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
    data_json = jsonutil.dumps(data or {})
    digest = event_hash(prev, event_content(seq, at, actor, action, namespace, flow_id, execution_id,
                                            request_id, data_json))
    tx.execute(
        "INSERT INTO audit(seq, at, actor, action, namespace, flow_id, execution_id, request_id, data, prev_hash, hash)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        (seq, at, actor, action, namespace, flow_id, execution_id, request_id, data_json, prev, digest))
    if hasattr(tx, "audit_index_from"):
        # a signoff connection (engine.store.db): the full-text index is fed with everything
        # this transaction appended, in one statement, just before it commits
        if tx.audit_index_from is None or seq < tx.audit_index_from:
            tx.audit_index_from = seq
    else:
        index_events(tx, seq)
    return seq


#: feeds the full-text index (schema 2, engine.audit.search) from stored rows
_INDEX_SQL = ("INSERT INTO audit_fts(rowid, action, actor, namespace, flow_id, execution_id, request_id, data)"
              " SELECT seq, action, actor, namespace, flow_id, execution_id, request_id, data FROM audit"
              " WHERE seq >= ? ORDER BY seq")


def index_events(tx: sqlite3.Connection, from_seq: int) -> None:
    """Add the events from ``from_seq`` on to the full-text index, inside ``tx``.

    One statement for many events matters: FTS5 writes a new index segment at every statement
    or savepoint boundary. A database older than the index (schema 1) has nothing to feed;
    its migration builds the index from the stored rows."""
    try:
        tx.execute(_INDEX_SQL, (from_seq,))
    except sqlite3.OperationalError as exc:
        if "no such table: audit_fts" not in str(exc):
            raise
