"""Timeout governance (escalation, re-issue, reminders), notifications, and multi-process races."""
from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from signoff.engine.clock import FakeClock
from signoff.engine.identity import Identity
from signoff.engine.notify.config import NotificationConfig, Target
from tests.support import ALICE, BOB, make_service, write_flows

CFO = Identity("carla", ("cfo",))

ESCALATING = """
id: pay
namespace: company.finance
tasks:
  - id: approve_payment
    type: io.kestra.plugin.core.flow.Pause
    timeout: PT1H
    behavior: ESCALATE
    assignment:
      users: [alice]
    escalation:
      assignment:
        groups: [cfo]
      timeout: PT30M
    reminders: [PT30M, PT10M]
    context:
      summary: "Pay invoice"
"""


def actions(svc) -> list[str]:
    return [r["action"] for r in svc.db.query("SELECT action FROM audit ORDER BY seq")]


def test_reminders_then_escalation_then_escalated_approver_decides(tmp_path):
    clock = FakeClock("2026-01-05T09:00:00Z")
    svc = make_service(tmp_path, {"pay.yaml": ESCALATING}, clock=clock)
    ex = svc.start_execution(BOB, "company.finance", "pay", {})
    rid = ex["requests"][0]["id"]
    clock.advance(timedelta(minutes=31))
    svc.tick()
    assert actions(svc).count("request.reminded") == 1
    clock.advance(timedelta(minutes=20))
    svc.tick()
    assert actions(svc).count("request.reminded") == 2
    [refused] = svc.approve(CFO, [rid])
    assert refused.outcome == "not_eligible"
    assert "assigned to alice" in refused.message
    clock.advance(timedelta(minutes=10))  # past the due time: escalate
    svc.tick()
    request = svc.get_request(ALICE, rid)
    assert request["state"] == "PENDING"
    assert request["due_at"] == "2026-01-05T10:31:00.000000Z"
    assert request["rules"]["escalatedTo"] == {"users": [], "groups": ["cfo"]}
    assert "request.escalated" in actions(svc)
    [no_longer] = svc.approve(ALICE, [rid])
    assert no_longer.outcome == "not_eligible"
    [ok] = svc.approve(CFO, [rid])
    assert ok.outcome == "decided"
    assert svc.get_execution(ALICE, ex["id"])["state"] == "SUCCESS"


def test_escalation_timeout_fails_the_execution(tmp_path):
    clock = FakeClock()
    svc = make_service(tmp_path, {"pay.yaml": ESCALATING}, clock=clock)
    ex = svc.start_execution(BOB, "company.finance", "pay", {})
    clock.advance(timedelta(minutes=61))
    svc.tick()
    clock.advance(timedelta(minutes=31))
    svc.tick()
    done = svc.get_execution(ALICE, ex["id"])
    assert done["state"] == "FAILED"
    assert done["requests"][0]["state"] == "EXPIRED"


def test_reissue_up_to_max_then_fail(tmp_path):
    flow = """
    id: ri
    namespace: t.ns
    tasks:
      - id: gate
        type: io.kestra.plugin.core.flow.Pause
        timeout: PT1H
        behavior: REISSUE
        maxReissues: 2
    """
    clock = FakeClock()
    svc = make_service(tmp_path, {"ri.yaml": flow}, clock=clock)
    ex = svc.start_execution(BOB, "t.ns", "ri", {})
    for expected in (1, 2):
        clock.advance(timedelta(minutes=61))
        svc.tick()
        assert actions(svc).count("request.reissued") == expected
        assert svc.get_execution(ALICE, ex["id"])["state"] == "PAUSED"
    clock.advance(timedelta(minutes=61))
    svc.tick()
    assert svc.get_execution(ALICE, ex["id"])["state"] == "FAILED"
    assert actions(svc).count("request.expired") == 1


SIMPLE = """
id: simple
namespace: company.ops
tasks:
  - id: gate
    type: io.kestra.plugin.core.flow.Pause
    context:
      summary: "Restart {{ flow.id }}"
"""


def test_notifications_sent_on_create_and_decide(tmp_path, http_listener):
    svc = make_service(tmp_path, {"simple.yaml": SIMPLE})
    svc.engine.notifications = NotificationConfig([
        Target("slack", http_listener.url + "/slack", ["company.*"]),
        Target("teams", http_listener.url + "/teams", ["other.ns"]),
    ])
    ex = svc.start_execution(BOB, "company.ops", "simple", {})
    sent = http_listener.requests_to("/slack")
    assert len(sent) == 1
    assert sent[0].json["text"].startswith("Approval requested: Restart simple")
    svc.approve(ALICE, [ex["requests"][0]["id"]], reason="go")
    sent = http_listener.requests_to("/slack")
    assert len(sent) == 2
    assert "Outcome: APPROVED by alice" in sent[1].json["text"]
    assert "Reason: go" in sent[1].json["text"]
    assert http_listener.requests_to("/teams") == []


