"""The durable work queue: one row per execution that has something to do.

A runner takes an execution by writing its lease (owner + expiry) on the row; only the lease
holder may commit progress for that execution, and every progress transaction re-checks the
lease first. A process that dies leaves a lease that expires - or is taken over at once when
its owner's pid is gone (same host) or when its owner's process stopped heartbeating for
longer than its bound (any host, see engine.runtime.heartbeat) - so another worker or replica
picks the work up and nothing is continued twice.

A lease belongs to one running advance, not to a process: each advance holds its own owner id
(:func:`lease_holder`) for as long as it runs. Two threads of one process (the console's
decision worker and its tick, the server's request threads and its background runner) are two
holders, so the second is refused while the first is still walking the execution - also while
the first is outside any transaction, waiting on an HTTP call. An owner id of this process
whose advance has ended (it raised before releasing) is free at once, like a dead process's.
"""
from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING

from signoff.engine.clock import Clock, format_time
from signoff.engine.errors import SignoffError
from signoff.engine.runtime.heartbeat import process_id, process_of, silent
from signoff.engine.store.locks import skip_locked

if TYPE_CHECKING:
    from signoff.engine.store import Database

LEASE = timedelta(minutes=5)
log = logging.getLogger("signoff.work")


def _host_name() -> str:
    # what socket.gethostname() returns, without importing socket at every start-up
    if hasattr(os, "uname"):
        return os.uname().nodename
    import socket  # pragma: no cover - Windows

    return socket.gethostname()


HOST = _host_name()


def new_owner() -> str:
    """``host:pid:nonce:advance``: the process (engine.runtime.heartbeat) and this advance."""
    return f"{process_id()}:{os.urandom(6).hex()}"


#: owner ids of the advances running in this process now (see :func:`lease_holder`)
_live: set[str] = set()
_live_lock = threading.Lock()


@contextmanager
def lease_holder() -> Iterator[str]:
    """A fresh owner id for one advance, known to be alive while the block runs."""
    owner = new_owner()
    with _live_lock:
        _live.add(owner)
    try:
        yield owner
    finally:
        with _live_lock:
            _live.discard(owner)


