"""The PostgreSQL store: several `signoff serve` replicas sharing one database.

:class:`PgDatabase` has the interface of the SQLite :class:`~signoff.engine.store.db.Database`
(``connection``, ``write``, ``begin``/``commit``/``rollback``, ``query``, ``foreground``), so
the engine has one code path for both. Rules for engine SQL (the dialect layer):

- Write SQLite's placeholders, ``?`` and ``:name``; they are translated (engine.store.sqltext).
- Write the common subset: upserts as ``INSERT ... ON CONFLICT (cols) DO UPDATE/DO NOTHING``
  (never ``INSERT OR ...``), ``CASE`` instead of two-argument ``min``/``max``, no ``PRAGMA``,
  no SQLite JSON functions; quote the column ``"user"``. Where the stores differ, branch on
  ``db.dialect`` (``"sqlite"`` or ``"postgresql"``) in the one module that needs it.
- Rows answer ``row["name"]`` and ``row[0]`` and ``dict(row)``, as ``sqlite3.Row``.
- Transactions: ``db.write()`` (or ``begin``/``commit``). Savepoints are the plain statements
  ``SAVEPOINT x`` / ``RELEASE x`` / ``ROLLBACK TO x``. Outside a transaction each statement
  runs on its own (autocommit) on a pooled connection; inside one, the thread keeps its
  connection until COMMIT or ROLLBACK. BEGIN and savepoints are owed and go out with the next
  statement, so code that uses psycopg directly inside a transaction (COPY) takes the
  connection from ``session.sent()``, never ``session.conn``.
- Audit events are staged by ``append_event`` and written at COMMIT, under an advisory lock
  taken last in the transaction: sequence numbers are dense and in commit order, and the hash
  chain is continuous across replicas (engine.audit.log).
- Schema migrations run in one transaction under an advisory lock, so of several replicas
  starting at once exactly one migrates; the others wait and find the schema current.
- Connection failures and every other database error are a :class:`StorageError` naming the
  database (the password is never shown).

Connections come from a psycopg_pool ``ConnectionPool`` (size: ``$SIGNOFF_DB_POOL``, default
20 per process), so the database's connections grow with replicas, not with clients.
"""
from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg.pq import ExecStatus, TransactionStatus
from psycopg.rows import RowMaker, tuple_row
from psycopg_pool import ConnectionPool, PoolTimeout

from signoff.engine.errors import StorageError
from signoff.engine.store import pg_schema
from signoff.engine.store.behind import (
    CONTROL,
    SAVEPOINT_STATEMENT,
    WRITE,
    batches,
    classify,
    keep_staged_in_step,
    no_params,
    queue_savepoint,
    savepoint_parts,
)
from signoff.engine.store.db import AuditListener, CommitReads, tell_audit_listeners
from signoff.engine.store.foreground import ForegroundGate
from signoff.engine.store.locks import RetryableStorageError
from signoff.engine.store.schema import SCHEMA_VERSION
from signoff.engine.store.sqltext import statement_kind, to_psycopg

#: advisory lock keys (pg_advisory_xact_lock): one per purpose, "SIGN" + a number
MIGRATE_LOCK = 0x5349474E0001
AUDIT_LOCK = 0x5349474E0002
#: held shared by every large bulk decision while it runs; runners wait while any replica holds
#: it (engine.store.foreground)
BULK_LOCK = 0x5349474E0003
_POOL_TIMEOUT = 60.0
#: once the process is stopping (:meth:`PgDatabase.stop_waiting`): how long after the stop
#: waits for a connection may last; and the slice a waiting borrower checks the stop in
_STOPPING_WAIT_S = 2.0
_WAIT_SLICE_S = 0.5
#: a pooled connection idle for longer than this is tested before it is lent again
_CHECK_IDLE_S = 1.0

# the pool reports failed connection attempts by logging; the engine reports them as errors
logging.getLogger("psycopg.pool").addHandler(logging.NullHandler())


def is_database_url(text: str) -> bool:
    return text.startswith(("postgresql://", "postgres://"))


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", url)


class Row(tuple[Any, ...]):
    """A result row read by position or by column name, like ``sqlite3.Row``."""

    _names: dict[str, int]

    def __new__(cls, values: Sequence[Any], names: dict[str, int]) -> Row:
        row = super().__new__(cls, values)
        row._names = names
        return row

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            try:
                return tuple.__getitem__(self, self._names[key])
            except KeyError:
                raise IndexError(f"no such column: {key}") from None
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._names)


