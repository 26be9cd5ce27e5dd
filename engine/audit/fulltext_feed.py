"""The full-text words of the audit trail, fed behind the writes, on both stores.

The words hold exactly the events with ``seq`` up to ``audit_fts_through.seq``: on SQLite the
FTS5 table ``audit_fts`` (schema 16), on PostgreSQL the tsvector table ``audit_words`` (schema
17). Writers do not touch them: feeding them at every COMMIT wrote a new FTS5 segment per
transaction on SQLite (about a tenth of a start's pages and of a bulk decision's time), and on
PostgreSQL the tsvector and its GIN entries cost a third of a bulk decision (README "High
availability", "Benchmark"). Instead :func:`catch_up` indexes the events after the mark and
moves the mark, in one write transaction:

- before every free-text search (engine.audit.search), so a search sees every committed event,
  as before;
- when the server's background runner has nothing else to do (engine.server.runner), so the
  backlog a search may find stays small.

Two processes (or replicas) catching up at once take turns, on SQLite's write lock or on the
mark's row lock on PostgreSQL; the second finds the mark moved and indexes nothing, so no event
is ever indexed twice. A crash in between leaves the mark and the words as they were (one
transaction). Audit events commit densely in ``seq`` order on both stores (engine.audit.log),
so what a reader sees after the mark is always a gapless run.
"""
from __future__ import annotations

from typing import Any

from signoff.engine.store.locks import is_pg

_MARK_SQL = "SELECT (SELECT seq FROM audit_fts_through), (SELECT max(seq) FROM audit)"
#: SQLite: the events after the mark, into the index in one statement (FTS5 writes a new index
#: segment per statement, so one for many events keeps the index compact)
_INDEX_SQL = ("INSERT INTO audit_fts(rowid, action, actor, namespace, flow_id, execution_id, request_id, data)"
              " SELECT seq, action, actor, namespace, flow_id, execution_id, request_id, data FROM audit"
              " WHERE seq > ? ORDER BY seq")
#: PostgreSQL: the fields tokenized in Python (engine.audit.fulltext), in this order, read in
#: pages of this many events
_PG_FIELDS_SQL = ("SELECT seq, action, actor, namespace, flow_id, execution_id, request_id, data FROM audit"
                  " WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?")
_PG_PAGE = 2000


def behind(conn: Any) -> tuple[int, int] | None:
    """(the mark, the newest event) when events wait to be indexed, else None. ``conn``: an
    engine connection or transaction, or a plain psycopg connection (the statement has no
    parameters)."""
    through, head = conn.execute(_MARK_SQL).fetchone()
    through = through or 0
    return (through, head) if head is not None and head > through else None


def catch_up(db: Any) -> int:
    """Index the events appended since the last catch-up; how many were indexed. ``db`` is an
    engine database, SQLite or PostgreSQL."""
    if behind(db.connection()) is None:
        return 0  # (the usual case: one read, no lock)
    with db.write() as tx:
        if is_pg(tx):  # one catcher at a time: the others wait here, then find nothing to do
            tx.execute("SELECT seq FROM audit_fts_through FOR UPDATE")
        waiting = behind(tx)  # (again under the lock: another process may have done it)
        if waiting is None:
            return 0
        through, head = waiting
        feed(tx, through, head)
        return int(head - through)


def feed(tx: Any, through: int, head: int) -> None:
    """Index the events after ``through`` up to ``head`` (the newest) and move the mark to
    ``head``, inside the caller's write transaction, which keeps other catchers out."""
    if is_pg(tx):
        _index_pg(tx, through, head)
    else:
        tx.execute(_INDEX_SQL, (through,))
    tx.execute("UPDATE audit_fts_through SET seq=?", (head,))


def _index_pg(tx: Any, through: int, head: int) -> None:
    """PostgreSQL: the words of the events after ``through`` up to ``head`` into ``audit_words``
    (COPY, a page of events at a time)."""
    from signoff.engine.audit.fulltext import tsvector_literal
    from signoff.engine.store.pg import copy_rows

    while through < head:
        rows = tx.execute(_PG_FIELDS_SQL, (through, head, _PG_PAGE)).fetchall()
        if not rows:
            break
        copy_rows(tx.sent(), "COPY audit_words (seq, words) FROM STDIN",
                  [(row[0], tsvector_literal(row[1:])) for row in rows])
        through = rows[-1][0]


def mark_complete(tx: Any) -> None:
    """After the index was rebuilt from every stored event (``'rebuild'``): it is complete."""
    tx.execute("UPDATE audit_fts_through SET seq=(SELECT coalesce(max(seq), 0) FROM audit)")
