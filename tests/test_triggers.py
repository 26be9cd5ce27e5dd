"""Triggers (engine.triggers): Schedule with an injected clock (recoverMissedSchedules after a
downtime), the Flow-trigger chain, the operator's switch, load-time checks, and two real
`signoff worker` processes racing for the same due times."""
from __future__ import annotations

import subprocess
import time
from datetime import timedelta
from pathlib import Path

import pytest

from signoff.engine.clock import FakeClock
from signoff.engine.errors import FlowLoadError, NotFound, Refused
from signoff.engine.flows.loader import load_flow_text
from signoff.engine.governance.policy_file import parse_policy
from signoff.engine.identity import Identity
from tests.support import ALICE, BOB, SIGNOFF, clean_env, make_service, write_flows

HOURLY = """
id: report
namespace: ops
inputs:
  - id: when
    type: STRING
tasks:
  - id: say
    type: io.kestra.plugin.core.log.Log
    message: "{{ inputs.when }} {{ trigger.previous }} {{ trigger.next }}"
triggers:
  - id: hourly
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "0 * * * *"
    inputs:
      when: "{{ trigger.date }}"
{extra}
"""


def _scheduled(svc) -> list[dict]:
    """Executions in the order of their schedule date."""
    rows = svc.db.query("SELECT id FROM executions")
    return sorted((svc.get_execution(ALICE, r["id"]) for r in rows), key=lambda e: e["inputs"].get("when") or "")


def _dates(svc) -> list[str]:
    return [e["inputs"]["when"] for e in _scheduled(svc)]


@pytest.mark.parametrize("policy, expected", [
    (None, ["2026-01-05T10:00:00Z", "2026-01-05T11:00:00Z", "2026-01-05T12:00:00Z"]),  # Kestra's default: ALL
    ("ALL", ["2026-01-05T10:00:00Z", "2026-01-05T11:00:00Z", "2026-01-05T12:00:00Z"]),
    ("LAST", ["2026-01-05T12:00:00Z"]),
    ("NONE", []),
])
def test_missed_schedules_after_a_downtime(tmp_path: Path, policy: str | None, expected: list[str]) -> None:
    extra = f"    recoverMissedSchedules: {policy}" if policy else ""
    clock = FakeClock("2026-01-05T09:30:00Z")
    svc = make_service(tmp_path, {"report.yaml": HOURLY.replace("{extra}", extra)}, clock=clock)
    assert svc.tick(schedules=True) == 0  # first sight: armed for 10:00, nothing from the past
    [listed] = svc.list_triggers(ALICE)
    assert listed["next_at"] == "2026-01-05T10:00:00.000000Z" and listed["last_at"] is None
    clock.advance(timedelta(hours=3, minutes=5))  # down from 09:30 to 12:35: 10, 11 and 12 missed
    svc.tick(schedules=True)
    assert _dates(svc) == expected
    [listed] = svc.list_triggers(ALICE)
    assert listed["next_at"] == "2026-01-05T13:00:00.000000Z"
    # on time, every setting fires: 13:00 found at 13:00:20
    clock.advance(timedelta(minutes=25, seconds=20))
    svc.tick(schedules=True)
    assert _dates(svc) == [*expected, "2026-01-05T13:00:00Z"]
    last = _scheduled(svc)[-1]
    assert last["state"] == "SUCCESS" and last["started_by"] == "trigger:ops.report.hourly"
    assert last["origin"]["kind"] == "trigger" and last["origin"]["trigger_id"] == "hourly"
    assert last["logs"][0]["message"] == "2026-01-05T13:00:00Z 2026-01-05T12:00:00Z 2026-01-05T14:00:00Z"
    started = svc.history(ALICE, f"execution:{last['id']} action:execution.started")[0]
    assert started["actor"] == "trigger:ops.report.hourly"
    assert started["data"]["origin"] == {"kind": "trigger", "type": "io.kestra.plugin.core.trigger.Schedule",
                                         "trigger_id": "hourly", "date": "2026-01-05T13:00:00Z",
                                         "next": "2026-01-05T14:00:00Z", "previous": "2026-01-05T12:00:00Z"}
    # ticking again at the same time fires nothing more
    svc.tick(schedules=True)
    assert len(_dates(svc)) == len(expected) + 1


