"""Restart and replay (engine.runtime.rerun): the seed's vacation_approval through the real
`signoff` program against a real local HR listener, and the rules at the service level."""
from __future__ import annotations

import base64
import shutil
from pathlib import Path

import pytest

from signoff.engine.errors import Conflict, NotFound, Refused, UsageError
from signoff.engine.governance.policy_file import parse_policy
from tests.support import ALICE, BOB, clean_env, make_service, runs
from tests.test_cli import SAMPLE_FLOWS, Cli


def _hr_down_then_up(statuses: list[int]):
    """A responder answering each POST with the next status of ``statuses`` (then 200)."""
    answers = iter(statuses)

    def respond(request):
        status = next(answers, 200)
        return status, {"error": "maintenance"} if status >= 400 else {"ok": True}

    return respond


def test_restart_vacation_approval_after_hr_was_down(tmp_path: Path, http_listener) -> None:
    flows = tmp_path / "flows"
    flows.mkdir()
    shutil.copy(SAMPLE_FLOWS / "vacation_approval.yaml", flows / "vacation_approval.yaml")
    webhook = base64.b64encode(f"{http_listener.url}/slack".encode()).decode()
    cli = Cli(tmp_path / "data", flows=flows, env=clean_env(SECRET_SLACK_HR_WEBHOOK=webhook))
    assert cli("kv", "set", "--namespace", "hr.operations", "HR_API_ENDPOINT", f"{http_listener.url}/hr").code == 0
    http_listener.respond("/hr/approvals", _hr_down_then_up([503]))

    execution, request_id = cli.start_paused("hr.operations", "vacation_approval", "employee=Ann Example",
                                             "start_date=2026-12-01", "end_date=2026-12-05")
    r = cli("approve", request_id, "-i", "approved=true", "-i", "reason=Enjoy")
    assert r.code == 0, r
    failed = cli.execution(execution["id"])
    assert failed["state"] == "FAILED", failed
    assert "HTTP 503" in failed["error"]
    assert runs(failed)["update_hr_system"] == "FAILED"

    r = cli("executions", "restart", execution["id"], "--json")
    assert r.code == 0, r
    done = r.json
    assert done["id"] == execution["id"]
    assert done["state"] == "SUCCESS", done
    assert runs(done) == {"notify_manager": "SUCCESS", "await_decision": "SUCCESS", "update_hr_system": "SUCCESS",
                          "log_result": "SUCCESS"}
    assert {t["path"]: t["attempt"] for t in done["task_runs"]}["update_hr_system"] == 2
    # the approval was not asked again: one request, one decision, nothing pending
    assert [q["state"] for q in done["requests"]] == ["APPROVED"]
    assert cli("pending", "--json").json == []
    assert len(cli.request(request_id)["decisions"]) == 1
    # the HR system got exactly one POST per attempt, one of them successful, each its own key
    posts = http_listener.requests_to("/hr/approvals")
    assert len(posts) == 2
    assert [p.headers["Idempotency-Key"] for p in posts] == [f"{execution['id']}:update_hr_system:1",
                                                             f"{execution['id']}:update_hr_system:2"]
    assert all(p.form == {"employee": "Ann Example", "status": "APPROVED", "notes": "Enjoy"} for p in posts)
    # Slack was told once: the finished task before the approval did not run again
    assert len(http_listener.requests_to("/slack")) == 1
    history = cli("history", f"execution:{execution['id']}", "--json").json
    actions = [e["action"] for e in reversed(history)]
    assert actions.count("request.created") == 1
    assert "execution.restarted" in actions
    restarted = next(e for e in history if e["action"] == "execution.restarted")
    assert restarted["data"]["tasks"] == ["update_hr_system"] and restarted["data"]["previous_state"] == "FAILED"
    assert actions[-1] == "execution.ended"

    # a second restart of a successful execution is refused, and nothing is sent
    r = cli("executions", "restart", execution["id"])
    assert r.code == 1 and "only FAILED or KILLED" in r.err, r
    assert len(http_listener.requests_to("/hr/approvals")) == 2

    # replay from the HR task: a new execution, the decision copied, one more POST with a new key
    r = cli("executions", "replay", execution["id"], "--from", "update_hr_system", "--json")
    assert r.code == 0, r
    replay = r.json
    assert replay["id"] != execution["id"] and replay["original_id"] == execution["id"]
    assert replay["origin"] == {"kind": "replay", "execution_id": execution["id"], "from": "update_hr_system"}
    assert replay["state"] == "SUCCESS" and replay["requests"] == []
    assert replay["outputs"]["await_decision"]["onResume"] == {"approved": True, "reason": "Enjoy"}
    posts = http_listener.requests_to("/hr/approvals")
    assert len(posts) == 3 and posts[2].headers["Idempotency-Key"] == f"{replay['id']}:update_hr_system:1"
    assert len(http_listener.requests_to("/slack")) == 1

    # replay from the start asks again
    r = cli("executions", "replay", execution["id"], "--json")
    assert r.code == 0, r
    again = r.json
    assert again["state"] == "PAUSED" and [q["state"] for q in again["requests"]] == ["PENDING"]
    assert len(http_listener.requests_to("/slack")) == 2

    # bad arguments: a clear message, exit 2, nothing started
    before = len(cli("executions", "list", "--json").json)
    r = cli("executions", "replay", execution["id"], "--from", "nope")
    assert r.code == 2 and "has no task `nope`" in r.err and "update_hr_system" in r.err, r
    r = cli("executions", "replay", execution["id"], "--revision", "0")
    assert r.code == 2, r
    r = cli("executions", "replay", execution["id"], "--revision", "9")
    assert r.code == 1 and "revision 9" in r.err, r
    r = cli("executions", "restart", "e-missing")
    assert r.code == 1 and "no execution `e-missing`" in r.err, r
    assert len(cli("executions", "list", "--json").json) == before


