"""Connections to the signoff SQLite file.

Decisions:
- WAL journal with ``synchronous=FULL``: a commit is on disk when it returns, so a decision is
  acknowledged only once durable; readers never block the single writer.
- Writes use ``BEGIN IMMEDIATE`` so two processes never deadlock upgrading a read lock; a
  long ``busy_timeout`` plus a bounded retry turn contention into waiting, never into a
  "database is locked" error in front of a user.
- One connection per thread (the console runs engine calls in worker threads).
- Within one process, person-facing writes go first: SQLite's lock is not fair, and the
  server's background runner, committing and beginning again in a loop, kept a 10,000-request
  bulk approve waiting for seconds (4-6 s instead of 2). See :meth:`Database.foreground`.
- We never create, truncate or migrate a file we do not recognise: an unreadable file, a
  newer schema or a read-only location is a :class:`StorageError` with the path in it.
"""
from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from signoff.engine.errors import NotWritable, StorageError, log_failure
from signoff.engine.store.foreground import ForegroundGate
from signoff.engine.store.schema import MIGRATIONS, SCHEMA_VERSION

DB_FILENAME = "signoff.db"
APPLICATION_ID = 0x5349474E  # "SIGN", written in the header so we know our own files
_BUSY_MS = 30_000
_WAL_CHECKPOINT_PAGES = 16_000


#: told after a commit of this process that appended audit events: the events as the event
#: feeds follow them (engine.audit.log.feed_fields) where the store knows them, else None
AuditListener = Callable[[list[tuple[Any, ...]] | None], None]


class _Connection(sqlite3.Connection):
    """A connection that notes whether its open transaction appended audit events
    (engine.audit.log), so this process's event feeds are woken after the COMMIT."""

    audit_appended = False
    #: the sequence number of the last event it appended (engine.audit.log)
    audit_seq = 0
    dialect = "sqlite"


def _commit(conn: sqlite3.Connection) -> None:
    conn.execute("COMMIT")


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        conn.execute("ROLLBACK")
    if isinstance(conn, _Connection):
        conn.audit_appended = False


