"""The parts every engine user shares: database, clock, flows, policy, data directory."""
from __future__ import annotations

from pathlib import Path

from engine.clock import Clock, SystemClock, format_time
from engine.flows.registry import FlowRegistry
from engine.ids import RandomIds
from engine.policy import SingleUserPolicy
from engine.runtime.work import new_owner
from engine.store import Database


class Engine:
    def __init__(self, data_dir: Path | str, flow_dirs: list[Path] | None = None, *, clock: Clock | None = None,
                 policy=None, app_url: str | None = None, notifications=None, ids=None) -> None:
        self.data_dir = Path(data_dir)
        self.db = Database(self.data_dir)
        self.clock: Clock = clock or SystemClock()
        self.flows = FlowRegistry(self.db, list(flow_dirs or []), self.clock)
        self.policy = policy or SingleUserPolicy()
        self.app_url = app_url
        #: engine.notify.config.NotificationConfig, or None for no notifications
        self.notifications = notifications
        self.owner = new_owner()
        #: where new execution and request ids come from (engine.ids.SequentialIds in tests)
        self.ids = ids or RandomIds()

    def now(self) -> str:
        return format_time(self.clock.now())

    def app_link(self, namespace: str, flow_id: str, execution_id: str, app_id: str | None = None) -> str:
        base = (self.app_url or "signoff:").rstrip("/")
        suffix = f"?app={app_id}" if app_id else ""
        return f"{base}//executions/{namespace}/{flow_id}/{execution_id}{suffix}" if base.endswith(":") else \
            f"{base}/executions/{namespace}/{flow_id}/{execution_id}{suffix}"

    def close(self) -> None:
        self.db.close()
