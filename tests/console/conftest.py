"""Console test helpers: a real engine on tmp_path (fixed clock, sequential ids) behind LocalBackend."""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from signoff.console.backend import LocalBackend
from signoff.console.config import ConsoleConfig
from signoff.engine.clock import FakeClock
from signoff.engine.core import Engine
from signoff.engine.identity import Identity
from signoff.engine.ids import SequentialIds
from signoff.engine.service import ApprovalService
from tests.support import write_flows

START = "2026-01-05T09:00:00Z"
ME = Identity("olivia", ("ops",), source="os")
DANA = Identity("dana", source="demo")
BOB = Identity("bob", source="os")

FLOWS = {
    "payment.yaml": """
        id: payment
        namespace: acme.finance
        description: Supplier payment
        inputs:
          - id: amount
            type: INT
          - id: payee
            type: STRING
        tasks:
          - id: review
            type: io.kestra.plugin.core.flow.Approval
            timeout: PT2H
            expireBehavior: FAIL
            commentRequired: ON_DENY
            context:
              summary: "Pay {{ inputs.amount }} EUR to {{ inputs.payee }}"
              details: |
                ### Payment

                **Payee:** {{ inputs.payee }}
              impact: "Releases {{ inputs.amount }} EUR."
            inputs:
              - id: ticket
                type: STRING
                description: Change ticket, e.g. T-12
                validator: "^T-[0-9]+$"
          - id: done
            type: io.kestra.plugin.core.log.Log
            message: paid
    """,
    "deploy.yaml": """
        id: deploy
        namespace: acme.platform
        inputs:
          - id: service
            type: STRING
        tasks:
          - id: gate
            type: io.kestra.plugin.core.flow.Pause
            context:
              summary: "Deploy {{ inputs.service }}"
          - id: done
            type: io.kestra.plugin.core.log.Log
            message: deployed
    """,
    "selfcheck.yaml": """
        id: selfcheck
        namespace: acme.platform
        tasks:
          - id: gate
            type: io.kestra.plugin.core.flow.Pause
            allowSelfApproval: false
            context:
              summary: "Four-eyes check"
          - id: done
            type: io.kestra.plugin.core.log.Log
            message: ok
    """,
}


@dataclass
class Env:
    tmp_path: Path
    clock: FakeClock
    service: ApprovalService
    backend: LocalBackend
    config_path: Path

    def start(self, flow: str, inputs: dict[str, Any] | None = None, *, who: Identity = DANA,
              namespace: str | None = None, minutes_later: int = 1) -> dict[str, Any]:
        ns = namespace or {"payment": "acme.finance"}.get(flow, "acme.platform")
        self.clock.advance(timedelta(minutes=minutes_later))
        return self.service.start_execution(who, ns, flow, inputs or {})

    def pending(self) -> list[dict[str, Any]]:
        return self.service.list_pending(ME)

    def pending_ids(self) -> list[str]:
        return [r["id"] for r in self.pending()]

    def other_service(self) -> ApprovalService:
        """A second engine on the same data dir: "another process"."""
        engine = Engine(self.tmp_path / "data", [self.tmp_path / "flows"], clock=self.clock, ids=SequentialIds())
        return ApprovalService(engine)

    def app(self, **kwargs: Any):
        from signoff.console.app import SignoffApp

        kwargs.setdefault("config", ConsoleConfig.load(self.config_path))
        kwargs.setdefault("clock", self.clock)
        return SignoffApp(self.backend, **kwargs)


def make_env(tmp_path: Path, *, payments: int = 3, deploys: int = 2, selfcheck: int = 0) -> Env:
    clock = FakeClock(START)
    flows_dir = write_flows(tmp_path / "flows", FLOWS)
    engine = Engine(tmp_path / "data", [flows_dir], clock=clock, ids=SequentialIds())
    service = ApprovalService(engine)
    env = Env(tmp_path, clock, service, LocalBackend(service, identity=ME), tmp_path / "config" / "config.toml")
    payees = ["Acme GmbH", "Globex Ltd", "Initech", "Umbrella Corp", "Hooli", "Stark Industries"]
    for i in range(payments):
        env.start("payment", {"amount": 100 * (i + 1), "payee": payees[i % len(payees)]})
    for i in range(deploys):
        env.start("deploy", {"service": f"svc-{i + 1}"})
    for _ in range(selfcheck):
        env.start("selfcheck", who=ME)
    clock.advance(timedelta(minutes=100))  # the first payments are due within 15 minutes now
    return env


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Env:
    monkeypatch.setenv("SIGNOFF_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.delenv("NO_COLOR", raising=False)
    e = make_env(tmp_path)
    yield e
    e.service.engine.close()


async def wait_for(pilot, condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Let the app run until ``condition()`` holds (workers are real threads)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await pilot.pause(0.02)


async def loaded(pilot) -> None:
    app = pilot.app

    def ready() -> bool:
        try:
            return app.pending_view.loaded
        except Exception:  # noqa: BLE001 - not composed yet
            return False

    await wait_for(pilot, ready)
    await pilot.pause()
