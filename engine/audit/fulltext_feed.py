"""SQLite's full-text index of the audit trail, fed behind the writes.

The index (``audit_fts``, an FTS5 table over ``audit``) holds exactly the events with ``seq`` up
to ``audit_fts_through.seq`` (schema 16). Writers do not touch it: feeding it at every COMMIT
wrote a new index segment per transaction, about a tenth of a start's pages and of a bulk
decision's time (README "High availability", "Benchmark"). Instead :func:`catch_up` indexes the
events after the mark, in one statement, and moves the mark, in one write transaction:

- before every free-text search (engine.audit.search), so a search sees every committed event,
  as before;
- when the server's background runner has nothing else to do (engine.server.runner), so the
  backlog a search may find stays small.

Two processes catching up at once take turns on SQLite's write lock; the second finds the mark
moved and indexes nothing, so no event is ever indexed twice. A crash in between leaves the mark
and the index as they were (one transaction). PostgreSQL writes its search column with the row
(engine.audit.fulltext) and has nothing to catch up.
"""
from __future__ import annotations

from typing import Any

_MARK_SQL = "SELECT (SELECT seq FROM audit_fts_through), (SELECT max(seq) FROM audit)"
#: the events after the mark, into the index in one statement (FTS5 writes a new index segment
#: per statement, so one for many events keeps the index compact)
_INDEX_SQL = ("INSERT INTO audit_fts(rowid, action, actor, namespace, flow_id, execution_id, request_id, data)"
              " SELECT seq, action, actor, namespace, flow_id, execution_id, request_id, data FROM audit"
              " WHERE seq > ? ORDER BY seq")


def _behind(conn: Any) -> tuple[int, int] | None:
    """(the mark, the newest event) when events wait to be indexed, else None."""
    through, head = conn.execute(_MARK_SQL).fetchone()
    through = through or 0
    return (through, head) if head is not None and head > through else None


def catch_up(db: Any) -> int:
    """Index the events appended since the last catch-up; how many were indexed. ``db`` is an
    engine Database; nothing happens on PostgreSQL."""
    if getattr(db, "dialect", "sqlite") != "sqlite" or _behind(db.connection()) is None:
        return 0  # (the usual case: one read, no write lock)
    with db.write() as tx:
        behind = _behind(tx)  # (again under the write lock: another process may have done it)
        if behind is None:
            return 0
        through, head = behind
        tx.execute(_INDEX_SQL, (through,))
        tx.execute("UPDATE audit_fts_through SET seq=?", (head,))
        return int(head - through)


def mark_complete(tx: Any) -> None:
    """After the index was rebuilt from every stored event (``'rebuild'``): it is complete."""
    tx.execute("UPDATE audit_fts_through SET seq=(SELECT coalesce(max(seq), 0) FROM audit)")
