"""The server's background runner: continues executions, applies timers, sends notifications.

A daemon thread loops ``service.tick()`` (timers, queued work, notification outbox) and
sleeps ``interval`` seconds when there was nothing to do. ``stop()`` asks it to end and
waits for the tick in progress: every step of a tick commits on its own (a decision was
committed before it was acknowledged; an execution step is leased and resumable), so a
runner stopped - or killed - between steps loses nothing, and another process continues
where it stopped once its lease lapses.
"""
from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from signoff.engine.errors import log_failure

if TYPE_CHECKING:
    from signoff.engine.service import ApprovalService

log = logging.getLogger("signoff.server.runner")


class Runner:
    def __init__(self, service: ApprovalService, *, interval: float = 0.2, error_pause: float = 2.0) -> None:
        self.service = service
        self.interval = interval
        self.error_pause = error_pause
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Runner:
        from signoff.engine.runtime import heartbeat

        # beating from the start: replicas on other hosts take this one's leases over when the
        # beats stop (engine.runtime.heartbeat)
        heartbeat.ensure(self.service.engine.db)
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="signoff-runner", daemon=True)
            self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                done = self.service.tick(schedules=True)
            except Exception as exc:  # noqa: BLE001 - log_failure: known ones in one line
                if self._stop.is_set() or self.service.engine.db.stopping:  # (no retry to announce)
                    log_failure(log, logging.WARNING, "background runner: stopped; its last tick failed", exc)
                    break
                retry = f"background runner: tick failed; retrying in {self.error_pause:.1f}s"
                log_failure(log, logging.WARNING, retry, exc)
                self._stop.wait(self.error_pause)
                continue
            if not done:
                self._when_idle()
                self._stop.wait(self.interval)
        try:
            self.service.engine.db.close()  # this thread's connection
        except Exception:  # noqa: BLE001 - closing on the way out: the store may already be gone
            pass

    def _when_idle(self) -> None:
        """Nothing was due: feed the full-text words with the events appended since
        (engine.audit.fulltext_feed), so a search seldom has a backlog to index first."""
        from signoff.engine.audit.fulltext_feed import catch_up

        try:
            catch_up(self.service.engine.db)
        except Exception as exc:  # noqa: BLE001 - log_failure: a search catches up itself anyway
            log_failure(log, logging.WARNING, "background runner: indexing the audit trail failed", exc)

    def stop(self, timeout: float = 60.0) -> bool:
        """Ask the runner to stop after its current tick; True when it has stopped."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True
