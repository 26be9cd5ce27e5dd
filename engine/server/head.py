"""The audit head as one server process sees it: what its live event feeds read.

Every change is an audit event, and audit sequence numbers are dense and in commit order on
both stores (engine.audit.log), so a client that remembers the last seq it saw and asks for
``seq > last`` never misses or repeats an event, whichever replica wrote it. This module saves
the asking: one watcher per server process follows the head and keeps the newest events (their
ids and actions, :data:`KEEP` of them) in memory; ``/api/v1/events`` (the SSE stream and the
JSON pages remote consoles poll) answers from that memory, so database load grows with
replicas, not with connected consoles. A client further behind than the memory reaches is
answered from the database (catch-up), as before.

- PostgreSQL: a dedicated connection LISTENs on :data:`CHANNEL`; every transaction that
  appends audit events NOTIFYs it at COMMIT (engine.audit.log), notifications arrive in commit
  order, and one carries its events' fields when they fit (engine.audit.log.notify_payload).
  The table stays the truth: events are added from a notification only when the first one is
  the watcher's head + 1 (nothing in between was missed); otherwise (a gap, a wake-up without
  events) the watcher reads the events after its head. A fallback read after
  :data:`FALLBACK_S` without notifications covers a lost last one; when the connection drops
  (PostgreSQL restarted) the watcher reconnects with a growing pause and reads again, so the
  feeds resume from where they were, without a gap.
- SQLite: one read every ``poll_s`` (every writer is on this machine).
- Either store: a commit made by this process (a decision through this replica) refreshes the
  head before the commit's caller goes on, so a client sees its own change at once (on
  PostgreSQL from the events the commit wrote, under the same head + 1 rule).
"""
from __future__ import annotations

import bisect
import json
import logging
import threading
import time
from collections.abc import Iterable
from typing import Any

from signoff.engine.errors import log_failure

log = logging.getLogger("signoff.server.head")


CHANNEL = "signoff_audit"
FALLBACK_S = 1.0
STOP_CHECK_S = 0.5
KEEP = 20_000
_READ = 5_000

Event = dict[str, Any]


def notified_events(payload: str) -> list[tuple[Any, ...]] | None:
    """The events a notification carries (engine.audit.log.notify_payload), or None for a
    wake-up without them (or a payload this version does not understand: then it reads)."""
    if not payload.startswith("["):
        return None
    try:
        events = json.loads(payload)
        rows = [(int(e[0]), *e[1:6]) for e in events if isinstance(e, list) and len(e) == 6]
    except (ValueError, TypeError):
        return None
    if not rows or len(rows) != len(events) or any(r[0] != rows[0][0] + i for i, r in enumerate(rows)):
        return None
    return rows