def test_schedule_in_a_time_zone_six_fields_and_disabling(tmp_path: Path) -> None:
    flow = HOURLY.replace("{extra}", '    timezone: Europe/Paris').replace('cron: "0 * * * *"', 'cron: "30 0 9 * * *"')
    clock = FakeClock("2026-01-05T07:00:00Z")
    admin = Identity("root", ())
    policy = parse_policy("bindings:\n  - role: admin\n    subjects: [user:root]\n    namespaces: ['*']\n"
                          "  - role: viewer\n    subjects: [user:alice]\n    namespaces: ['*']\n", "p.yaml")
    svc = make_service(tmp_path, {"report.yaml": flow}, clock=clock, policy=policy)
    svc.tick(schedules=True)
    assert svc.list_triggers(admin)[0]["next_at"] == "2026-01-05T08:00:30.000000Z"  # 09:00:30 in Paris (UTC+1)
    with pytest.raises(Refused):
        svc.set_trigger_enabled(ALICE, "ops", "report", "hourly", False)
    with pytest.raises(NotFound, match="no trigger `nope` \\(triggers: hourly\\)"):
        svc.set_trigger_enabled(admin, "ops", "report", "nope", False)
    off = svc.set_trigger_enabled(admin, "ops", "report", "hourly", False)
    assert off["disabled"] == "operator" and off["next_at"] is None
    clock.advance(timedelta(days=2))
    svc.tick(schedules=True)
    assert _dates(svc) == []
    on = svc.set_trigger_enabled(admin, "ops", "report", "hourly", True)
    assert on["disabled"] is None and on["next_at"] == "2026-01-07T08:00:30.000000Z"  # no backfill
    clock.advance(timedelta(hours=1, seconds=40))
    svc.tick(schedules=True)
    assert _dates(svc) == ["2026-01-07T09:00:30+01:00"]
    actions = [e["action"] for e in svc.history(admin, "action:trigger.*")]
    assert actions == ["trigger.enabled", "trigger.disabled"]


def test_disabled_in_the_flow_and_bad_inputs_are_audited(tmp_path: Path) -> None:
    flows = {"off.yaml": HOURLY.replace("{extra}", "    disabled: true").replace("id: report", "id: off"),
             "bad.yaml": HOURLY.replace("{extra}", "").replace("id: report", "id: bad")
                               .replace('when: "{{ trigger.date }}"', "nope: 1")}
    clock = FakeClock("2026-01-05T09:59:00Z")
    svc = make_service(tmp_path, flows, clock=clock)
    svc.tick(schedules=True)
    clock.advance(timedelta(minutes=1, seconds=5))
    svc.tick(schedules=True)
    assert _scheduled(svc) == []
    listed = {t["flow_id"]: t for t in svc.list_triggers(ALICE)}
    assert listed["off"]["disabled"] == "flow" and listed["bad"]["next_at"] == "2026-01-05T11:00:00.000000Z"
    [failed] = svc.history(ALICE, "action:trigger.failed")
    assert failed["flow_id"] == "bad" and "when" in failed["data"]["errors"]


