"""Row locks and retries for writers that may run at the same time on PostgreSQL.

SQLite runs one writer at a time (BEGIN IMMEDIATE), so a read followed by a write in one
transaction is never raced there. PostgreSQL's READ COMMITTED runs writers side by side:
whatever a transaction reads and then decides on must be locked (``FOR UPDATE``), claimed by
a guarded UPDATE, or skipped when another replica holds it (``FOR UPDATE SKIP LOCKED``).
These helpers give the SQL for the connection's store (empty on SQLite), and :func:`retrying`
re-runs a whole transaction that PostgreSQL aborted as a deadlock victim or a serialization
failure, so such errors never reach a user.
"""
from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from signoff.engine.errors import StorageError

T = TypeVar("T")


class RetryableStorageError(StorageError):
    """The transaction was aborted by the database (deadlock victim, serialization failure) and
    may simply be run again."""


def is_pg(conn: Any) -> bool:
    return getattr(conn, "dialect", "sqlite") == "postgresql"


def for_update(conn: Any) -> str:
    """`` FOR UPDATE`` on PostgreSQL (lock the rows read until COMMIT); nothing on SQLite."""
    return " FOR UPDATE" if is_pg(conn) else ""


def skip_locked(conn: Any) -> str:
    """`` FOR UPDATE SKIP LOCKED`` on PostgreSQL (rows another replica is working on are left
    out); nothing on SQLite."""
    return " FOR UPDATE SKIP LOCKED" if is_pg(conn) else ""


def advisory_lock(conn: Any, *key: str) -> None:
    """PostgreSQL: a transaction-scoped lock on ``key`` (e.g. one flow's revision numbers)."""
    if is_pg(conn):
        conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(?, 0))", ("\x1f".join(key),))


def retrying(db: Any, body: Callable[[Any], T], *, attempts: int = 10) -> T:
    """``body(tx)`` in a write transaction, run again (after a short random pause) when the
    database aborted it as retryable. The body must only touch the database."""
    for attempt in range(attempts):
        try:
            with db.write() as tx:
                return body(tx)
        except RetryableStorageError:
            if attempt == attempts - 1:
                raise
            time.sleep(random.uniform(0.005, 0.05) * (attempt + 1))
    raise AssertionError("unreachable")


def lock_requests(tx: Any, request_ids: list[str]) -> None:
    """PostgreSQL: lock these requests' rows now, in id order, so two bulk actions over
    overlapping requests queue behind each other instead of deadlocking."""
    if is_pg(tx) and request_ids:
        for start in range(0, len(request_ids), 1000):
            part = sorted(request_ids[start:start + 1000])
            marks = ",".join("?" * len(part))
            tx.execute(f"SELECT id FROM requests WHERE id IN ({marks}) ORDER BY id FOR UPDATE", part)


def lock_work_of(tx: Any, request_ids: list[str]) -> None:
    """PostgreSQL: lock the work rows (engine.runtime.work) of these requests' executions, those
    that have one, before the requests themselves. A runner holds an execution's work row from
    its claim to its commit and, when the execution ends, locks the execution's pending requests
    to close them (runtime.runner.close_pending); a decision, a cancel or an expiry locks a
    request and then queues its execution, which writes that work row. Taken in opposite
    orders the two deadlocked. Everyone now takes the work row first and the request second, so
    a decision racing the end of its execution waits for the runner's step (or the runner
    skips the row, SKIP LOCKED) instead."""
    if is_pg(tx) and request_ids:
        for start in range(0, len(request_ids), 1000):
            part = sorted(request_ids[start:start + 1000])
            marks = ",".join("?" * len(part))
            tx.execute(f"SELECT execution_id FROM work WHERE execution_id IN (SELECT execution_id FROM requests"
                       f" WHERE id IN ({marks})) ORDER BY execution_id FOR UPDATE", part)


@contextmanager
def write_behind(tx: Any) -> Iterator[Any]:
    """Queue the block's plain writes and send them batched (engine.store.behind): PostgreSQL in
    one pipeline (engine.store.pg.Session.write_behind), SQLite as one ``executemany`` per
    statement. Gives what the block writes through: ``tx`` itself on PostgreSQL, a stand-in
    for the connection on SQLite."""
    if is_pg(tx):
        with tx.write_behind():
            yield tx
        return
    from signoff.engine.store.behind import SqliteWriteBehind

    if isinstance(tx, SqliteWriteBehind):  # already inside a block
        yield tx
        return
    behind = SqliteWriteBehind(tx)
    yield behind
    behind.finish()


def defer_writes(tx: Any) -> None:
    """PostgreSQL: the rest of this transaction's plain writes go out with its COMMIT
    (engine.store.pg.Session.defer_writes); nothing on SQLite."""
    if is_pg(tx):
        tx.defer_writes()
