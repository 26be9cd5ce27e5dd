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
  appends audit events NOTIFYs it at COMMIT (engine.audit.log). The notification is only a
  wake-up, the table is the truth: the watcher then reads the events after its head. A
  fallback read every :data:`FALLBACK_S` covers a lost notification; when the connection drops
  (PostgreSQL restarted) the watcher reconnects with a growing pause and reads again, so the
  feeds resume from where they were, without a gap.
- SQLite: one read every ``poll_s`` (every writer is on this machine).
- Either store: a commit made by this process (a decision through this replica) refreshes the
  head before the commit's caller goes on, so a client sees its own change at once.
"""
from __future__ import annotations

import bisect
import logging
import threading
from collections.abc import Iterable
from typing import Any

from signoff.engine.errors import log_failure

log = logging.getLogger("signoff.server.head")


CHANNEL = "signoff_audit"
FALLBACK_S = 1.0
KEEP = 20_000
_READ = 5_000

Event = dict[str, Any]


class HeadWatcher:
    """Follows the audit head of ``db`` for the feeds of one server process."""

    def __init__(self, db: Any, actions: Iterable[str], *, poll_s: float = 0.25) -> None:
        self.db = db
        self.actions = frozenset(actions)
        self.poll_s = poll_s
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

    def refresh(self) -> None:
        """Read the events committed after :attr:`head` (one reader at a time)."""
        with self._read_lock:
            if not self.ready:  # memory starts at the head: older events come from the database
                row = self.db.query_one("SELECT max(seq) FROM audit")
                with self._lock:
                    self.head = self.covered_from = int(row[0] or 0) if row else 0
                    self.ready = True
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

    def _safely_refresh(self) -> bool:
        try:
            self.refresh()
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
                    while not self._stop.is_set():
                        # caught up first (also what was committed while not listening), then
                        # woken by a notification or the fallback: one read serves them all
                        self._safely_refresh()
                        for _ in conn.notifies(timeout=FALLBACK_S, stop_after=1):
                            pass
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