CHAIN = {
    "pay.yaml": """
        id: pay
        namespace: finance.eu
        tasks:
          - id: approve
            type: io.kestra.plugin.core.flow.Approval
        """,
    "book.yaml": """
        id: book
        namespace: finance.ledger
        inputs:
          - id: source
            type: STRING
        tasks:
          - id: note
            type: io.kestra.plugin.core.log.Log
            message: "{{ trigger.flowId }} {{ trigger.state }} {{ trigger.executionId }}"
        triggers:
          - id: after_pay
            type: io.kestra.plugin.core.trigger.Flow
            inputs:
              source: "{{ trigger.namespace }}.{{ trigger.flowId }}"
            conditions:
              - type: io.kestra.plugin.core.condition.ExecutionStatus
                in: [SUCCESS]
              - type: io.kestra.plugin.core.condition.ExecutionFlow
                namespace: finance.eu
                flowId: pay
        """,
    "watch.yaml": """
        id: watch
        namespace: audit
        tasks:
          - id: note
            type: io.kestra.plugin.core.log.Log
            message: "{{ trigger.state }}"
        triggers:
          - id: any_finance_failure
            type: io.kestra.plugin.core.trigger.Flow
            conditions:
              - type: io.kestra.plugin.core.condition.ExecutionNamespace
                namespace: finance
                comparison: PREFIX
              - type: io.kestra.plugin.core.condition.ExecutionStatus
                notIn: [SUCCESS, WARNING]
        """,
}


def test_flow_trigger_chain_starts_the_next_flow_once(tmp_path: Path) -> None:
    svc = make_service(tmp_path, CHAIN)
    approved = svc.start_execution(BOB, "finance.eu", "pay", {})
    svc.approve(ALICE, [approved["requests"][0]["id"]])
    assert svc.get_execution(ALICE, approved["id"])["state"] == "SUCCESS"
    books = svc.list_executions(ALICE)
    chained = [e for e in books if e["flow_id"] == "book"]
    assert len(chained) == 1
    book = svc.get_execution(ALICE, chained[0]["id"])
    assert book["state"] == "SUCCESS" and book["inputs"] == {"source": "finance.eu.pay"}
    assert book["logs"][0]["message"] == f"pay SUCCESS {approved['id']}"
    assert book["started_by"] == "trigger:finance.ledger.book.after_pay"
    assert not [e for e in books if e["flow_id"] == "watch"]  # SUCCESS is excluded there
    # a denial kills `pay`: `watch` starts (prefix finance), `book` does not
    denied = svc.start_execution(BOB, "finance.eu", "pay", {})
    svc.deny(ALICE, [denied["requests"][0]["id"]], reason="no")
    flows = [e["flow_id"] for e in svc.list_executions(ALICE)]
    assert flows.count("book") == 1 and flows.count("watch") == 1
    watch = next(e for e in svc.list_executions(ALICE) if e["flow_id"] == "watch")
    assert svc.get_execution(ALICE, watch["id"])["logs"][0]["message"] == "KILLED"
    # the chained executions ending do not trigger anything else (no loop)
    assert len(svc.list_executions(ALICE)) == 4


@pytest.mark.parametrize("trigger, message", [
    ("  - id: t\n    type: io.kestra.plugin.core.trigger.Schedule\n    cron: '61 * * * *'",
     "6:11: invalid cron expression"),
    ("  - id: t\n    type: io.kestra.plugin.core.trigger.Schedule", "4:5: a Schedule trigger needs `cron`"),
    ("  - id: t\n    type: io.kestra.plugin.core.trigger.Schedule\n    cron: '@daily'\n    timezone: Mars/Olympus",
     "7:15: unknown time zone"),
    ("  - id: t\n    type: io.kestra.plugin.core.trigger.Schedule\n    cron: '@daily'\n"
     "    recoverMissedSchedules: SOME",
     "7:29: `recoverMissedSchedules` must be one of ALL, LAST, NONE"),
    ("  - id: t\n    type: io.kestra.plugin.core.trigger.Schedule\n    cron: '@daily'\n    stopAfter: [FAILED]",
     "7:5: `stopAfter` is not supported on a Schedule trigger"),
    ("  - id: t\n    type: io.kestra.plugin.core.trigger.Webhook\n    key: short",
     "6:10: `key` must be text of at least"),
    ("  - id: t\n    type: io.kestra.plugin.core.trigger.Cron", "5:11: unknown trigger type"),
    ("  - id: t\n    type: io.kestra.plugin.core.trigger.Flow\n    conditions:\n      - type: io.kestra.plugin.core"
     ".condition.ExecutionStatus\n        in: [DONE]", "8:13: `in` expects a list of states"),
    ("  - id: t\n    type: io.kestra.plugin.core.trigger.Flow\n    conditions:\n      - type: io.kestra.plugin.core"
     ".condition.ExecutionFlow\n        namespace: n\n        flowId: f",
     "9:17: this condition names the flow's own executions (n.f), but a Flow trigger never starts its own flow"),
])
def test_bad_triggers_fail_at_load_with_their_location(trigger: str, message: str) -> None:
    text = f"id: f\nnamespace: n\ntriggers:\n{trigger}\ntasks:\n  - id: a\n    type: io.kestra.plugin.core.log.Log\n" \
           "    message: hi\n"
    with pytest.raises(FlowLoadError) as err:
        load_flow_text(text, "f.yaml")
    assert f"f.yaml:{message}" in str(err.value), (text, str(err.value))


