"""The parts every engine user shares: database, clock, flows, policy, data directory."""
from __future__ import annotations

import threading
from datetime import timedelta
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from signoff.engine.clock import Clock, SystemClock, format_time
from signoff.engine.ids import RandomIds
from signoff.engine.policy import SingleUserPolicy
from signoff.engine.runtime.work import LEASE
from signoff.engine.store import open_database

if TYPE_CHECKING:
    from signoff.engine.flows.registry import FlowRegistry
    from signoff.engine.ids import Ids
    from signoff.engine.notify.config import NotificationConfig
    from signoff.engine.policy import Policy


class Engine:
    def __init__(self, data_dir: Path | str, flow_dirs: list[Path] | None = None, *, clock: Clock | None = None,
                 policy: Policy | None = None, public_url: str | None = None,
                 notifications: NotificationConfig | None = None, ids: Ids | None = None,
                 database: str | None = None) -> None:
        self.data_dir = Path(data_dir)
        #: the SQLite file in data_dir, or PostgreSQL when ``database`` is a postgresql:// URL
        self.db = open_database(self.data_dir, database)
        if database:
            # on PostgreSQL the data directory still holds this process's own files (the engine's
            # checkpoint key, local copies of FILE inputs): made as the SQLite store makes it
            try:
                self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            except OSError:
                pass  # unwritable: what needs it says so (or falls back) when it is used
        self.clock: Clock = clock or SystemClock()
        self.flow_dirs = list(flow_dirs or [])
        self.policy: Policy = policy or SingleUserPolicy()
        #: where `signoff serve` is reached from outside (links in notifications); None: signoff:// links
        self.public_url = public_url
        #: engine.notify.config.NotificationConfig, or None for no notifications
        self.notifications = notifications
        #: how long a runner's claim on an execution lasts unless renewed (engine.runtime.work)
        self.lease: timedelta = LEASE
        #: where new execution and request ids come from (engine.ids.SequentialIds in tests)
        self.ids: Ids = ids or RandomIds()
        #: per thread: executions started by triggers, not advanced yet (see take_triggered)
        self._triggered = threading.local()
        #: the newest audit checkpoint this process saw or signed, a lower bound of the stored
        #: one (engine.signing.checkpoints.write_checkpoint); None: not looked yet
        self.checkpoint_seen: int | None = None
        #: PostgreSQL: when the runner's last full look for queued work found some
        #: (engine.runtime.driver), None when it found none
        self.work_found_at: float | None = None
        #: when this process last looked for due notifications after a change (time.monotonic;
        #: engine.notify.outbox.deliver_after_change)
        self.outbox_looked_at: float | None = None

    @cached_property
    def flows(self) -> FlowRegistry:
        """The flows, made on first use: the console lists pending requests (its first screen)
        without them, and the flow model and input modules take ~8 ms to import."""
        from signoff.engine.flows.registry import FlowRegistry

        return FlowRegistry(self.db, self.flow_dirs, self.clock)

    def note_triggered(self, execution_id: str) -> None:
        ids: list[str] | None = getattr(self._triggered, "ids", None)
        if ids is None:
            ids = self._triggered.ids = []
        ids.append(execution_id)

    def take_triggered(self) -> list[str]:
        """Executions a trigger started in this thread since the last call (drive() advances
        them at once in embedded mode, instead of leaving them to the next tick). Per thread:
        the thread that started them takes them, and one that never does (a server's runner,
        `signoff worker`: ApprovalService.tick) drops its own, which are queued work anyway,
        so the list does not grow for the life of the process."""
        taken: list[str] = getattr(self._triggered, "ids", None) or []
        self._triggered.ids = []
        return taken

    def now(self) -> str:
        return format_time(self.clock.now())

    def request_link(self, target_id: str) -> str:
        """The link to a request or an execution's request (see engine.links)."""
        from signoff.engine.links import request_link

        return request_link(self.public_url, target_id)

    def app_link(self, execution_id: str, app_id: str | None = None) -> str:
        """``appLink()``: the link to the execution's request (engine.links says why not the
        request's own id). ``app_id`` names a Kestra App; signoff's request page is the one app
        for every flow, so every app id leads to the same page."""
        return self.request_link(execution_id)

    def functions(self, namespace: str, flow_id: str | None = None,
                  execution_id: str | None = None) -> dict[str, Any]:
        """The expression functions (secret, kv, now, appLink) for templates outside a running
        task: input ``defaults`` of a start form or of a decision's form. ``appLink()`` needs
        an execution, so it fails with a message where there is none yet."""
        from signoff.engine.errors import ExpressionError
        from signoff.engine.runtime.functions import kv_lookup_from, make_functions

        def link(app_id: str | None) -> str:
            if execution_id is None or flow_id is None:
                raise ExpressionError("appLink() names an execution and is not available before one starts")
            return self.app_link(execution_id, app_id)

        return make_functions(clock=self.clock, namespace=namespace, kv_lookup=kv_lookup_from(self.db),
                              app_link=link)

    def close(self) -> None:
        """Sign a checkpoint of the audit chain's head (engine.signing.checkpoints) if events
        were added since the last one, then close this thread's connection."""
        from signoff.engine.errors import StorageError
        from signoff.engine.runtime import heartbeat
        from signoff.engine.signing.checkpoints import write_checkpoint

        heartbeat.stop(self.db)  # a clean stop: this process's row goes (its leases were released)

        try:
            write_checkpoint(self, force=True)
        except (StorageError, OSError):
            pass  # a read-only or full data directory: the next writer signs the head
        self.db.close()