def _returns_rows(cursor: Any) -> bool:
    """Did the cursor's statement return rows (what ``cursor.description is not None`` says)?
    Performance: ``description`` builds a Column object per column on every access (a start
    ran ~50 of them); the result's status and field count are plain attributes."""
    res = cursor.pgresult
    return res is not None and (res.nfields > 0 or res.status in _ROW_STATUSES)


def _column_names(cursor: Any) -> dict[str, int]:
    """Column name -> index of the cursor's result (the first of equal names), without building
    ``cursor.description`` (see :func:`_returns_rows`)."""
    res = cursor.pgresult
    if res is None:
        return {}
    names: dict[str, int] = {}
    for i in range(res.nfields):
        name = res.fname(i)
        if name is not None:  # (a COPY's result has fields without names)
            names.setdefault(name.decode("utf-8", "replace"), i)
    return names


def _row_factory(cursor: Any) -> RowMaker[Row]:
    names = _column_names(cursor)

    def make(values: Sequence[Any]) -> Row:
        return Row(values, names)

    return make


class Cursor:
    """What ``execute`` returns: rows (fetched), ``rowcount``, iteration, like sqlite3's cursor."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self.row_factory: Any = _row_factory
        self.rowcount = -1
        self._rows: list[Any] = []
        self._at = 0

    def execute(self, sql: str, params: Any = None) -> Cursor:
        self.rowcount, self._rows = self._session.run(sql, params, self.row_factory)
        self._at = 0
        return self

    def executemany(self, sql: str, seq: Any) -> Cursor:
        self.rowcount = self._session.run_many(sql, seq)
        self._rows, self._at = [], 0
        return self

    def fetchone(self) -> Any:
        if self._at < len(self._rows):
            self._at += 1
            return self._rows[self._at - 1]
        return None

    def fetchmany(self, size: int = 1) -> list[Any]:
        out = self._rows[self._at:self._at + size]
        self._at += len(out)
        return out

    def fetchall(self) -> list[Any]:
        out = self._rows[self._at:]
        self._at = len(self._rows)
        return out

    def __iter__(self) -> Iterator[Any]:
        while self._at < len(self._rows):
            self._at += 1
            yield self._rows[self._at - 1]

    def close(self) -> None:
        self._rows = []


class Session:
    """One thread's view of the database (what ``db.connection()`` returns): sqlite3's
    connection interface over pooled psycopg connections."""

    dialect = "postgresql"

    def __init__(self, db: PgDatabase) -> None:
        self.db = db
        self.conn: psycopg.Connection[Any] | None = None
        #: audit events of the open transaction, written at COMMIT (engine.audit.log)
        self.staged_audit: list[tuple[Any, ...]] = []
        #: the last commit's events as the event feeds follow them (engine.audit.log.feed_fields)
        self.committed_events: list[tuple[Any, ...]] | None = None
        self._savepoints: list[tuple[str, int]] = []
        #: inside :meth:`write_behind` or after :meth:`defer_writes`: the writes not sent yet, in order
        self._behind: list[tuple[str, Any]] | None = None
        #: a batch of writes the server refused: the transaction can only be rolled back
        self._broken: StorageError | None = None
        #: BEGIN and savepoint statements not sent yet (see :meth:`begin`), in order, queued as
        #: write_behind queues them (engine.store.behind: ``queue_savepoint``, ``batches``)
        self._owed: list[tuple[Any, Any]] = []
        #: reads answered at COMMIT (:meth:`PgDatabase.queries_at_commit`)
        self._reads: CommitReads | None = None

    # -- the sqlite3-like surface ---------------------------------------------------------
    @property
    def in_transaction(self) -> bool:
        return bool(self._owed) or self._begun()

    def _begun(self) -> bool:
        """Has the server seen this transaction's BEGIN?"""
        return self.conn is not None and self.conn.info.transaction_status != TransactionStatus.IDLE

    def _take_owed(self) -> list[tuple[Any, Any]]:
        """The statements owed to the server (queued as write_behind queues them), and none
        owed any more."""
        owed, self._owed = self._owed, []
        return owed

    def sent(self) -> psycopg.Connection[Any]:
        """This transaction's connection with everything owed and queued sent: for code that
        uses psycopg directly (COPY) inside the transaction."""
        self._send_behind()
        assert self.conn is not None
        return self.conn

    def execute(self, sql: str, params: Any = None) -> Cursor:
        return Cursor(self).execute(sql, params)

    def executemany(self, sql: str, seq: Any) -> Cursor:
        return Cursor(self).executemany(sql, seq)

    def cursor(self) -> Cursor:
        return Cursor(self)

    def defer_writes(self) -> None:
        """From here to COMMIT, queue the open transaction's plain writes as :meth:`write_behind`
        does; they go out with COMMIT's first round trip (see :meth:`_commit_with_audit`), or
        before a statement that reads. For a transaction that ends with a few writes and no
        read of them (a start queued for the runner: its execution and work rows)."""
        if self.in_transaction and self._behind is None:
            self._behind = []

    @contextmanager
    def write_behind(self) -> Iterator[None]:
        """Within the open transaction: plain writes and savepoints are queued instead of sent
        (the rules: engine.store.behind), and go to the server together in one pipeline
        (psycopg pipeline mode) before the next statement that returns rows, at the end of the
        block, or at COMMIT: one network round trip for many items instead of one per statement.
        Audit events are staged until COMMIT anyway (engine.audit.log)."""
        if self._behind is not None or not self.in_transaction:
            yield
            return
        self._behind = []
        try:
            yield
        except BaseException:
            self._behind = None
            raise
        try:
            self._send_behind()
        finally:
            self._behind = None

    def _send_behind(self) -> None:
        """Send what is owed (BEGIN, savepoints) and the queued writes, in one pipeline."""
        queued, self._behind = self._behind, ([] if self._behind is not None else None)
        if (not queued and not self._owed) or self.conn is None:
            return
        if self._broken is not None:
            raise self._broken
        try:
            _send_queued(self.conn, [*self._take_owed(), *(queued or [])])
        except psycopg.Error as exc:
            self._broken = self.db.error(exc)
            raise self._broken from None

    def stage_audit(self, event: tuple[Any, ...]) -> None:
        if not self.in_transaction:
            raise RuntimeError("audit events are appended inside a write transaction")
        self.staged_audit.append(event)

    # -- running statements -----------------------------------------------------------------
    def run(self, sql: str, params: Any, row_factory: Any) -> tuple[int, list[Any]]:
        kind = classify(sql)
        if kind in (SAVEPOINT_STATEMENT, CONTROL):
            self._control(statement_kind(sql), sql)
            return -1, []
        if self._behind is not None:
            if kind == WRITE:
                self._behind.append((sql, params))
                return -1, []
            self._send_behind()
        if self._broken is not None:
            raise self._broken
        conn, borrowed = self._conn()
        owed = self._take_owed()
        try:
            with conn.cursor(row_factory=row_factory or tuple_row) as cur:
                if owed:  # BEGIN and savepoints go with this statement: one round trip
                    with conn.pipeline(), conn.cursor() as control:
                        for owed_sql, _ in batches(owed):
                            control.execute(owed_sql)
                        _execute(cur, sql, params)
                else:
                    _execute(cur, sql, params)
                rows = cur.fetchall() if _returns_rows(cur) else []
                return cur.rowcount, rows
        except psycopg.Error as exc:
            raise self.db.error(exc) from None
        finally:
            if borrowed:
                self._give_back()

    def run_many(self, sql: str, seq: Any) -> int:
        items = list(seq)
        if not items:
            return 0
        if self._behind is not None and classify(sql) == WRITE:
            # queued as one write per item (batches() makes them one executemany again):
            # performance, a run's task-run rows sent on their own cost an embedded start a
            # round trip of its own and made its savepoint real (two statements more)
            self._behind.extend((sql, item) for item in items)
            return -1
        self._send_behind()  # (and what is owed)
        conn, borrowed = self._conn()
        try:
            with conn.cursor() as cur:
                cur.executemany(to_psycopg(sql), items)
                return cur.rowcount
        except psycopg.Error as exc:
            raise self.db.error(exc) from None
        finally:
            if borrowed:
                self._give_back()

    def _conn(self) -> tuple[psycopg.Connection[Any], bool]:
        """This thread's connection in a transaction; else one borrowed for one statement."""
        if self.conn is not None:
            return self.conn, False
        self.conn = self.db.borrow()
        return self.conn, True

    def _give_back(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            self.db.give_back(conn)

    def _control(self, kind: str, sql: str) -> None:
        if kind == "BEGIN":
            self.begin(sql)
        elif kind in ("COMMIT", "END"):
            self.commit()
        elif kind == "ROLLBACK" and " TO " not in f" {sql.upper()} ":
            self.rollback()
        else:
            self._savepoint(kind, sql)

    def _savepoint(self, kind: str, sql: str) -> None:
        """SAVEPOINT / RELEASE / ROLLBACK TO, keeping the staged audit events in step."""
        if self.conn is None:
            raise RuntimeError(f"{sql!r} outside a transaction")
        name = savepoint_parts(sql)[1]
        # owed, as BEGIN is: sent with the next statement (a savepoint made and released with
        # nothing sent in between never reaches the server at all)
        queue_savepoint(self._behind if self._behind is not None else self._owed, kind, sql, name)
        keep_staged_in_step(self._savepoints, self.staged_audit, kind, name)

    # -- transactions -----------------------------------------------------------------------
    def begin(self, sql: str = "BEGIN") -> None:
        if self.in_transaction:
            raise RuntimeError("nested write transaction")
        if self.conn is None:
            self.conn = self.db.borrow()
        self.staged_audit = []
        self._savepoints = []
        self._behind, self._broken, self._reads = None, None, None
        # performance: BEGIN is owed, not sent: it goes in one pipeline with the transaction's
        # first statement (or its COMMIT), and a transaction that sends nothing costs no round
        # trip at all. An embedded start made 13 round trips, BEGIN and its savepoints 3 of them.
        # A server that cannot be reached is reported by that first statement.
        self._owed = [(sql, None)]

    def commit(self) -> None:
        if self.conn is None:
            return
        self.committed_events = None
        try:
            if self._broken is not None:
                raise self._broken
            begun = self._begun()
            # queued writes end with their transaction (a write_behind block still open would
            # send its later writes one by one, which is only slower)
            behind, self._behind = self._behind or [], None
            reads, self._reads = self._reads, None
            queued = [*self._take_owed(), *behind]
            if self.staged_audit:
                self._commit_with_audit(queued, reads)
            elif begun or behind or reads:  # (only writes queued behind can make an unsent transaction matter)
                if queued or reads:  # (a ROLLBACK TO among them still matters)
                    read_cursors: list[Any] = []

                    def tail(cur: Any) -> None:
                        self._send_reads(reads, read_cursors)
                        cur.execute("COMMIT")

                    _send_queued(self.conn, queued, tail=tail)
                    _answer_reads(reads, read_cursors)
                else:
                    self.conn.execute("COMMIT")
            # else: the server never saw this transaction (only BEGIN and savepoints were owed)
        except psycopg.Error as exc:
            self.rollback()
            raise self.db.error(exc) from None
        except BaseException:
            self.rollback()
            raise
        finally:
            self.staged_audit = []
            self._savepoints = []
        self._give_back()
        if self.committed_events:  # (set by a commit that wrote audit events)
            self.db.appended_through = max(self.db.appended_through, self.committed_events[-1][0])
            tell_audit_listeners(self.db.audit_listeners, self.committed_events)

    def _commit_with_audit(self, queued: list[tuple[str, Any]], reads: CommitReads | None) -> None:
        """The writes still queued, the reads at COMMIT, the staged audit events and COMMIT.

        A few events (a start's, a decision's): one pipeline, one round trip: the queued
        writes, the reads, the audit lock (taken last, see engine.audit.log), the events
        numbered, chained and announced by the server (``CHAINED_APPEND_SQL``), COMMIT.
        Many (a bulk decision's): two, as the chain is made here and the rows go as COPY: the
        queued writes, the reads, the lock and the chain head; then the rows, the event feed's
        wake-up and COMMIT. A statement the server refuses aborts the rest of its pipeline
        (COMMIT included) and raises here: the caller rolls back."""
        from signoff.engine.audit import log

        assert self.conn is not None
        lock_sql = log.STAGED_LOCK_SQL.format(lock=AUDIT_LOCK)
        read_cursors: list[Any] = []
        if len(self.staged_audit) < COPY_MIN_ROWS:
            feed_cur = self.conn.cursor(row_factory=tuple_row)

            def append_and_commit(cur: Any) -> None:
                self._send_reads(reads, read_cursors)
                cur.execute(lock_sql)
                feed_cur.execute(to_psycopg(log.CHAINED_APPEND_SQL), (log.chained_append_param(self.staged_audit),))
                cur.execute("COMMIT")

            try:
                _send_queued(self.conn, queued, tail=append_and_commit)
                feed = feed_cur.fetchone()  # (read after the pipeline's round trip)
            finally:
                feed_cur.close()
            assert feed is not None  # (an aggregate: always one row)
            _answer_reads(reads, read_cursors)
            self.committed_events = log.chained_events(feed[0])
            return
        head_cur = self.conn.cursor(row_factory=tuple_row)

        def lock_and_head(cur: Any) -> None:
            self._send_reads(reads, read_cursors)
            cur.execute(lock_sql)
            head_cur.execute(log.STAGED_HEAD_SQL)

        try:
            _send_queued(self.conn, queued, tail=lock_and_head)
            head = head_cur.fetchone()  # (read after the pipeline's round trip)
        finally:
            head_cur.close()
        _answer_reads(reads, read_cursors)
        rows, _seq = log.chain_staged_events(self.staged_audit, head)
        copy_rows(self.conn, log.STAGED_COPY_SQL, rows)  # (see _send_queued)
        with self.conn.pipeline(), self.conn.cursor() as cur:
            # the wake-up of every replica's event feed (engine.server.head), delivered at COMMIT
            events = [log.feed_fields(row) for row in rows]
            cur.execute(to_psycopg(log.STAGED_NOTIFY_SQL), (log.notify_payload(events),))
            cur.execute("COMMIT")
        self.committed_events = events

    def queries_at_commit(self, statements: list[tuple[str, Any]]) -> CommitReads:
        """See :meth:`PgDatabase.queries_at_commit`."""
        reads = CommitReads(statements)
        if not self.in_transaction:
            reads.rows = self.db.queries(statements)
        else:
            self._reads = reads
        return reads

    def _send_reads(self, reads: CommitReads | None, cursors: list[Any]) -> None:
        """The reads at COMMIT, sent in the open pipeline; their cursors into ``cursors``,
        read after it (:func:`_answer_reads`)."""
        if reads is not None:
            assert self.conn is not None
            _send_reads(self.conn, reads.statements, cursors)

    def rollback(self) -> None:
        self.staged_audit = []
        self._savepoints = []
        self._behind, self._broken, self._reads = None, None, None
        self._owed = []
        if self.conn is None:
            return
        try:
            if not self.conn.closed and self._begun():
                self.conn.execute("ROLLBACK")
        except psycopg.Error:
            pass  # a broken connection: the server rolled back; the pool discards it
        self._give_back()

    def close(self) -> None:
        self.rollback()


class PgDatabase:
    """The engine's database on PostgreSQL (see the module docstring)."""

    dialect = "postgresql"

    def __init__(self, url: str, data_dir: Path | str | None = None, *, pool_size: int | None = None) -> None:
        self.url = url
        self.path = redact(url)  # what messages name (the SQLite store names its file)
        self.data_dir = Path(data_dir) if data_dir is not None else None
        if self.data_dir is not None:  # this replica's own files: engine key, FILE input copies
            try:
                self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            except OSError as exc:
                raise StorageError(f"cannot create data directory {self.data_dir}: {exc.strerror}") from None
        self._local = threading.local()
        self._gate = ForegroundGate()
        self._opened_by = threading.get_ident()
        #: called after a commit of this process that appended audit events (engine.server.head)
        self.audit_listeners: list[AuditListener] = []
        #: the newest audit sequence number a commit of this process wrote (0: none yet)
        self.appended_through = 0
        size = pool_size or int(os.environ.get("SIGNOFF_DB_POOL", "20"))
        try:  # one plain connection first: an unreachable database is one clear message, at once
            psycopg.connect(url, connect_timeout=10).close()
        except psycopg.Error as exc:
            raise StorageError(f"cannot connect to the database {self.path}: {_first_line(exc)}") from None
        #: id of a pooled connection -> when it was last given back (see _check_if_idle)
        self._last_used: dict[int, float] = {}
        #: set by stop_waiting: when waits for a connection end at the latest (time.monotonic)
        self._stop_by: float | None = None
        self._pool = ConnectionPool(url, min_size=1, max_size=size, open=False, timeout=_POOL_TIMEOUT,
                                    kwargs={"autocommit": True, "row_factory": _row_factory},
                                    check=self._check_if_idle, name="signoff")
        try:
            self._pool.open(wait=True, timeout=15)
        except PoolTimeout:
            self._pool.close()
            raise StorageError(f"cannot connect to the database {self.path} (timed out)") from None
        try:
            self._migrate()
        except BaseException:
            self._pool.close()
            raise

    # -- connections ------------------------------------------------------------------------
    def borrow(self) -> psycopg.Connection[Any]:
        """A pooled connection, waiting up to 60 s for one (a PostgreSQL restart takes a few
        seconds); once the process is stopping (:meth:`stop_waiting`), no longer than 2 s
        after the stop began. The wait is taken in slices so a stop cuts a wait already under
        way short: a replica whose database is gone stops in seconds, not after each of its
        threads (runner, heartbeat, event feed, last checkpoint) has waited a minute in turn."""
        deadline = time.monotonic() + _POOL_TIMEOUT
        while True:
            stop_by = self._stop_by
            until = deadline if stop_by is None else min(deadline, stop_by)
            try:
                # (past the stop's bound: one short try, which an idle connection still answers)
                return self._pool.getconn(timeout=max(0.01, min(_WAIT_SLICE_S, until - time.monotonic())))
            except PoolTimeout:
                if time.monotonic() < until:
                    continue
            waited = f"{_POOL_TIMEOUT:.0f} s" if stop_by is None else f"{_STOPPING_WAIT_S:.0f} s of this process's stop"
            raise StorageError(f"no connection to the database {self.path} within {waited} "
                               "(is PostgreSQL running and reachable?)")

    def stop_waiting(self) -> None:
        """The process is stopping (a server's SIGTERM): from now on, waits for a connection
        end 2 s from now at the latest. With a reachable database a connection comes at once
        and nothing changes."""
        if self._stop_by is None:
            self._stop_by = time.monotonic() + _STOPPING_WAIT_S

    @property
    def stopping(self) -> bool:
        """The process is stopping (:meth:`stop_waiting` was called)."""
        return self._stop_by is not None

    def give_back(self, conn: psycopg.Connection[Any]) -> None:
        if len(self._last_used) > 1000:  # connections replaced over the process's life
            self._last_used.clear()
        self._last_used[id(conn)] = time.monotonic()
        self._pool.putconn(conn)

    def _check_if_idle(self, conn: psycopg.Connection[Any]) -> None:
        """The pool's check before lending a connection: one that sat idle for a while is
        tested with a round trip (and replaced if the server went away, e.g. a restart), one
        given back a moment ago is not. Performance: outside a transaction every statement
        borrows a connection, and testing each one doubled the round trips (a start made ~20)."""
        if time.monotonic() - self._last_used.get(id(conn), 0.0) > _CHECK_IDLE_S:
            ConnectionPool.check_connection(conn)

    def connection(self) -> Session:
        session: Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = Session(self)
        return session

    def error(self, exc: psycopg.Error) -> StorageError:
        text = _first_line(exc)
        if pg_error_is_retryable(exc):
            return RetryableStorageError(f"database conflict on {self.path}: {text} (retried)")
        if isinstance(exc, psycopg.OperationalError):
            return StorageError(f"lost the connection to the database {self.path}: {text}")
        return StorageError(f"database error on {self.path}: {text}")

    # -- schema -----------------------------------------------------------------------------
    #: the statement whose one value is the schema version (as on SQLite)
    SCHEMA_VERSION_SQL = f"SELECT value FROM {pg_schema.META_TABLE} WHERE name='schema_version'"

    def schema_version(self) -> int:
        row = self.query_one(self.SCHEMA_VERSION_SQL)
        return int(row[0]) if row else 0

    def _migrate(self) -> None:
        session = self.connection()
        session.begin()
        try:
            session.execute(f"SELECT pg_advisory_xact_lock({MIGRATE_LOCK})")
            has_meta = session.execute("SELECT to_regclass(?) IS NOT NULL",
                                       (pg_schema.META_TABLE,)).fetchone()[0]
            version = 0
            if has_meta:
                meta = dict(session.execute(f"SELECT name, value FROM {pg_schema.META_TABLE}").fetchall())
                if meta.get("application") != "signoff":
                    raise StorageError(f"the database {self.path} belongs to another application; "
                                       "it was left untouched")
                version = int(meta.get("schema_version", "0"))
            else:
                tables = session.execute("SELECT count(*) FROM information_schema.tables"
                                         " WHERE table_schema = current_schema()").fetchone()[0]
                if tables:
                    raise StorageError(f"the database {self.path} holds tables but no signoff schema; "
                                       "it was left untouched. Give signoff an empty database.")
            if version > SCHEMA_VERSION:
                raise StorageError(
                    f"the database {self.path} was written by a newer signoff (schema {version}); this "
                    f"version understands schema {SCHEMA_VERSION} at most. Upgrade signoff; the database "
                    "was left untouched.")
            if version == SCHEMA_VERSION:
                session.rollback()
                return
            if not has_meta:
                session.execute(f"CREATE TABLE {pg_schema.META_TABLE} (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
                session.execute(f"INSERT INTO {pg_schema.META_TABLE} VALUES ('application', 'signoff'),"
                                " ('schema_version', '0')")
            for target in range(version + 1, SCHEMA_VERSION + 1):
                for statement in pg_schema.statements(pg_schema.pg_migration(target)):
                    session.execute(statement)
            session.execute(f"UPDATE {pg_schema.META_TABLE} SET value=? WHERE name='schema_version'",
                            (str(SCHEMA_VERSION),))
            session.commit()
        except BaseException:
            session.rollback()
            raise

    # -- transactions -----------------------------------------------------------------------
    @contextmanager
    def write(self) -> Iterator[Session]:
        """A transaction, committed on exit (durably: synchronous_commit), rolled back on error."""
        session = self.connection()
        session.begin()
        try:
            yield session
        except BaseException:
            session.rollback()
            raise
        else:
            session.commit()

    def begin(self) -> Session:
        session = self.connection()
        session.begin()
        return session

    def commit(self) -> None:
        self.connection().commit()

    def rollback(self) -> None:
        self.connection().rollback()

    @contextmanager
    def foreground(self, *, bulk: bool = False) -> Iterator[None]:
        """Marks work someone is waiting for: this process's runner waits while it goes, and,
        with ``bulk``, every replica's runner does (engine.store.foreground). Row locks need no
        write-priority scheme here; this is about the CPU and the database's time."""
        with self._gate.foreground():
            marked = self._mark_bulk() if bulk else None
            try:
                yield
            finally:
                if marked is not None:
                    self._unmark_bulk(marked)

    def _mark_bulk(self) -> psycopg.Connection[Any] | None:
        """A connection holding BULK_LOCK shared (session level: the server releases it if this
        process dies), or None when the database cannot be reached: the bulk itself says so."""
        try:
            conn = self.borrow()
        except StorageError:
            return None
        try:
            conn.execute(f"SELECT pg_advisory_lock_shared({BULK_LOCK})")
        except psycopg.Error:
            self.give_back(conn)
            return None
        return conn

    def _unmark_bulk(self, conn: psycopg.Connection[Any]) -> None:
        try:
            conn.execute(f"SELECT pg_advisory_unlock_shared({BULK_LOCK})")
        except psycopg.Error:
            conn.close()  # not handed on still holding the lock: the pool replaces a closed one
        self.give_back(conn)

    def yield_to_foreground(self, max_wait: float = 2.0) -> None:
        """Before each chunk of background advances: wait (at most ``max_wait`` seconds) while
        this process has foreground work, or another replica a bulk decision."""
        self._gate.wait(max_wait, elsewhere=self._bulk_elsewhere)

    def _bulk_elsewhere(self) -> bool:
        """A bulk decision is going on some replica: BULK_LOCK cannot be had exclusively."""
        session = self.connection()
        if session.in_transaction:
            return False  # a transaction-level lock would be kept until it ends
        try:
            row = session.execute(f"SELECT pg_try_advisory_xact_lock({BULK_LOCK})").fetchone()
        except StorageError:
            return False  # the database is away: the runner's own transaction reports it
        return row is not None and not row[0]

    def query(self, sql: str, params: Any = ()) -> list[Any]:
        return self.connection().execute(sql, params).fetchall()

    def query_one(self, sql: str, params: Any = ()) -> Any:
        rows = self.query(sql, params)
        return rows[0] if rows else None

    def queries(self, statements: list[tuple[str, Any]]) -> list[list[Any]]:
        """The rows of several reads, in order, sent in one pipeline: one round trip instead of
        one per statement (performance: what a start returns is read in four). Inside this
        thread's open transaction they run one by one on it, as :meth:`query` does."""
        session = self.connection()
        if session.conn is not None or session.in_transaction:
            return [self.query(sql, params) for sql, params in statements]
        conn = self.borrow()
        cursors: list[Any] = []
        try:
            with conn.pipeline():
                _send_reads(conn, statements, cursors)
            return _rows_of(cursors)
        except psycopg.Error as exc:
            raise self.error(exc) from None
        finally:
            for cur in cursors:  # (closed already when read; again after a failure)
                cur.close()
            self.give_back(conn)

    def queries_at_commit(self, statements: list[tuple[str, Any]]) -> CommitReads:
        """Reads that see this thread's open transaction as it commits, answered after the
        COMMIT: sent in the COMMIT's pipeline (performance: what a start returns, read after
        its commit, cost a round trip and ~0.2 ms more). See the SQLite store's."""
        return self.connection().queries_at_commit(statements)

    def close(self) -> None:
        """As the SQLite store: a thread closes its own connection. The thread that opened the
        database also closes the pool (the engine's owner, at the end)."""
        session: Session | None = getattr(self._local, "session", None)
        if session is not None:
            session.close()
        if threading.get_ident() == self._opened_by:
            self._pool.close()


#: result statuses of a statement that returns rows (even none, or no columns: ``SELECT ;``)
_ROW_STATUSES = frozenset((ExecStatus.TUPLES_OK, ExecStatus.SINGLE_TUPLE, getattr(ExecStatus, "TUPLES_CHUNK", -1)))


def _execute(cur: Any, sql: str, params: Any) -> None:
    """Run one statement written with ``?`` placeholders on a psycopg cursor."""
    if no_params(params):
        cur.execute(sql)  # no parameters: psycopg reads the text as it is (a % stays one %)
    else:
        cur.execute(to_psycopg(sql), params)


def _send_reads(conn: Any, statements: list[tuple[str, Any]], cursors: list[Any]) -> list[Any]:
    """Each read on a cursor of its own, sent in ``conn``'s open pipeline and added to
    ``cursors`` (returned), whose rows :func:`_rows_of` takes once the round trip is done."""
    for sql, params in statements:
        cur = conn.cursor(row_factory=_row_factory)
        cursors.append(cur)
        _execute(cur, sql, params)
    return cursors


def _rows_of(cursors: list[Any]) -> list[list[Any]]:
    """The rows of reads sent by :func:`_send_reads`, in order; the cursors are closed."""
    try:
        return [cur.fetchall() if _returns_rows(cur) else [] for cur in cursors]
    finally:
        for cur in cursors:
            cur.close()


def _answer_reads(reads: CommitReads | None, cursors: list[Any]) -> None:
    """The rows of the reads at COMMIT, from their cursors (after the pipeline)."""
    if reads is not None:
        reads.rows = _rows_of(cursors)


#: a batch of at least this many rows of a plain INSERT goes as COPY (see :func:`_send_queued`)
COPY_MIN_ROWS = 50
_COPYABLE = re.compile(r"\s*INSERT\s+INTO\s+(\w+)\s*\(([\w\s,]+)\)\s*VALUES\s*\(\s*\?(?:\s*,\s*\?)*\s*\)\s*$",
                       re.IGNORECASE)


@lru_cache(maxsize=256)
def copy_statement(sql: str) -> str | None:
    """``COPY table (columns) FROM STDIN`` for an INSERT of plain ``?`` values (no ON CONFLICT,
    no RETURNING, no expressions); None for any other statement."""
    found = _COPYABLE.match(sql)
    if found is None:
        return None
    return f"COPY {found.group(1)} ({found.group(2).strip()}) FROM STDIN"


def _send_queued(conn: psycopg.Connection[Any], queued: list[tuple[Any, Any]],
                 tail: Callable[[Any], None] | None = None) -> None:
    """Send write_behind's queued statements in batches, in pipelines, then ``tail(cursor)``
    in the last pipeline (COMMIT, or the audit lock and head). A batch of many rows of a plain
    INSERT goes as COPY instead, between pipelines (performance: psycopg spends ~13 us of Python
    per row of an executemany and ~2 us per row of a COPY; a bulk decision's decisions rows)."""
    run: list[tuple[str, list[Any] | None]] = []

    def send_run(last: bool) -> None:
        if not run and not (last and tail is not None):
            return
        with conn.pipeline(), conn.cursor() as cur:
            for sql, rows in run:
                if rows is None:
                    cur.execute(sql)
                elif len(rows) == 1:
                    cur.execute(to_psycopg(sql), rows[0])
                else:
                    cur.executemany(to_psycopg(sql), rows)
            if last and tail is not None:
                tail(cur)
        run.clear()

    for sql, rows in batches(queued):
        copy = copy_statement(sql) if rows is not None and len(rows) >= COPY_MIN_ROWS else None
        if copy is None:
            run.append((sql, rows))
            continue
        send_run(last=False)
        copy_rows(conn, copy, rows or [])
    send_run(last=True)


def copy_rows(conn: psycopg.Connection[Any], statement: str, rows: list[Any]) -> None:
    with conn.cursor() as cur, cur.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def pg_error_is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, pg_errors.SerializationFailure | pg_errors.DeadlockDetected)