SELF_MATCHING = {
    "audit.yaml": """
        id: audit_trail
        namespace: ops
        tasks:
          - id: note
            type: io.kestra.plugin.core.log.Log
            message: "{{ trigger.namespace ?? 'by' }}.{{ trigger.flowId ?? 'hand' }} {{ trigger.state ?? '' }}"
        triggers:
          - id: any_ops_end
            type: io.kestra.plugin.core.trigger.Flow
            conditions:
              - type: io.kestra.plugin.core.condition.ExecutionNamespace
                namespace: ops
        """,
    "deploy.yaml": """
        id: deploy
        namespace: ops
        tasks:
          - id: note
            type: io.kestra.plugin.core.log.Log
            message: deployed
        """,
}


def test_a_flow_trigger_matching_its_own_flow_does_not_trigger_itself(tmp_path: Path) -> None:
    """Kestra drops a flow's own executions before its Flow trigger's conditions (no recursive
    triggers): `audit_trail` watches every `ops` execution, its own included by the conditions,
    and starts once per other flow's end, never for its own (no loop)."""
    svc = make_service(tmp_path, SELF_MATCHING)
    deploy = svc.start_execution(ALICE, "ops", "deploy", {})
    assert svc.get_execution(ALICE, deploy["id"])["state"] == "SUCCESS"
    svc.tick()
    svc.tick()
    executions = svc.list_executions(ALICE)
    assert sorted(e["flow_id"] for e in executions) == ["audit_trail", "deploy"], executions
    audit = next(e for e in executions if e["flow_id"] == "audit_trail")
    ran = svc.get_execution(ALICE, audit["id"])
    assert ran["state"] == "SUCCESS" and ran["logs"][0]["message"] == "ops.deploy SUCCESS"
    # started by hand, it ends without starting itself either
    direct = svc.start_execution(ALICE, "ops", "audit_trail", {})
    assert svc.get_execution(ALICE, direct["id"])["state"] == "SUCCESS"
    svc.tick()
    assert len(svc.list_executions(ALICE)) == 3
    assert [e["action"] for e in svc.history(ALICE, "action:execution.started")].count("execution.started") == 3


