"""The failed-authentication throttle, kept in the database so every replica counts together.

Behind a load balancer an attacker's guesses land on every replica in turn; a count kept in
one process would give them one free allowance per replica. So each failure is one small
write transaction on the shared table ``auth_failures`` (SQLite or PostgreSQL alike):

- the client's row holds the times of its latest failures (a sliding window of
  ``WINDOW_S``); past ``FREE_FAILURES`` of them every further failure is answered after a delay
  that grows with the count, capped at ``MAX_DELAY_S``;
- the row is locked while it is read and written (``FOR UPDATE`` on PostgreSQL; SQLite's write
  transaction excludes other writers), so two replicas never both see the same count;
- at most one audit event per client every ``AUDIT_EVERY_S``, written in the same transaction
  that decides it (exactly once across replicas); failures inside that quiet period are counted
  (``unaudited``) and written later by :meth:`FailureThrottle.flush`, which any replica may run
  (rows another replica is flushing are skipped).

Times are wall-clock seconds (``time.time``): they are compared across hosts, which keep
their clocks in step (NTP) to well within the one-minute window.
"""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from signoff.engine.audit import append_event
from signoff.engine.clock import format_time
from signoff.engine.errors import log_failure
from signoff.engine.store.locks import RetryableStorageError, for_update, retrying, skip_locked

log = logging.getLogger("signoff.server.auth")

#: failures allowed per client and minute before answers slow down
FREE_FAILURES = 5
WINDOW_S = 60.0
DELAY_STEP_S = 0.25
MAX_DELAY_S = 2.0
#: at most one audit event per client in this many seconds
AUDIT_EVERY_S = 10.0
#: forget clients idle for this long
FORGET_AFTER_S = 600.0
#: failure times kept per client: past this many the delay is at its cap anyway
_KEEP = FREE_FAILURES + int(MAX_DELAY_S / DELAY_STEP_S)


@dataclass(frozen=True)
class Failure:
    """One refused attempt: counted under ``client``; audited as ``action`` by ``actor``."""

    client: str
    reason: str
    address: str
    actor: str = "anonymous"
    action: str = "auth.failed"
    extra: dict[str, Any] | None = None


def delay_for(failures: int) -> float:
    excess = failures - FREE_FAILURES
    return min(DELAY_STEP_S * excess, MAX_DELAY_S) if excess > 0 else 0.0


class FailureThrottle:
    def __init__(self, db: Any, *, clock: Any, wall: Callable[[], float] = time.time) -> None:
        self.db = db
        self.clock = clock
        self.wall = wall

    def failed(self, failure: Failure) -> float:
        """Record ``failure``; the delay before answering it. Never raises: when the database
        cannot count, the answer gets the longest delay (guessing stays slow)."""
        try:
            return retrying(self.db, lambda tx: self._record(tx, failure))
        except Exception as exc:  # noqa: BLE001 - log_failure: known ones in one line
            log_failure(log, logging.WARNING, f"could not count a failed authentication from {failure.address}", exc)
            return MAX_DELAY_S

    def _record(self, tx: Any, failure: Failure) -> float:
        now = self.wall()
        extra = json.dumps(failure.extra or {}, sort_keys=True)
        tx.execute("INSERT INTO auth_failures(client, recent, seen, last_audit, unaudited, reasons, address, actor,"
                   " action, extra) VALUES (?, '[]', ?, NULL, 0, '[]', ?, ?, ?, ?) ON CONFLICT (client) DO NOTHING",
                   (failure.client, now, failure.address, failure.actor, failure.action, extra))
        row = tx.execute("SELECT recent, last_audit, unaudited, reasons FROM auth_failures WHERE client=?"
                         + for_update(tx), (failure.client,)).fetchone()
        if row is None:  # forgotten by another replica's flush between the two statements
            raise RetryableStorageError("an idle client's row was removed meanwhile")
        recent = [t for t in json.loads(row["recent"]) if t >= now - WINDOW_S][-(_KEEP - 1):] + [now]
        unaudited = int(row["unaudited"]) + 1
        reasons = sorted({*json.loads(row["reasons"]), failure.reason})
        last_audit = row["last_audit"]
        if last_audit is None or now - float(last_audit) >= AUDIT_EVERY_S:
            self._audit(tx, failure.address, failure.reason, unaudited, reasons, actor=failure.actor,
                        action=failure.action, extra=failure.extra or {})
            last_audit, unaudited, reasons = now, 0, []
        tx.execute("UPDATE auth_failures SET recent=?, seen=?, last_audit=?, unaudited=?, reasons=?, address=?,"
                   " actor=?, action=?, extra=? WHERE client=?",
                   (json.dumps(recent), now, last_audit, unaudited, json.dumps(reasons), failure.address,
                    failure.actor, failure.action, extra, failure.client))
        return delay_for(len(recent))

    def flush(self, *, force: bool = False) -> int:
        """Audit the failures not audited yet (those inside a client's quiet period) and forget
        clients idle for ``FORGET_AFTER_S``; how many events were written."""
        try:
            return retrying(self.db, lambda tx: self._flush(tx, force))
        except Exception as exc:  # noqa: BLE001 - log_failure: known ones in one line
            log_failure(log, logging.WARNING, "could not audit failed authentications yet", exc)
            return 0

    def _flush(self, tx: Any, force: bool) -> int:
        now = self.wall()
        due = now if force else now - AUDIT_EVERY_S
        rows = tx.execute("SELECT client, unaudited, reasons, address, actor, action, extra FROM auth_failures"
                          " WHERE unaudited > 0 AND (last_audit IS NULL OR last_audit <= ?) ORDER BY client"
                          + skip_locked(tx), (due,)).fetchall()
        for row in rows:
            reasons = json.loads(row["reasons"])
            self._audit(tx, row["address"], reasons[0], int(row["unaudited"]), reasons, actor=row["actor"],
                        action=row["action"], extra=json.loads(row["extra"]))
            tx.execute("UPDATE auth_failures SET last_audit=?, unaudited=0, reasons='[]' WHERE client=?",
                       (now, row["client"]))
        tx.execute("DELETE FROM auth_failures WHERE unaudited=0 AND seen < ?", (now - FORGET_AFTER_S,))
        return len(rows)

    def _audit(self, tx: Any, client: str, reason: str, count: int, reasons: list[str], *, actor: str,
               action: str, extra: dict[str, Any]) -> None:
        data = {"client": client, "reason": reason, "count": count, **extra}
        if len(reasons) > 1:
            data["reasons"] = reasons
        append_event(tx, at=format_time(self.clock.now()), actor=actor, action=action, data=data)