@contextmanager
def kept_alive(db: Database, execution_id: str, owner: str, clock: Clock, lease: timedelta) -> Iterator[None]:
    """Renew ``owner``'s lease every third of its length while the block runs outside any
    transaction (an outside effect: an HTTP call or a shell command may take longer than a
    lease). Without it another process would take the execution over once the lease ran out
    and run the same effect again while the first still runs it. A renewal that finds the
    lease gone stops renewing; the commit after the effect then reports LeaseLost."""
    stop = threading.Event()

    def renew_until_stopped() -> None:
        try:
            while not stop.wait(lease.total_seconds() / 3):
                try:
                    with db.write() as tx:
                        renew(tx, execution_id, owner, clock, lease)
                except LeaseLost:
                    return
                except SignoffError as exc:  # database restarting: one line; renewed next time
                    log.warning("lease of execution %s: could not renew it (%s); trying again", execution_id, exc)
        finally:
            db.close()  # this thread's connection

    thread = threading.Thread(target=renew_until_stopped, name=f"signoff-lease-{execution_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


class LeaseLost(Exception):
    """Another runner holds this execution now; stop touching it."""


#: per thread: the execution ids enqueued inside :func:`noting_enqueues` blocks
_noted = threading.local()


@contextmanager
def noting_enqueues() -> Iterator[set[str]]:
    """The ids this thread enqueues inside the block (:func:`enqueue`), also told to an
    enclosing block. For the first run of an execution started in the same transaction
    (runner.ExecutionRun.advance): nobody else can see it before the commit, so its work row
    exists only if this thread enqueued it. An enqueue undone by a rolled-back savepoint stays
    noted: the caller then looks for work that is not there, which is harmless."""
    outer: set[str] | None = getattr(_noted, "ids", None)
    noted: set[str] = set()
    _noted.ids = noted
    try:
        yield noted
    finally:
        _noted.ids = outer
        if outer is not None:
            outer.update(noted)


def enqueue(tx: sqlite3.Connection, execution_id: str, now: str) -> None:
    noted: set[str] | None = getattr(_noted, "ids", None)
    if noted is not None:
        noted.add(execution_id)
    tx.execute("INSERT INTO work(execution_id, ready_at) VALUES (?, ?) ON CONFLICT(execution_id) DO UPDATE"
               " SET ready_at=CASE WHEN excluded.ready_at < work.ready_at THEN excluded.ready_at"
               " ELSE work.ready_at END, gen=work.gen+1", (execution_id, now))


def claim_new(tx: sqlite3.Connection, execution_id: str, owner: str, clock: Clock,
              lease: timedelta = LEASE) -> None:
    """Write the work row of an execution this runner is already advancing (started in this
    transaction, see runner.ExecutionRun ``queued=False``), leased to ``owner`` at
    generation 0. A row enqueued meanwhile gets a higher generation, so releasing it at
    generation 0 keeps it for another advance."""
    now = clock.now()
    tx.execute("INSERT INTO work(execution_id, ready_at, gen, lease_owner, lease_until) VALUES (?,?,0,?,?)"
               " ON CONFLICT(execution_id) DO UPDATE SET gen=work.gen+1, lease_owner=excluded.lease_owner,"
               " lease_until=excluded.lease_until",
               (execution_id, format_time(now), owner, format_time(now + lease)))


def owner_is_dead(owner: str | None) -> bool:
    if not owner:
        return True
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != HOST or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        with _live_lock:
            return owner not in _live
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def try_claim(tx: sqlite3.Connection, execution_id: str, owner: str, clock: Clock,
              lease: timedelta = LEASE) -> int | None:
    """Take the lease on one execution's work row if it is free, expired or orphaned.

    Returns the row's generation (bumped by every enqueue), or None when not taken.
    PostgreSQL: the row is locked while it is looked at (``SKIP LOCKED``: a row another
    replica is claiming or advancing right now is simply not taken), so two replicas never
    both take one lease."""
    row = tx.execute("SELECT lease_owner, lease_until, gen FROM work WHERE execution_id=?" + skip_locked(tx),
                     (execution_id,)).fetchone()
    if row is None:
        return None
    now = clock.now()
    if row[0] and not _is_free(row[0], row[1], format_time(now)) and not _silent(tx, [row[0]]):
        return None
    tx.execute("UPDATE work SET lease_owner=?, lease_until=? WHERE execution_id=?",
               (owner, format_time(now + lease), execution_id))
    gen: int = row[2]
    return gen


def _is_free(owner: str, until: str | None, now: str) -> bool:
    """May another advance take a lease held by ``owner`` until ``until``? An advance of this
    process holds it for as long as it runs, even past the expiry (its HTTP call may be slow;
    taking over would send it twice); another process's lease ends at its expiry or with it."""
    if _ours(owner):
        return owner_is_dead(owner)
    return (until or "") <= now or owner_is_dead(owner)


def _ours(owner: str) -> bool:
    host, _, rest = owner.partition(":")
    return host == HOST and rest.partition(":")[0] == str(os.getpid())


def _silent(conn: sqlite3.Connection, owners: list[str]) -> set[str]:
    """Those of ``owners`` (held by other processes) whose process stopped heartbeating."""
    processes = {p for p in map(process_of, owners) if p is not None and p != process_id()}
    dead = silent(conn, processes)
    return {o for o in owners if process_of(o) in dead}


def claimable(conn: sqlite3.Connection, clock: Clock, limit: int) -> list[str]:
    now = format_time(clock.now())
    # PostgreSQL: rows locked by a replica advancing them right now are skipped (the statement
    # runs on its own, so the locks are dropped again at once)
    rows = conn.execute("SELECT execution_id, lease_owner, lease_until FROM work WHERE ready_at<=?"
                        " ORDER BY ready_at LIMIT ?" + skip_locked(conn), (now, limit * 4)).fetchall()
    held = [owner for _, owner, until in rows if owner is not None and not _is_free(owner, until, now)]
    dead = _silent(conn, held) if held else set()
    out = []
    for execution_id, owner, until in rows:
        if owner is None or owner in dead or _is_free(owner, until, now):
            out.append(execution_id)
        if len(out) >= limit:
            break
    return out


def free_locked(tx: sqlite3.Connection, clock: Clock, limit: int) -> list[str]:
    """PostgreSQL, inside the caller's open transaction: ready rows with no lease or an expired
    one, locked until that transaction ends (``FOR UPDATE SKIP LOCKED``).

    Performance: :func:`claimable` drops its row locks at once, so every replica's runner
    listed the same rows and tried each of them (``try_claim``): two wasted statements per
    execution with three replicas. Rows listed here are skipped by every other replica until
    this transaction commits. Leases of dead owners that have not expired yet are not found
    here: the driver runs :func:`claimable` instead when it was idle, and at least every
    :data:`FULL_SCAN_EVERY_S` while it is busy (engine.runtime.driver)."""
    now = format_time(clock.now())
    rows = tx.execute("SELECT execution_id FROM work WHERE ready_at<=? AND (lease_owner IS NULL OR lease_until<=?)"
                      " ORDER BY ready_at LIMIT ? FOR UPDATE SKIP LOCKED", (now, now, limit)).fetchall()
    return [r[0] for r in rows]


#: how often a PostgreSQL runner that keeps finding free rows (:func:`free_locked`) also looks
#: for leases of dead owners (:func:`claimable`), seconds
FULL_SCAN_EVERY_S = 1.0


def renew(tx: sqlite3.Connection, execution_id: str, owner: str, clock: Clock, lease: timedelta = LEASE) -> None:
    cur = tx.execute("UPDATE work SET lease_until=? WHERE execution_id=? AND lease_owner=?",
                     (format_time(clock.now() + lease), execution_id, owner))
    if cur.rowcount != 1:
        raise LeaseLost(execution_id)


def release(tx: sqlite3.Connection, execution_id: str, owner: str, gen: int) -> bool:
    """Done with this execution for now: drop the row, unless something was enqueued for it
    since we claimed it (then only the lease is dropped, so it is picked up again).
    Returns True when more work is waiting."""
    cur = tx.execute("DELETE FROM work WHERE execution_id=? AND lease_owner=? AND gen=?", (execution_id, owner, gen))
    if cur.rowcount:
        return False
    tx.execute("UPDATE work SET lease_owner=NULL, lease_until=NULL WHERE execution_id=? AND lease_owner=?",
               (execution_id, owner))
    return True
