"""Queued writes ("write-behind") for a loop that writes a few rows per item: the bulk decision.

Inside the block, plain writes (INSERT/UPDATE/DELETE of one table, no RETURNING, no subquery)
and savepoints are kept on this side, and go to the database together, grouped into one
``executemany`` per run of the same statement, before the next statement that reads, or at the
end of the block. PostgreSQL sends them in one pipeline (engine.store.pg.Session.write_behind):
a network round trip for many items instead of one per statement. SQLite runs them through
:class:`SqliteWriteBehind`: one ``executemany`` per statement instead of eight ``execute`` calls
and two savepoints per item (a 10,000-item bulk spent ~110 us per item in statements).

Rules for code inside the block (both stores):
- a queued write's cursor has no rowcount: only code that does not read it runs here;
- writes are sent grouped by table (each table's writes in their order), so writes to different
  tables must not depend on each other (no triggers or cascades between them);
- a savepoint whose writes are all still queued is kept on this side: ROLLBACK TO drops the
  writes queued after it, RELEASE drops the savepoint; it reaches the database only when a read
  in between makes the queue go out;
- audit events are staged, chained and written after the block's last write (engine.audit.log),
  so code inside the block does not read the audit rows it appends.
Should the database refuse a queued write, the error is raised by the statement that sent the
batch, and every later statement of the transaction raises it again: the caller can only roll
back, so nothing is half-applied.
"""
from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator, Mapping
from functools import lru_cache
from typing import Any

from signoff.engine.store.sqltext import statement_kind

#: a savepoint kept on this side (queued as ``(SAVEPOINT_MARK, name)``)
SAVEPOINT_MARK: Any = object()
TABLE = re.compile(r'\s*(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+"?(\w+)', re.IGNORECASE)


def plain_write(sql: str) -> bool:
    """An INSERT, UPDATE or DELETE of one table that returns no rows and reads no other table
    (may be queued)."""
    upper = sql.upper()
    return TABLE.match(sql) is not None and "RETURNING" not in upper and "SELECT" not in upper


#: what :func:`classify` says of a statement text: a plain write, a savepoint statement
#: (SAVEPOINT / RELEASE / ROLLBACK TO), another transaction-control statement, or a read
WRITE, SAVEPOINT_STATEMENT, CONTROL, READ = "write", "savepoint", "control", "read"

# performance: the three questions below are asked of every statement of a bulk decision (a
# handful of texts, 10,000 times each; two regular expressions per statement cost ~5 us), so
# each answer is kept by statement text. The caches are bounded: texts with values written in
# are not worth keeping for long.


@lru_cache(maxsize=4096)
def classify(sql: str) -> str:
    """WRITE, SAVEPOINT_STATEMENT, CONTROL or READ."""
    word = statement_kind(sql)
    if word in ("SAVEPOINT", "RELEASE") or (word == "ROLLBACK" and " TO " in f" {sql.upper()} "):
        return SAVEPOINT_STATEMENT
    if word:
        return CONTROL
    return WRITE if plain_write(sql) else READ


def no_params(params: Any) -> bool:
    if params.__class__ is tuple:  # (the usual case, without the Mapping check's ~0.3 us)
        return not params
    return params is None or (not isinstance(params, Mapping) and len(params) == 0)


@lru_cache(maxsize=4096)
def savepoint_parts(sql: str) -> tuple[str, str]:
    """SAVEPOINT / RELEASE / ROLLBACK and the savepoint's name, of a savepoint statement."""
    return statement_kind(sql), sql.split()[-1]


@lru_cache(maxsize=4096)
def table_of(sql: str) -> str | None:
    """The table a plain write writes (lower case), or None for another statement."""
    found = TABLE.match(sql)
    return found.group(1).lower() if found is not None else None


def queue_savepoint(queued: list[tuple[Any, Any]], kind: str, sql: str, name: str) -> None:
    """SAVEPOINT / RELEASE / ROLLBACK TO ``name`` inside the block (see the module docstring)."""
    if kind == "SAVEPOINT":
        queued.append((SAVEPOINT_MARK, name))
        return
    mark = None
    for i in range(len(queued) - 1, -1, -1):  # (the newest first: a bulk item's is a few back)
        if queued[i][0] is SAVEPOINT_MARK and queued[i][1] == name:
            mark = i
            break
    if mark is None:  # the savepoint went out already: so does this
        queued.append((sql, None))
    elif kind == "ROLLBACK":
        del queued[mark + 1:]  # the savepoint itself stays, as on the server
    else:
        del queued[mark]


def keep_staged_in_step(savepoints: list[tuple[str, int]], staged: list[Any], kind: str, name: str) -> None:
    """SAVEPOINT / RELEASE / ROLLBACK TO ``name`` for the audit events staged in a transaction
    (``savepoints``: open ones, with how many events were staged when each was made): a
    rolled-back savepoint drops the events staged since it."""
    if kind == "SAVEPOINT":
        savepoints.append((name, len(staged)))
        return
    for i in range(len(savepoints) - 1, -1, -1):
        if savepoints[i][0] == name:
            if kind == "ROLLBACK":
                del staged[savepoints[i][1]:]
                del savepoints[i + 1:]
            else:
                del savepoints[i:]
            return