FLOW_WITH_BLOCK = """
id: pay
namespace: finance
inputs:
  - id: url
    type: STRING
tasks:
  - id: approve
    type: io.kestra.plugin.core.flow.Approval
    onApprove:
      - id: send
        type: io.kestra.plugin.core.http.Request
        uri: "{{ inputs.url }}"
        method: POST
errors:
  - id: tell
    type: io.kestra.plugin.core.log.Log
    message: "failed: {{ execution.id }}"
"""

POLICY = """
fourEyes: false
bindings:
  - role: requester
    subjects: [user:alice]
    namespaces: [finance]
  - role: approver
    subjects: [user:bob]
    namespaces: [finance]
  - role: admin
    subjects: [user:root]
    namespaces: ["*"]
"""


def _service(tmp_path: Path):
    return make_service(tmp_path, {"pay.yaml": FLOW_WITH_BLOCK}, policy=parse_policy(POLICY, "policy.yaml"))


def test_restart_reenters_an_approval_block_without_asking_again(tmp_path: Path, http_listener) -> None:
    from signoff.engine.identity import Identity

    http_listener.respond("/pay", _hr_down_then_up([500]))
    svc = _service(tmp_path)
    started = svc.start_execution(ALICE, "finance", "pay", {"url": f"{http_listener.url}/pay"})
    [request] = started["requests"]
    svc.approve(BOB, [request["id"]])
    failed = svc.get_execution(ALICE, started["id"])
    assert failed["state"] == "FAILED"
    assert runs(failed) == {"approve": "FAILED", "approve/onApprove/send": "FAILED", "tell": "SUCCESS"}

    # bob (an approver, not the requester) may not restart; refused and audited
    with pytest.raises(Refused, match="only its requester \\(alice\\) or an admin"):
        svc.restart_execution(BOB, started["id"])
    assert svc.history(Identity("root", ()), "action:policy.denied actor:bob")[0]["data"]["operation"] == "restart"

    done = svc.restart_execution(ALICE, started["id"])
    assert done["state"] == "SUCCESS", done
    assert runs(done) == {"approve": "SUCCESS", "approve/onApprove/send": "SUCCESS"}  # handler runs cleared
    assert len(done["requests"]) == 1 and len(http_listener.requests_to("/pay")) == 2
    # an admin may restart anyone's execution; a successful one is a conflict
    with pytest.raises(Conflict):
        svc.restart_execution(Identity("root", ()), started["id"])


def test_a_denial_is_final_for_restart_but_replay_asks_again(tmp_path: Path, http_listener) -> None:
    svc = _service(tmp_path)
    started = svc.start_execution(ALICE, "finance", "pay", {"url": f"{http_listener.url}/pay"})
    svc.deny(BOB, [started["requests"][0]["id"]], reason="no budget")
    assert svc.get_execution(ALICE, started["id"])["state"] == "KILLED"
    with pytest.raises(Conflict, match="decision on `approve`.*never asked again"):
        svc.restart_execution(ALICE, started["id"])
    with pytest.raises(UsageError, match="task `send` never ran"):
        svc.replay_execution(ALICE, started["id"], from_task="send")
    replay = svc.replay_execution(ALICE, started["id"], from_task="approve")
    assert replay["state"] == "PAUSED" and replay["started_by"] == "alice"
    assert [q["state"] for q in replay["requests"]] == ["PENDING"]
    assert http_listener.requests_to("/pay") == []
    with pytest.raises(Conflict, match="only ended executions"):
        svc.replay_execution(ALICE, replay["id"])
    with pytest.raises(NotFound):
        svc.replay_execution(ALICE, "e-nope")