class HeadWatcher:
    """Follows the audit head of ``db`` for the feeds of one server process."""

    def __init__(self, db: Any, actions: Iterable[str], *, poll_s: float = 0.25,
                 fallback_s: float = FALLBACK_S) -> None:
        self.db = db
        self.actions = frozenset(actions)
        self.poll_s = poll_s
        self.fallback_s = fallback_s
        #: the newest seq read; every event up to it with a followed action is in memory from
        #: :attr:`covered_from` on
        self.head = 0
        self.covered_from = 0
        #: the head was read once: until then every answer comes from the database
        self.ready = False
        self._seqs: list[int] = []
        self._events: list[Event] = []
        self._lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: reads of the database by this watcher (tests compare it with the feeds' requests)
        self.reads = 0

    # -- following -------------------------------------------------------------------------
    def start(self) -> HeadWatcher:
        try:
            self.refresh()
        except Exception as exc:  # noqa: BLE001 - log_failure: known ones in one line
            log_failure(log, logging.WARNING, "event feed: cannot read the audit head yet", exc)
        self.db.audit_listeners.append(self.refresh)
        pg = getattr(self.db, "dialect", "sqlite") == "postgresql"
        self._thread = threading.Thread(target=self._listen if pg else self._poll, name="signoff-head", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self.refresh in self.db.audit_listeners:
            self.db.audit_listeners.remove(self.refresh)
        if self._thread is not None:
            self._thread.join(10)

    def refresh(self, known: list[tuple[Any, ...]] | None = None) -> None:
        """Take the events committed after :attr:`head`: ``known`` (a commit's events, their
        engine.audit.log.feed_fields) when they follow the head, else read (one reader at a
        time)."""
        with self._read_lock:
            if not self.ready:  # memory starts at the head: older events come from the database
                row = self.db.query_one("SELECT max(seq) FROM audit")
                with self._lock:
                    self.head = self.covered_from = int(row[0] or 0) if row else 0
                    self.ready = True
            if known:
                if known[-1][0] <= self.head:
                    return  # taken already (this process's own commit, then its notification)
                if known[0][0] == self.head + 1:
                    self._add(known)
                    return
            while True:
                self.reads += 1
                rows = self.db.query("SELECT seq, action, namespace, request_id, execution_id, actor FROM audit"
                                     " WHERE seq > ? ORDER BY seq LIMIT ?", (self.head, _READ))
                if not rows:
                    return
                self._add(rows)
                if len(rows) < _READ:
                    return

    def _add(self, rows: list[Any]) -> None:
        with self._lock:
            for row in rows:
                if row[1] in self.actions:
                    self._seqs.append(row[0])
                    self._events.append({"seq": row[0], "action": row[1], "namespace": row[2],
                                         "request_id": row[3], "execution_id": row[4], "actor": row[5]})
            self.head = max(self.head, rows[-1][0])
            if len(self._seqs) > KEEP:
                cut = len(self._seqs) - KEEP
                self.covered_from = self._seqs[cut - 1]
                del self._seqs[:cut]
                del self._events[:cut]

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_s):
            self._safely_refresh()
        self.db.close()  # this thread's connection

    def _safely_refresh(self, known: list[tuple[Any, ...]] | None = None) -> bool:
        try:
            self.refresh(known)
            return True
        except Exception as exc:  # noqa: BLE001 - log_failure: known ones in one line
            log_failure(log, logging.INFO, "event feed: cannot read the audit head; trying again", exc)
            return False

    def _listen(self) -> None:
        import psycopg

        pause = 0.2
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.db.url, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    pause = 0.2
                    # caught up first (also what was committed while not listening)
                    self._safely_refresh()
                    quiet_since = time.monotonic()
                    while not self._stop.is_set():
                        # (short waits: a stop is noticed within STOP_CHECK_S)
                        got = [n.payload for n in conn.notifies(timeout=min(self.fallback_s, STOP_CHECK_S),
                                                                stop_after=1)]
                        for payload in got:
                            self._safely_refresh(notified_events(payload))
                        if got:
                            quiet_since = time.monotonic()
                        elif time.monotonic() - quiet_since >= self.fallback_s:
                            self._safely_refresh()  # the fallback
                            quiet_since = time.monotonic()
            except psycopg.Error as exc:
                log_failure(log, logging.INFO, "event feed: lost the LISTEN connection; reconnecting", exc)
                self._safely_refresh()
                self._stop.wait(pause)
                pause = min(pause * 2, 5.0)
        self.db.close()  # this thread's connection

    # -- answering ---------------------------------------------------------------------------
    def window(self, after: int, limit: int) -> tuple[list[Event], int] | None:
        """The followed events in ``(after, last]``, last = min(head, after + limit), from
        memory; None when ``after`` is older than the memory reaches (read the database)."""
        with self._lock:
            if not self.ready or after < self.covered_from:
                return None
            last = min(self.head, after + limit) if self.head > after else self.head
            if last <= after:
                return [], self.head
            start = bisect.bisect_right(self._seqs, after)
            end = bisect.bisect_right(self._seqs, last)
            return [dict(e) for e in self._events[start:end]], last