class Database:
    dialect = "sqlite"

    def __init__(self, data_dir: Path | str) -> None:
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / DB_FILENAME
        self._local = threading.local()
        self._gate = ForegroundGate()
        #: called after a commit of this process that appended audit events (engine.server.head)
        self.audit_listeners: list[AuditListener] = []
        #: the newest audit sequence number a commit of this process wrote (0: none yet)
        self.appended_through = 0
        #: the process is stopping (stop_waiting was called)
        self.stopping = False
        self._prepare()

    # -- opening -----------------------------------------------------------------------
    def _prepare(self) -> None:
        try:
            self._prepare_files()
        except PermissionError as exc:  # e.g. another account's 0700 data directory
            raise NotWritable(f"{exc.filename or self.data_dir}: permission denied; this account may not use the "
                              f"data directory {self.data_dir} directly") from None
        conn = self.connection()
        self._migrate(conn)

    def _prepare_files(self) -> None:
        """Check the directory and file before SQLite touches them. A new data directory is
        made 0700 and a new database file 0600 (SQLite gives its -wal/-shm files the same
        mode): the database is its owner's alone; other accounts share it through the local
        server (README "Sharing one machine"), never by writing the file."""
        if self.data_dir.exists() and not self.data_dir.is_dir():
            raise StorageError(f"data directory {self.data_dir} is not a directory")
        try:
            self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        except PermissionError:
            raise
        except OSError as exc:
            raise StorageError(f"cannot create data directory {self.data_dir}: {exc.strerror}") from None
        if self.path.exists():
            ours = self._check_header()
            if not os.access(self.data_dir, os.W_OK):
                raise NotWritable(f"data directory {self.data_dir} is read-only; signoff needs to write next to "
                                  f"{self.path.name} (check the mount and permissions, or use --data-dir)")
            for path in (self.path, *(self.data_dir / (self.path.name + s) for s in ("-wal", "-shm"))):
                if path.exists() and not os.access(path, os.R_OK | os.W_OK):
                    raise NotWritable(f"{path} is not writable by this account (owner uid {path.stat().st_uid}, "
                                      f"mode {path.stat().st_mode & 0o777:04o})")
            if not ours:
                self._probe_read_only()
        elif not os.access(self.data_dir, os.W_OK):
            raise NotWritable(f"data directory {self.data_dir} is not writable; choose another with --data-dir")
        else:
            try:
                os.close(os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            except FileExistsError:
                pass  # another process created it first: the checks above ran on nothing; SQLite opens it

    def _check_header(self) -> bool:
        """Refuse what is certainly not ours; True when it is our file in WAL mode."""
        try:
            with open(self.path, "rb") as fh:
                header = fh.read(100)
        except PermissionError:
            raise
        except OSError as exc:
            raise StorageError(f"cannot read {self.path}: {exc.strerror}") from None
        if len(header) == 0:
            return False  # an empty file: SQLite treats it as a new database
        if len(header) < 100 or not header.startswith(b"SQLite format 3\x00"):
            raise StorageError(
                f"{self.path} is not a signoff database (not an SQLite file, or truncated); "
                "it was left untouched. Move it away or choose another --data-dir.")
        app_id = int.from_bytes(header[68:72], "big")
        if app_id not in (0, APPLICATION_ID):
            raise StorageError(f"{self.path} is an SQLite file of another application; it was left untouched.")
        # ours AND already in WAL mode (header bytes 18-19 == 2): nothing left to probe; any other
        # file is probed read-only first, since switching it to WAL would rewrite its header
        return app_id == APPLICATION_ID and header[18] == 2

    def _probe_read_only(self) -> None:
        """Refuse a newer or foreign database before anything is written to it (even the
        switch to WAL journaling rewrites header bytes). Only for files whose header does not
        name signoff: ours are checked by _migrate on a normal connection. The probe reads the
        main file only (immutable), so any error is inconclusive, never a verdict."""
        if self.path.stat().st_size == 0:
            return
        try:
            # immutable: no locks, no -wal/-shm files created next to a file we may refuse
            probe = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro&immutable=1", uri=True)
        except sqlite3.DatabaseError:
            return  # cannot open read-only (e.g. WAL files missing): the normal path reports it
        try:
            version = probe.execute("PRAGMA user_version").fetchone()[0]
            tables = probe.execute("SELECT count(*) FROM sqlite_master WHERE type='table'").fetchone()[0]
        except sqlite3.DatabaseError:
            return  # e.g. newest pages still in the WAL: let the normal connection decide
        finally:
            probe.close()
        if version > SCHEMA_VERSION:
            raise StorageError(
                f"{self.path} was written by a newer signoff (schema {version}); this version "
                f"understands schema {SCHEMA_VERSION} at most. Upgrade signoff; the file was left untouched.")
        if version == 0 and tables:
            raise StorageError(f"{self.path} holds tables but no signoff schema; it was left untouched.")

    def connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
        return conn

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self.path, timeout=_BUSY_MS / 1000, isolation_level=None,
                                   check_same_thread=False, factory=_Connection)
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout={_BUSY_MS}")
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise StorageError(f"cannot use WAL journaling on {self.path} (got {mode}); "
                                   "is the directory read-only?")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            # performance: a 64 MiB page cache (SQLite's default is 2 MiB). Past a few MB of
            # data the default re-reads index and table pages from the OS on every random-id
            # lookup or insert (bulk decide: ~3x slower). Memory is only used as pages are read.
            conn.execute("PRAGMA cache_size=-65536")
            # performance: savepoint journals (one per bulk item, one per execution advance)
            # stay in memory instead of spilling to a temporary file past 64 KiB (~40 us per
            # item). They only ever hold one item's pages; durability is the WAL's business.
            conn.execute("PRAGMA temp_store=MEMORY")
            # performance: copy the WAL back into the database every ~64 MiB of commits, not
            # every 4 MiB. Each checkpoint costs random writes and two more fsyncs; rarer,
            # larger ones write each hot page (index roots, the audit tail) once for many
            # commits (one-call starts on a busy disk: ~25% faster). Every commit is still
            # fsynced to the WAL before it returns, so durability is unchanged.
            conn.execute(f"PRAGMA wal_autocheckpoint={_WAL_CHECKPOINT_PAGES}")
        except sqlite3.DatabaseError as exc:
            raise _storage_error(self.path, exc) from None
        return conn

    def _migrate(self, conn: sqlite3.Connection) -> None:
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StorageError(
                    f"{self.path} was written by a newer signoff (schema {version}); this version "
                    f"understands schema {SCHEMA_VERSION} at most. Upgrade signoff; the file was left untouched.")
            if version == SCHEMA_VERSION:
                return
            with self.write() as tx:
                version = tx.execute("PRAGMA user_version").fetchone()[0]  # re-read under the lock
                if version == 0 and tx.execute(
                        "SELECT count(*) FROM sqlite_master WHERE type='table'").fetchone()[0]:
                    raise StorageError(f"{self.path} holds tables but no signoff schema; it was left untouched.")
                for target in range(version + 1, SCHEMA_VERSION + 1):
                    for statement in MIGRATIONS[target].split(";\n"):
                        if statement.strip():
                            tx.execute(statement)
                tx.execute(f"PRAGMA application_id={APPLICATION_ID}")
                tx.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.DatabaseError as exc:
            raise _storage_error(self.path, exc) from None

    # -- transactions ------------------------------------------------------------------
    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """An IMMEDIATE transaction, committed durably on exit, rolled back on error."""
        conn = self.connection()
        if conn.in_transaction:
            raise RuntimeError("nested write transaction")
        self._begin(conn)
        try:
            yield conn
        except BaseException:
            _rollback(conn)
            raise
        else:
            appended = isinstance(conn, _Connection) and conn.audit_appended
            try:
                _commit(conn)
            except sqlite3.DatabaseError as exc:
                _rollback(conn)
                raise _storage_error(self.path, exc) from None
            if appended:
                self._appended(conn)

    def _begin(self, conn: sqlite3.Connection) -> None:
        delay = 0.01
        deadline = time.monotonic() + 120
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                if isinstance(conn, _Connection):
                    conn.audit_appended = False
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise _storage_error(self.path, exc) from None
                if time.monotonic() > deadline:
                    raise StorageError(f"{self.path} stayed locked by another process for two minutes") from None
                time.sleep(delay)
                delay = min(delay * 2, 0.5)

    @contextmanager
    def foreground(self, *, bulk: bool = False) -> Iterator[None]:
        """Marks writes someone is waiting for (decisions, cancels, starts): background work in
        this process (:meth:`yield_to_foreground`) lets them have the write lock first
        (engine.store.foreground). ``bulk`` matters only to PostgreSQL's replicas."""
        with self._gate.foreground():
            yield

    def yield_to_foreground(self, max_wait: float = 2.0) -> None:
        """Background work calls this before each transaction: it waits (at most ``max_wait``
        seconds, so it is never starved) while another thread has foreground writes going."""
        self._gate.wait(max_wait)

    def begin(self) -> sqlite3.Connection:
        """Start an IMMEDIATE transaction on this thread's connection (runner checkpoints)."""
        conn = self.connection()
        self._begin(conn)
        return conn

    def commit(self) -> None:
        conn = self.connection()
        appended = isinstance(conn, _Connection) and conn.audit_appended
        try:
            _commit(conn)
        except sqlite3.DatabaseError as exc:
            _rollback(conn)
            raise _storage_error(self.path, exc) from None
        if appended:
            self._appended(conn)

    def _appended(self, conn: sqlite3.Connection) -> None:
        """After a commit that appended audit events."""
        self.appended_through = max(self.appended_through, getattr(conn, "audit_seq", 0))
        tell_audit_listeners(self.audit_listeners)

    def rollback(self) -> None:
        _rollback(self.connection())

    #: the statement whose one value is the schema version (engine.signing.checkpoints reads it
    #: with other things in one go)
    SCHEMA_VERSION_SQL = "PRAGMA user_version"

    def schema_version(self) -> int:
        row = self.query_one(self.SCHEMA_VERSION_SQL)
        return int(row[0]) if row is not None else 0

    def query(self, sql: str, params: Any = ()) -> list[sqlite3.Row]:
        try:
            return self.connection().execute(sql, params).fetchall()
        except sqlite3.DatabaseError as exc:
            raise _storage_error(self.path, exc) from None

    def query_one(self, sql: str, params: Any = ()) -> sqlite3.Row | None:
        rows = self.query(sql, params)
        return rows[0] if rows else None

    def queries(self, statements: list[tuple[str, Any]]) -> list[list[sqlite3.Row]]:
        """The rows of several reads, in order (one after the other here; PostgreSQL sends them
        in one round trip, see engine.store.pg.PgDatabase.queries)."""
        return [self.query(sql, params) for sql, params in statements]

    def queries_at_commit(self, statements: list[tuple[str, Any]]) -> CommitReads:
        """Reads that see the open transaction as it commits, answered after the COMMIT (what
        a start returns). Make them the transaction's last statements: here they run at once,
        inside it; PostgreSQL sends them in the COMMIT's pipeline (engine.store.pg), which
        spared an embedded start a round trip and ~0.2 ms."""
        reads = CommitReads(statements)
        reads.rows = self.queries(statements)
        return reads

    def stop_waiting(self) -> None:
        """As PgDatabase.stop_waiting. Nothing to cut short here: the file is on this host,
        and a lock wait (busy_timeout) ends when the holder's transaction does."""
        self.stopping = True

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