def test_replay_on_another_revision_uses_that_flow(tmp_path: Path, http_listener) -> None:
    svc = _service(tmp_path)
    started = svc.start_execution(ALICE, "finance", "pay", {"url": f"{http_listener.url}/pay"})
    svc.approve(BOB, [started["requests"][0]["id"]])
    assert svc.get_execution(ALICE, started["id"])["state"] == "SUCCESS"
    (tmp_path / "flows" / "pay.yaml").write_text(FLOW_WITH_BLOCK.replace("method: POST", "method: PUT").lstrip())
    svc.engine.flows.reload()
    svc.start_execution(ALICE, "finance", "pay", {"url": f"{http_listener.url}/other"})  # records revision 2
    replay = svc.replay_execution(ALICE, started["id"], from_task="send", revision=2)
    assert replay["revision"] == 2 and replay["state"] == "SUCCESS"
    assert [r.method for r in http_listener.requests_to("/pay")] == ["POST", "PUT"]


PARALLEL_GATES = """
id: release
namespace: finance
inputs:
  - id: url
    type: STRING
tasks:
  - id: gates
    type: io.kestra.plugin.core.flow.Parallel
    tasks:
      - id: security
        type: io.kestra.plugin.core.flow.Approval
      - id: legal
        type: io.kestra.plugin.core.flow.Approval
        timeout: PT6H
      - id: ship
        type: io.kestra.plugin.core.flow.Sequential
        tasks:
          - id: budget
            type: io.kestra.plugin.core.flow.Approval
          - id: book
            type: io.kestra.plugin.core.http.Request
            uri: "{{ inputs.url }}"
            method: POST
  - id: released
    type: io.kestra.plugin.core.log.Log
    message: released
"""


def test_restart_asks_again_only_what_the_failed_branch_cancelled(tmp_path: Path, http_listener) -> None:
    """A failing parallel branch ends the execution and cancels another branch's pending
    approval. Kestra's restart re-runs the failed and the still-paused task runs and keeps the
    finished ones; here: the approvals already decided stay decided (not asked again, no new
    decision), the one cancelled by the failure is pending again (the same request, its
    timers back), and the failed call runs again."""
    http_listener.respond("/book", _hr_down_then_up([503]))
    svc = make_service(tmp_path, {"release.yaml": PARALLEL_GATES}, policy=parse_policy(POLICY, "policy.yaml"))
    started = svc.start_execution(ALICE, "finance", "release", {"url": f"{http_listener.url}/book"})
    ids = {q["task_id"]: q["id"] for q in started["requests"]}
    assert set(ids) == {"security", "legal", "budget"}
    svc.approve(BOB, [ids["security"]])
    svc.approve(BOB, [ids["budget"]])  # the call after it fails (503): the branch, then the execution
    failed = svc.get_execution(ALICE, started["id"])
    assert failed["state"] == "FAILED", failed
    states = {q["task_id"]: q["state"] for q in failed["requests"]}
    assert states == {"security": "APPROVED", "budget": "APPROVED", "legal": "CANCELLED"}
    assert svc.list_pending(BOB) == []
    open_timers = "SELECT count(*) FROM timers WHERE request_id=? AND done_at IS NULL"
    assert svc.db.query_one(open_timers, (ids["legal"],))[0] == 0

    restarted = svc.restart_execution(ALICE, started["id"])
    assert restarted["state"] == "PAUSED", restarted
    assert [p["id"] for p in svc.list_pending(BOB)] == [ids["legal"]]  # only the cancelled one, same request
    assert svc.db.query_one(open_timers, (ids["legal"],))[0] == 1  # its expiry is back
    reopened = svc.db.query_one("SELECT decided_at, decision_s, result FROM requests WHERE id=?", (ids["legal"],))
    assert tuple(reopened) == (None, None, None)  # not counted as closed by `signoff stats`
    assert len(restarted["requests"]) == 3  # no new request for the decided ones
    assert len(http_listener.requests_to("/book")) == 2  # the call ran again (and succeeded)
    event = svc.history(ALICE, f"action:execution.restarted execution:{started['id']}")[0]
    assert event["data"]["reopened_requests"] == [ids["legal"]]

    svc.approve(BOB, [ids["legal"]])
    done = svc.get_execution(ALICE, started["id"])
    assert done["state"] == "SUCCESS", done
    assert runs(done)["released"] == "SUCCESS"
    for task in ("security", "budget", "legal"):
        request = svc.get_request(BOB, ids[task])
        assert request["state"] == "APPROVED" and len(request["decisions"]) == 1, request
    assert len(http_listener.requests_to("/book")) == 2
