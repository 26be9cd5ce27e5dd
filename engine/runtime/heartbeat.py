"""Process heartbeats: how a lease held by a dead process on any host is taken over.

A work lease (engine.runtime.work) belongs to one running advance; its owner id starts with the
id of the process running it (``host:pid:nonce``, :func:`process_id`). On the lease's own host
a dead process is found by its pid, but a replica on another host cannot see that pid. So every
process that takes leases (``signoff serve``, ``signoff worker``, the console's engine, a CLI
command that advances executions) writes a heartbeat row (table ``heartbeats``) every
:data:`BEAT_EVERY` seconds from its own thread, so a long task never delays a beat. Another
process, on any host, treats a lease whose owner's process last beat more than that process's
bound ago (:data:`DEAD_AFTER`, written into the row with each beat) as free, instead of waiting
for the lease to run out (5 minutes, renewed while an outside effect runs).

Decisions:
- Defaults: a beat every 15 s, dead after 45 s without one (three missed beats, so a busy
  database or a short network hiccup does not hand a live replica's work to another).
  ``$SIGNOFF_HEARTBEAT_EVERY`` and ``$SIGNOFF_HEARTBEAT_DEAD_AFTER`` (seconds) change them, e.g.
  for tests; the bound must be at least twice the interval.
- Beat times are the database's own clock (PostgreSQL ``clock_timestamp()``; SQLite's
  ``julianday('now')``), written and compared by the database, so replicas whose clocks
  disagree still agree on who is dead.
- A clean stop (Engine.close) deletes the process's row: its leases were released, and any
  left fall back to their expiry. A killed process leaves its row, which ages out. Rows older
  than a day are deleted by any beating process.
- A process that cannot write its beat for longer than its bound (the database unreachable
  from it) may find its leases taken over; its next commit on such an execution then fails
  with LeaseLost, so it never commits progress over the new owner's.
"""
from __future__ import annotations

import logging
import os
import threading
import weakref
from typing import Any

from signoff.engine.errors import log_failure

log = logging.getLogger("signoff.heartbeat")

BEAT_EVERY_DEFAULT = 15.0
DEAD_AFTER_DEFAULT = 45.0
_FORGET_AFTER = 86_400.0

_process: tuple[int, str] | None = None
_process_lock = threading.Lock()


def _host_name() -> str:
    if hasattr(os, "uname"):
        return os.uname().nodename
    import socket  # pragma: no cover - Windows

    return socket.gethostname()


def process_id() -> str:
    """This process's id, ``host:pid:nonce``: the nonce tells a reused pid from the old one.
    Made again after a fork (the child is another process)."""
    global _process
    pid = os.getpid()
    with _process_lock:
        if _process is None or _process[0] != pid:
            _process = (pid, f"{_host_name()}:{pid}:{os.urandom(4).hex()}")
        return _process[1]


def process_of(owner: str) -> str | None:
    """The process id in a lease owner id (``host:pid:nonce:advance``); None for an owner id
    without one (written by an older signoff), which then keeps the expiry and pid rules."""
    parts = owner.split(":")
    return ":".join(parts[:3]) if len(parts) == 4 else None


def settings() -> tuple[float, float]:
    """(seconds between beats, seconds without a beat after which a process is dead), from
    the environment; a bad value is a clear error, not a silent default."""
    every = _seconds("SIGNOFF_HEARTBEAT_EVERY", BEAT_EVERY_DEFAULT)
    dead_after = _seconds("SIGNOFF_HEARTBEAT_DEAD_AFTER", DEAD_AFTER_DEFAULT)
    if dead_after < 2 * every:
        raise ValueError(f"$SIGNOFF_HEARTBEAT_DEAD_AFTER ({dead_after:g} s) must be at least twice "
                         f"$SIGNOFF_HEARTBEAT_EVERY ({every:g} s), or a live process would be taken for dead")
    return every, dead_after


def _seconds(name: str, default: float) -> float:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"${name} must be a number of seconds, not {text!r}") from None
    if not 0.05 <= value <= 3600:
        raise ValueError(f"${name} must be between 0.05 and 3600 seconds, not {text}")
    return value


def db_now(conn: Any) -> str:
    """SQL for the database's clock in seconds since the epoch."""
    if getattr(conn, "dialect", "sqlite") == "postgresql":
        return "extract(epoch from clock_timestamp())::double precision"
    return "((julianday('now') - 2440587.5) * 86400.0)"


def beat(conn: Any, process: str, dead_after: float) -> None:
    """Write this process's beat (inside the caller's write transaction)."""
    now = db_now(conn)
    conn.execute(f"INSERT INTO heartbeats(process, beat_at, dead_after) VALUES (?, {now}, ?)"
                 f" ON CONFLICT(process) DO UPDATE SET beat_at=excluded.beat_at, dead_after=excluded.dead_after",
                 (process, dead_after))
    conn.execute(f"DELETE FROM heartbeats WHERE beat_at < {now} - ?", (_FORGET_AFTER,))


def silent(conn: Any, processes: set[str]) -> set[str]:
    """Those of ``processes`` whose last beat is older than their bound: dead, wherever they ran."""
    if not processes:
        return set()
    names = sorted(processes)
    marks = ",".join("?" * len(names))
    rows = conn.execute(f"SELECT process FROM heartbeats WHERE process IN ({marks})"
                        f" AND beat_at + dead_after < {db_now(conn)}", names).fetchall()
    return {r[0] for r in rows}


class Heartbeat:
    """The thread beating for this process into one database until :meth:`stop` (or until
    the database object is gone)."""

    def __init__(self, db: Any, every: float, dead_after: float) -> None:
        self._db = weakref.ref(db)
        self.every = every
        self.dead_after = dead_after
        self.process = process_id()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="signoff-heartbeat", daemon=True)

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def _loop(self) -> None:
        first = True
        while first or not self._stop.wait(self.every):
            first = False
            db = self._db()
            if db is None:
                return
            try:
                with db.write() as tx:
                    beat(tx, self.process, self.dead_after)
            except Exception as exc:  # noqa: BLE001 - log_failure: known ones in one line
                log_failure(log, logging.WARNING, "heartbeat: could not write this process's beat; trying again", exc)
            del db
        db = self._db()
        if db is None:
            return
        try:
            with db.write() as tx:
                tx.execute("DELETE FROM heartbeats WHERE process=?", (self.process,))
        except Exception:  # noqa: BLE001 - the row then ages out like a killed process's
            pass
        try:
            db.close()  # this thread's connection
        except Exception:  # noqa: BLE001 - closing on the way out: the store may be gone
            pass

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(10)


_beating: dict[int, Heartbeat] = {}
_beating_lock = threading.Lock()


def ensure(db: Any) -> None:
    """Start this process's heartbeat into ``db`` unless it already beats there. Called where
    a lease is taken; cheap after the first call."""
    key = id(db)
    with _beating_lock:
        current = _beating.get(key)
        if current is not None and current._db() is db and current.process == process_id() \
                and not current._stop.is_set():
            return
        every, dead_after = settings()
        _beating[key] = Heartbeat(db, every, dead_after).start()


def stop(db: Any) -> None:
    """Stop beating into ``db`` (the engine is closing) and delete this process's row."""
    with _beating_lock:
        current = _beating.pop(id(db), None)
    if current is not None and current._db() is db:
        current.stop()