def test_two_workers_race_and_each_due_time_fires_once(tmp_path: Path) -> None:
    """Two real `signoff worker` processes on one database, a schedule due every second."""
    flows = write_flows(tmp_path / "flows", {"tick.yaml": """
        id: tick
        namespace: race
        inputs:
          - id: at
            type: STRING
        tasks:
          - id: say
            type: io.kestra.plugin.core.log.Log
            message: "{{ inputs.at }}"
        triggers:
          - id: every_second
            type: io.kestra.plugin.core.trigger.Schedule
            cron: "* * * * * *"
            inputs:
              at: "{{ trigger.date }}"
        """})
    data = tmp_path / "data"
    command = [*SIGNOFF, "--data-dir", str(data), "--flows", str(flows), "worker", "--interval", "0.05"]
    workers = [subprocess.Popen(command, env=clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
               for _ in range(2)]
    try:
        time.sleep(6)
    finally:
        for w in workers:
            w.terminate()
        for w in workers:
            w.wait(30)
    from signoff.engine.core import Engine
    from signoff.engine.service import ApprovalService

    svc = ApprovalService(Engine(data, [flows]))
    dates = [e["inputs"]["at"] for e in svc.list_executions(ALICE, limit=1000)]
    assert len(dates) >= 3, [w.stderr.read() for w in workers if w.stderr]
    assert len(dates) == len(set(dates)), sorted(dates)  # exactly one execution per due time
    seconds = sorted(int(d[17:19]) + 60 * int(d[14:16]) for d in dates)
    assert seconds == list(range(seconds[0], seconds[0] + len(seconds)))  # and none skipped
    owners = {e["started_by"] for e in svc.list_executions(ALICE, limit=1000)}
    assert owners == {"trigger:race.tick.every_second"}


def test_triggers_cli_list_disable_enable(tmp_path: Path) -> None:
    from tests.test_cli import Cli

    flows = write_flows(tmp_path / "flows", {"report.yaml": HOURLY.replace("{extra}", ""), **CHAIN})
    cli = Cli(tmp_path / "data", flows=flows)
    r = cli("triggers", "list", "--json")
    assert r.code == 0, r
    listed = {(t["flow_id"], t["trigger_id"]): t for t in r.json}
    assert set(listed) == {("report", "hourly"), ("book", "after_pay"), ("watch", "any_finance_failure")}
    assert listed[("report", "hourly")]["detail"] == {"cron": "0 * * * *", "timezone": "UTC",
                                                      "recoverMissedSchedules": "ALL"}
    assert listed[("report", "hourly")]["next_at"] is not None and listed[("book", "after_pay")]["next_at"] is None
    r = cli("triggers", "disable", "ops", "report", "hourly")
    assert r.code == 0 and r.out.strip() == "trigger ops.report.hourly disabled", r
    r = cli("triggers", "list")
    assert r.code == 0 and "off (operator)" in r.out and "ops.report" in r.out, r
    r = cli("triggers", "enable", "ops", "nope", "hourly")
    assert r.code == 1 and "no flow `nope`" in r.err, r
    r = cli("triggers", "enable", "ops", "report")
    assert r.code == 2, r
    r = cli("triggers", "enable", "ops", "report", "hourly", "--json")
    assert r.code == 0 and r.json["disabled"] is None, r


def test_a_disabled_flow_never_fires_and_concurrency_holds_for_triggered_starts(tmp_path: Path) -> None:
    gated = """
        id: gated
        namespace: ops
        concurrency:
          limit: 1
          behavior: FAIL
        tasks:
          - id: wait
            type: io.kestra.plugin.core.flow.Approval
        triggers:
          - id: hourly
            type: io.kestra.plugin.core.trigger.Schedule
            cron: "0 * * * *"
        """
    flows = {"gated.yaml": gated, "off.yaml": gated.replace("id: gated", "id: off").replace(
        "namespace: ops\n", "namespace: ops\n        disabled: true\n")}
    clock = FakeClock("2026-01-05T09:30:00Z")
    svc = make_service(tmp_path, flows, clock=clock)
    svc.tick(schedules=True)
    clock.advance(timedelta(hours=2))  # 10:00 and 11:00 are due: two starts, the limit is one
    svc.tick(schedules=True)
    executions = svc.list_executions(ALICE)
    assert {e["flow_id"] for e in executions} == {"gated"}
    assert sorted(e["state"] for e in executions) == ["FAILED", "PAUSED"]
    [failed] = [e for e in executions if e["state"] == "FAILED"]
    assert "concurrency limit reached" in failed["error"]
    listed = {t["flow_id"]: t for t in svc.list_triggers(ALICE)}
    assert listed["off"]["disabled"] == "flow" and listed["off"]["next_at"] is None
