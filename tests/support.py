"""Helpers for engine tests: a real engine on a temporary data dir with flows written inline."""
from __future__ import annotations

import textwrap
from pathlib import Path

from engine.clock import FakeClock
from engine.core import Engine
from engine.identity import Identity
from engine.service import ApprovalService

ALICE = Identity("alice", ("finance",), source="os")
BOB = Identity("bob", ("ops",), source="os")


def write_flows(directory: Path, flows: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in flows.items():
        (directory / name).write_text(textwrap.dedent(text).lstrip())
    return directory


def make_service(tmp_path: Path, flows: dict[str, str] | None = None, *, clock: FakeClock | None = None,
                 policy=None, flow_dirs: list[Path] | None = None) -> ApprovalService:
    dirs = list(flow_dirs or [])
    if flows:
        dirs.append(write_flows(tmp_path / "flows", flows))
    engine = Engine(tmp_path / "data", dirs, clock=clock or FakeClock(), policy=policy)
    return ApprovalService(engine)


def runs(execution: dict) -> dict[str, str]:
    """path -> state of every task run."""
    return {t["path"]: t["state"] for t in execution["task_runs"]}


def pending_ids(svc: ApprovalService, who: Identity = ALICE) -> list[str]:
    return [r["id"] for r in svc.list_pending(who)]