class CommitReads:
    """Reads made as a transaction commits (``queries_at_commit`` of either store); their rows,
    in order, once the transaction committed."""

    def __init__(self, statements: list[tuple[str, Any]]) -> None:
        self.statements = statements
        self.rows: list[list[Any]] | None = None

    def result(self) -> list[list[Any]]:
        if self.rows is None:
            raise RuntimeError("reads made at COMMIT are answered once the transaction committed")
        return self.rows


def tell_audit_listeners(listeners: list[AuditListener], events: list[tuple[Any, ...]] | None = None) -> None:
    """After a commit that appended audit events: the listeners (a server's event feed) take
    them now, or read them when not given. Their failure is not the commit's: it is logged,
    and they read again later."""
    for listener in list(listeners):
        try:
            listener(events)
        except Exception as exc:  # noqa: BLE001 - log_failure: known ones in one line
            log_failure(logging.getLogger("signoff.store"), logging.INFO, "audit listener failed", exc)


def connection_of(db: Database | sqlite3.Connection) -> sqlite3.Connection:
    """This thread's connection of a :class:`Database`; a connection is returned as is."""
    return db.connection() if hasattr(db, "connection") else db


def _storage_error(path: Path, exc: sqlite3.DatabaseError) -> StorageError:
    text = str(exc)
    if "readonly" in text or "read-only" in text:
        return NotWritable(f"{path} is read-only; signoff needs to write to it (check permissions or use --data-dir)")
    if "disk is full" in text or "database or disk is full" in text:
        return StorageError(f"no space left to write {path}; free some space and retry (nothing was half-written)")
    if "not a database" in text or "malformed" in text or "corrupt" in text:
        return StorageError(f"{path} is damaged ({text}); it was left untouched. "
                            "Restore it from a backup or move it away.")
    if "unable to open" in text:
        return StorageError(f"cannot open {path}: {text}")
    return StorageError(f"database error on {path}: {text}")