def test_failed_notification_is_audited_and_never_blocks(tmp_path, http_listener):
    clock = FakeClock()
    svc = make_service(tmp_path, {"simple.yaml": SIMPLE}, clock=clock)
    http_listener.respond("/down", 503, "maintenance")
    svc.engine.notifications = NotificationConfig([Target("slack", http_listener.url + "/down", ["*"])])
    ex = svc.start_execution(BOB, "company.ops", "simple", {})
    [outcome] = svc.approve(ALICE, [ex["requests"][0]["id"]])
    assert outcome.outcome == "decided"
    assert svc.get_execution(ALICE, ex["id"])["state"] == "SUCCESS"
    failures = svc.db.query("SELECT data FROM audit WHERE action='notification.failed'")
    assert len(failures) == 2  # one for "created", one for "decided": first attempts
    assert "HTTP 503" in json.loads(failures[0]["data"])["error"]
    for _ in range(5):  # retries with backoff until given up
        clock.advance(timedelta(hours=1))
        svc.tick()
    rows = svc.db.query("SELECT attempts, done_at FROM outbox")
    assert all(r["attempts"] == 5 and r["done_at"] for r in rows)
    finals = [json.loads(r["data"]) for r in svc.db.query("SELECT data FROM audit WHERE action='notification.failed'")]
    assert sum(1 for d in finals if d["final"]) == 2


RACE_SCRIPT = r"""
import json, sys
from signoff.engine.core import Engine
from signoff.engine.identity import Identity
from signoff.engine.service import ApprovalService
data, flows, who, ids_file, verdict = sys.argv[1:6]
svc = ApprovalService(Engine(data, [flows]))
ids = json.load(open(ids_file))
outcomes = svc.decide(Identity(who), ids, verdict)
print(json.dumps([o.to_dict() for o in outcomes]))
"""


def race(tmp_path: Path, flow: str, people: list[str], count: int) -> tuple[object, list[list[dict]]]:
    flows = write_flows(tmp_path / "flows", {"r.yaml": flow})
    svc = make_service(tmp_path, flow_dirs=[flows])
    ids = [svc.start_execution(BOB, "t.race", "r", {})["requests"][0]["id"] for _ in range(count)]
    ids_file = tmp_path / "ids.json"
    ids_file.write_text(json.dumps(ids))
    script = tmp_path / "race.py"
    script.write_text(RACE_SCRIPT)
    env_path = str(Path(__file__).resolve().parents[1])
    procs = [subprocess.Popen([sys.executable, str(script), str(tmp_path / "data"), str(flows), who, str(ids_file),
                               "approve"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"}) for who in people]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        assert "database is locked" not in err
        results.append(json.loads(out))
    return svc, results


def test_four_processes_race_single_approver(tmp_path):
    flow = "id: r\nnamespace: t.race\ntasks:\n  - id: gate\n    type: io.kestra.plugin.core.flow.Pause\n"
    svc, results = race(tmp_path, flow, ["p1", "p2", "p3", "p4"], 150)
    decided = sum(1 for r in results for o in r if o["outcome"] == "decided")
    assert decided == 150
    for r in results:
        assert {o["outcome"] for o in r} <= {"decided", "already_decided"}
    assert svc.db.query_one("SELECT count(*) FROM decisions")[0] == 150
    assert svc.db.query_one("SELECT count(*) FROM executions WHERE state='SUCCESS'")[0] == 150


def test_four_processes_race_quorum_counts_distinct_people(tmp_path):
    flow = ("id: r\nnamespace: t.race\ntasks:\n  - id: gate\n    type: io.kestra.plugin.core.flow.Pause\n"
            "    required: 2\n")
    svc, results = race(tmp_path, flow, ["p1", "p2", "p3", "p4"], 100)
    per_request = svc.db.query("SELECT request_id, count(*) AS n, count(DISTINCT actor) AS people FROM decisions"
                               " GROUP BY request_id")
    assert len(per_request) == 100
    assert all(r["n"] == 2 and r["people"] == 2 for r in per_request)
    assert svc.db.query_one("SELECT count(*) FROM executions WHERE state='SUCCESS'")[0] == 100
