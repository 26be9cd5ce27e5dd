"""`signoff demo` end to end (issue 10): a new user's first journey through the console ends
as designed, with what each flow sent visible.

The demo data directory is seeded exactly as `signoff demo` does (console.demo.seed), its
loopback sinks are started and the data directory pointed at them (console.demo.start_sinks),
and the console (Pilot, LocalBackend) shows the sinks' notices (console.demo.console_notices).
The journey: ``/payment``, enter, ``a`` (all 14 payment requests), ``y``, ``y``: the 8
single-approval payments end SUCCESS with one call each to the payments sink, the 6 dual-control
ones wait at 1/2. Then every other sample flow is decided to its end (the seeded ones through
the console's backend with the sinks still running): each ends SUCCESS, or FAILED only on the
documented deny path of data_deletion (no verified backup).
"""
from __future__ import annotations

import asyncio
import collections
import json
import re
from pathlib import Path

import pytest

from signoff.console.backend import LocalBackend
from signoff.console.config import ConsoleConfig
from signoff.console.demo import console_notices, seed, start_sinks
from signoff.console.demo_sinks import SECRET_ENDPOINTS, DemoSinks
from signoff.console.screens.confirm import ConfirmScreen
from signoff.console.settings import sample_flows_dir
from signoff.engine.core import Engine
from signoff.engine.identity import Identity
from signoff.engine.notify.config import load_notifications
from signoff.engine.policy import load_policy
from signoff.engine.service import ApprovalService
from tests.console.conftest import loaded, wait_for
from tests.torture.payment_world import settled

ME = Identity("olivia", source="os")


@pytest.fixture
def demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SIGNOFF_CONFIG_DIR", str(tmp_path / "config"))
    for name in SECRET_ENDPOINTS:  # start_sinks sets them; monkeypatch puts the old ones back
        monkeypatch.setenv(f"SECRET_{name}", "")
    data = tmp_path / "demo"
    report = seed(data, user=ME.name, count=40)
    assert report["pending"] >= 40 and report["failed"] == 0
    sinks, notifications = start_sinks(data, ME.name)
    engine = Engine(data, [sample_flows_dir()], policy=load_policy(data / "policy.yaml"),
                    notifications=load_notifications(notifications))
    service = ApprovalService(engine)
    yield service, sinks
    engine.close()
    sinks.stop()


def sent(sinks: DemoSinks) -> list[dict]:
    return [json.loads(line) for line in sinks.log_path.read_text().splitlines()]


async def payment_journey(service: ApprovalService, sinks: DemoSinks, tmp_path: Path) -> list[str]:
    """The issue's journey; returns the console's notices."""
    from signoff.console.app import SignoffApp

    # polls (and the engine tick every 5th) every 50 ms: the tick runs while the console decides
    app = SignoffApp(LocalBackend(service, identity=ME, origin="console"),
                     config=ConsoleConfig.load(tmp_path / "config" / "config.toml"), poll_interval=0.05)
    sinks.subscribe(console_notices(app, sinks.log_path))
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot)
        table = app.pending_view.table
        await pilot.press("slash", *"payment", "enter")
        assert table.visible_count == 14
        await pilot.press("a")
        assert len(table.marked) == 14
        await pilot.press("y")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_for(pilot, lambda: table.visible_count == 6, timeout=60)
        await wait_for(pilot, lambda: settled(service.engine), timeout=60)
        await wait_for(pilot, lambda: any("payments API" in n.message for n in app._notifications), timeout=10)
        await pilot.pause(0.6)  # a second notice for calls that came later
        return [f"{n.title}\n{n.message}" for n in app._notifications]