def batches(queued: list[tuple[Any, Any]]) -> list[tuple[str, list[Any] | None]]:
    """The queued statements to send: between savepoint statements (which keep their place),
    grouped by table (each table's statements in their order), runs of one statement text as
    one batch of parameter rows; a statement without parameters alone (rows None)."""
    out: list[tuple[str, list[Any] | None]] = []
    segment: dict[str, list[tuple[str, Any]]] = {}

    def close_segment() -> None:
        for statements in segment.values():
            run_sql: str | None = None  # the statement of the batch being filled
            run: list[Any] = []
            for sql, params in statements:
                if sql == run_sql and not no_params(params):
                    run.append(params)  # (the usual case: the same text again, with values)
                elif no_params(params):
                    out.append((sql, None))
                    run_sql = None
                else:
                    run = [params]
                    out.append((sql, run))
                    run_sql = sql
        segment.clear()

    for sql, params in queued:
        if sql is SAVEPOINT_MARK:  # a savepoint still open when the queue goes out: made real
            close_segment()
            out.append((f"SAVEPOINT {params}", None))
            continue
        table = table_of(sql)
        if table is None:  # RELEASE / ROLLBACK TO of a savepoint that went out before
            close_segment()
            out.append((sql, None))
            continue
        statements = segment.get(table)
        if statements is None:
            statements = segment[table] = []
        statements.append((sql, params))
    close_segment()
    return out


class _Queued:
    """What ``execute`` of a queued write returns: a cursor with no rows and no rowcount."""

    rowcount = -1
    lastrowid = None

    def fetchone(self) -> None:
        return None

    def fetchall(self) -> list[Any]:
        return []

    def __iter__(self) -> Iterator[Any]:
        return iter(())


_QUEUED = _Queued()


class SqliteWriteBehind:
    """SQLite's write-behind: the connection as code inside the block sees it (``execute``,
    ``executemany``, ``stage_audit``; anything else is the connection's own). The block's
    transaction is the connection's (BEGIN IMMEDIATE holds the write lock throughout).

    Savepoints are kept as marks on a stack, not in the queue (performance: a bulk decision
    makes and releases one per item, ~3 us each through the queue): a mark notes where in the
    queue, and after how many staged events, it was made; ROLLBACK TO cuts both back to it,
    RELEASE drops it. A read sends the queue and makes the marks inside it real savepoints in
    their places; a mark at the queue's end simply moves to the new queue's start."""

    dialect = "sqlite"

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._queued: list[tuple[Any, Any]] = []
        #: audit events of the block, chained and written by :meth:`finish`
        self.staged_audit: list[tuple[Any, ...]] = []
        #: open savepoints, innermost last: [name, place in the queue (None once sent), events
        #: staged when it was made]
        self._marks: list[list[Any]] = []
        self._broken: BaseException | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)

    def execute(self, sql: str, params: Any = ()) -> Any:
        if self._broken is not None:
            raise self._broken
        kind = classify(sql)
        if kind == WRITE:
            self._queued.append((sql, params))
            return _QUEUED
        if kind == READ:
            self._send()
            return self._conn.execute(sql, params)
        if kind == SAVEPOINT_STATEMENT:
            self._savepoint(sql)
            return _QUEUED
        raise RuntimeError(f"{sql.split()[0]} inside a write-behind block")

    def executemany(self, sql: str, seq: Any) -> Any:
        self._send()
        return self._conn.executemany(sql, seq)

    def stage_audit(self, event: tuple[Any, ...]) -> None:
        self.staged_audit.append(event)

    def _savepoint(self, sql: str) -> None:
        word, name = savepoint_parts(sql)
        marks = self._marks
        if word == "SAVEPOINT":
            marks.append([name, len(self._queued), len(self.staged_audit)])
            return
        for i in range(len(marks) - 1, -1, -1):
            if marks[i][0] == name:
                break
        else:  # no such savepoint: the database says so when the statement is sent
            self._queued.append((sql, None))
            return
        _name, place, staged = marks[i]
        if word == "ROLLBACK":  # the savepoint itself stays, as in the database
            del self.staged_audit[staged:]
            del marks[i + 1:]
            if place is not None:
                del self._queued[place:]
            else:  # sent: everything queued came after it; the database undoes the rest
                self._queued[:] = [(sql, None)]
        else:  # RELEASE, of the savepoints made after it as well
            del marks[i:]
            if place is None:
                self._queued.append((sql, None))

    def _send(self) -> None:
        queued, self._queued = self._queued, []
        # the marks inside the queue are made real in their places; one at its end moves along
        inside: list[list[Any]] = []
        for mark in self._marks:
            if mark[1] == len(queued):
                mark[1] = 0
            elif mark[1] is not None:
                inside.append(mark)
        if not queued:
            return
        try:
            start = 0
            for mark in inside:
                self._run(queued[start:mark[1]])
                self._conn.execute(f"SAVEPOINT {mark[0]}")
                start, mark[1] = mark[1], None
            self._run(queued[start:] if start else queued)
        except BaseException as exc:
            self._broken = exc
            raise

    def _run(self, queued: list[tuple[Any, Any]]) -> None:
        for sql, rows in batches(queued):
            if rows is None:
                self._conn.execute(sql)
            elif len(rows) == 1:
                self._conn.execute(sql, rows[0])
            else:
                self._conn.executemany(sql, rows)

    def finish(self) -> None:
        """The end of the block: the queued writes, then the staged audit events, chained after
        the stored head (engine.audit.log.write_staged_sqlite)."""
        from signoff.engine.audit.log import write_staged_sqlite

        self._send()
        if self.staged_audit:
            events, self.staged_audit = self.staged_audit, []
            try:
                write_staged_sqlite(self._conn, events)
            except BaseException as exc:
                self._broken = exc
                raise