def test_demo_payment_journey_ends_as_designed_and_shows_what_was_sent(demo, tmp_path: Path) -> None:
    service, sinks = demo
    notices = asyncio.run(payment_journey(service, sinks, tmp_path))

    executions = service.list_executions(ME, limit=1000)
    payments = [e for e in executions if e["flow_id"] == "payment_approval"]
    states = collections.Counter(e["state"] for e in payments)
    assert states == {"SUCCESS": 8, "PAUSED": 6}, [(e["state"], e["error"]) for e in payments]
    waiting = [r for r in service.list_pending(ME) if r["flow_id"] == "payment_approval"]
    assert [(r["approvals"], r["required"]) for r in waiting] == [(1, 2)] * 6

    succeeded = {e["id"] for e in payments if e["state"] == "SUCCESS"}
    calls = [c for c in sent(sinks) if c["to"] == "payments API"]
    assert sorted(c["idempotency_key"] for c in calls) == sorted(f"{e}:submit_payment:1" for e in succeeded)
    for call in calls:
        assert call["method"] == "POST" and call["path"] == "/payments-api/payments"
        assert [d["by"] for d in call["body"]["approved_by"]] == ["olivia"]
        execution = service.get_execution(ME, call["body"]["execution"])
        submit = next(t for t in execution["task_runs"] if t["path"] == "submit_payment")
        assert submit["outputs"]["code"] == 201 and "demo-" in submit["outputs"]["body"]
        assert [m["message"] for m in execution["logs"]][-1].endswith("submitted: HTTP 201")
    # the console said so: notices that add up to the 8 payments, each naming its payee
    counted = 0
    for notice in notices:
        title, _, message = notice.partition("\n")
        if "payments API" not in message:
            continue
        many = re.match(r"(\d+) calls by flows", title)
        counted += int(many.group(1)) if many else 1
        assert re.search(r"EUR|USD|GBP", message) and "approved by olivia" in message
    assert counted == 8
    # signoff's own notifications (decided) went to the Slack sink as well
    assert any(c["to"] == "Slack (signoff notification)" for c in sent(sinks))


FORM_VALUES = {
    "access_request": {"approved": True, "note": "ok for the incident"},
    "config_change": {"window": "now"},
    "content_moderation": {"categories": ["spam"], "action": "hide"},
    "data_deletion": {"backup_verified": True, "backup_id": "snap-2026-12-01"},
    "prod_deploy": {},
}


def test_every_seeded_demo_flow_runs_to_its_end_against_the_sinks(demo) -> None:
    service, sinks = demo
    backend = LocalBackend(service, identity=ME, origin="console")
    pending = [r for r in service.list_pending(ME) if r["flow_id"] != "payment_approval"]
    by_flow = collections.defaultdict(list)
    for r in pending:
        by_flow[r["flow_id"]].append(r["id"])
    assert set(by_flow) == set(FORM_VALUES)
    no_backup = by_flow["data_deletion"].pop()  # the documented deny path: no verified backup
    outcomes = backend.decide([no_backup], "approve", inputs={"backup_verified": False, "backup_id": "none"})
    assert outcomes[0].ok
    for flow_id, ids in by_flow.items():
        outcomes = backend.decide(ids, "approve", inputs=FORM_VALUES[flow_id])
        assert all(o.ok for o in outcomes), outcomes
    # prod_deploy asks security and the release manager: both requests were pending, both approved
    assert not [r for r in service.list_pending(ME) if r["flow_id"] != "payment_approval"]
    assert settled(service.engine)
    ended = [e for e in service.list_executions(ME, limit=1000) if e["flow_id"] != "payment_approval"]
    wrong = [(e["flow_id"], e["state"], e["error"]) for e in ended if e["state"] != "SUCCESS"]
    assert len(wrong) == 1 and wrong[0][1] == "FAILED" and "did not verify a backup" in wrong[0][2], wrong
    received = collections.Counter(c["to"] for c in sent(sinks))
    assert received["IAM API"] == len(by_flow["access_request"])
    assert received["deploy hook"] == len({service.get_request(ME, i)["execution_id"] for i in by_flow["prod_deploy"]})
    assert received["content API"] == len(by_flow["content_moderation"])


def test_vacation_flow_started_in_the_demo_reaches_slack_and_the_hr_system(demo) -> None:
    """The seed's own flow (sample_flows/vacation_approval.yaml, unchanged) through the demo."""
    service, sinks = demo
    execution = service.start_execution(ME, "hr.operations", "vacation_approval",
                                        {"employee": "dana", "start_date": "2026-12-21", "end_date": "2026-12-31"})
    assert execution["state"] == "PAUSED"
    [request] = execution["requests"]
    outcomes = LocalBackend(service, identity=ME).decide([request["id"]], "approve",
                                                           inputs={"approved": True, "reason": "enjoy"})
    assert outcomes[0].ok
    execution = service.get_execution(ME, execution["id"])
    assert (execution["state"], execution["error"]) == ("SUCCESS", None)
    calls = {c["to"]: c for c in sent(sinks)}
    assert "Review request from dana" in calls["Slack"]["body"]["text"]
    assert calls["HR system"]["body"] == {"employee": "dana", "status": "APPROVED", "notes": "enjoy"}
