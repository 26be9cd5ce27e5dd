"""The runner on a real SQLite file: every flow-control task, Pause/Approval outcomes, timeouts,
revisions, and the durable queue."""
from __future__ import annotations

from datetime import timedelta

import pytest

from signoff.engine.clock import FakeClock
from signoff.engine.errors import InvalidInputs, NotFound
from tests.support import ALICE, BOB, make_service, pending_ids, runs, write_flows

PAUSE_FLOW = """
id: simple
namespace: t.ns
inputs:
  - id: who
    type: STRING
tasks:
  - id: before
    type: io.kestra.plugin.core.log.Log
    message: "hello {{ inputs.who }}"
  - id: gate
    type: io.kestra.plugin.core.flow.Pause
    onResume:
      - id: ok
        type: BOOLEAN
      - id: note
        type: STRING
        required: false
  - id: after
    type: io.kestra.plugin.core.log.Log
    message: "ok={{ outputs.gate.onResume.ok }} by {{ outputs.gate.resumed.by }}"
"""


def test_pause_approve_resumes_with_outputs(tmp_path):
    svc = make_service(tmp_path, {"simple.yaml": PAUSE_FLOW})
    ex = svc.start_execution(BOB, "t.ns", "simple", {"who": "world"})
    assert ex["state"] == "PAUSED"
    assert runs(ex) == {"before": "SUCCESS", "gate": "PAUSED"}
    [request] = ex["requests"]
    detail = svc.get_request(ALICE, request["id"])
    assert detail["context"]["inputs"] == {"who": "world"}
    assert [f["id"] for f in detail["form"]] == ["ok", "note"]
    [outcome] = svc.approve(ALICE, [request["id"]], {"ok": "yes"})
    assert outcome.outcome == "decided" and outcome.state == "APPROVED"
    ex = svc.get_execution(ALICE, ex["id"])
    assert ex["state"] == "SUCCESS"
    assert [log["message"] for log in ex["logs"]] == ["hello world", "ok=true by alice"]
    gate = ex["outputs"]["gate"]
    assert gate["onResume"] == {"ok": True, "note": None}
    assert gate["resumed"]["by"] == "alice" and gate["resumed"]["to"] == "RUNNING"


def test_invalid_form_leaves_request_pending(tmp_path):
    svc = make_service(tmp_path, {"simple.yaml": PAUSE_FLOW})
    ex = svc.start_execution(BOB, "t.ns", "simple", {"who": "x"})
    rid = ex["requests"][0]["id"]
    [outcome] = svc.approve(ALICE, [rid], {"ok": "maybe"})
    assert outcome.outcome == "invalid_inputs"
    assert outcome.errors == {"ok": "Invalid input for `ok`, it must be `true` or `false` (or yes/no, 1/0), "
                                    "but received `maybe`"}
    assert pending_ids(svc) == [rid]
    assert svc.validate(ALICE, rid, {"ok": "true"}) == {}


def test_deny_kills_and_later_tasks_never_run(tmp_path):
    svc = make_service(tmp_path, {"simple.yaml": PAUSE_FLOW})
    ex = svc.start_execution(BOB, "t.ns", "simple", {"who": "x"})
    [outcome] = svc.deny(ALICE, [ex["requests"][0]["id"]], reason="no way")
    assert outcome.state == "DENIED"
    ex = svc.get_execution(ALICE, ex["id"])
    assert ex["state"] == "KILLED"
    assert "after" not in runs(ex)
    assert ex["error"] == "denied by alice: no way"


def test_cancel_kills_and_second_decision_is_already_decided(tmp_path):
    svc = make_service(tmp_path, {"simple.yaml": PAUSE_FLOW})
    ex = svc.start_execution(ALICE, "t.ns", "simple", {"who": "x"})
    rid = ex["requests"][0]["id"]
    [outcome] = svc.cancel(ALICE, [rid], reason="not needed")
    assert outcome.outcome == "cancelled"
    assert svc.get_execution(ALICE, ex["id"])["state"] == "KILLED"
    [again] = svc.approve(ALICE, [rid], {"ok": True})
    assert again.outcome == "already_decided"
    assert "cancelled" in again.message


def test_not_found_and_invalid_flow_inputs(tmp_path):
    svc = make_service(tmp_path, {"simple.yaml": PAUSE_FLOW})
    [outcome] = svc.approve(ALICE, ["rnope"], {})
    assert outcome.outcome == "not_found"
    with pytest.raises(InvalidInputs) as err:
        svc.start_execution(ALICE, "t.ns", "simple", {})
    assert err.value.errors == {"who": "Missing required input:`who`"}
    with pytest.raises(NotFound):
        svc.start_execution(ALICE, "t.ns", "nope", {})


CONTROL_FLOW = """
id: control
namespace: t.ns
inputs:
  - id: n
    type: INT
tasks:
  - id: check
    type: io.kestra.plugin.core.flow.If
    condition: "{{ inputs.n > 5 }}"
    then:
      - id: big
        type: io.kestra.plugin.core.debug.Return
        format: "big {{ inputs.n }}"
    else:
      - id: small
        type: io.kestra.plugin.core.debug.Return
        format: "small {{ inputs.n }}"
  - id: pick
    type: io.kestra.plugin.core.flow.Switch
    value: "{{ inputs.n % 3 }}"
    cases:
      "0":
        - id: zero
          type: io.kestra.plugin.core.output.OutputValues
          values:
            mod: zero
      "1":
        - id: one
          type: io.kestra.plugin.core.output.OutputValues
          values:
            mod: one
    defaults:
      - id: other
        type: io.kestra.plugin.core.output.OutputValues
        values:
          mod: other
  - id: seq
    type: io.kestra.plugin.core.flow.Sequential
    tasks:
      - id: s1
        type: io.kestra.plugin.core.debug.Return
        format: "a"
      - id: s2
        type: io.kestra.plugin.core.debug.Return
        format: "{{ outputs.s1.value }}b"
  - id: loop
    type: io.kestra.plugin.core.flow.ForEach
    values: ["x", "y"]
    tasks:
      - id: each
        type: io.kestra.plugin.core.debug.Return
        format: "{{ taskrun.value }}-{{ taskrun.iteration }}"
  - id: summary
    type: io.kestra.plugin.core.debug.Echo
    format: "{{ outputs.each['y'].value }} {{ outputs.s2.value }}"
"""


@pytest.mark.parametrize("n, branch, mod", [(9, "big", "zero"), (4, "small", "one"), (2, "small", "other")])
def test_if_switch_sequential_foreach(tmp_path, n, branch, mod):
    svc = make_service(tmp_path, {"control.yaml": CONTROL_FLOW})
    ex = svc.start_execution(ALICE, "t.ns", "control", {"n": n})
    assert ex["state"] == "SUCCESS", ex["error"]
    assert ex["outputs"][branch]["value"] == f"{branch} {n}"
    other = "small" if branch == "big" else "big"
    assert other not in ex["outputs"]
    switch_task = {"zero": "zero", "one": "one", "other": "other"}[mod]
    assert ex["outputs"][switch_task]["values"] == {"mod": mod}
    state = runs(ex)
    assert state["loop/0/each"] == "SUCCESS" and state["loop/1/each"] == "SUCCESS"
    assert [log["message"] for log in ex["logs"]] == ["y-1 ab"]


PARALLEL_FLOW = """
id: par
namespace: t.ns
tasks:
  - id: both
    type: io.kestra.plugin.core.flow.Parallel
    tasks:
      - id: left
        type: io.kestra.plugin.core.flow.Pause
      - id: right
        type: io.kestra.plugin.core.flow.Sequential
        tasks:
          - id: right_gate
            type: io.kestra.plugin.core.flow.Pause
          - id: right_after
            type: io.kestra.plugin.core.log.Log
            message: right done
  - id: end
    type: io.kestra.plugin.core.log.Log
    message: all done
"""


def test_parallel_stays_paused_while_any_branch_waits(tmp_path):
    svc = make_service(tmp_path, {"par.yaml": PARALLEL_FLOW})
    ex = svc.start_execution(BOB, "t.ns", "par", {})
    assert ex["state"] == "PAUSED"
    by_task = {r["task_id"]: r["id"] for r in ex["requests"]}
    assert set(by_task) == {"left", "right_gate"}
    svc.approve(ALICE, [by_task["right_gate"]])
    ex = svc.get_execution(ALICE, ex["id"])
    assert ex["state"] == "PAUSED"
    assert runs(ex)["both/right/right_after"] == "SUCCESS"
    assert "end" not in runs(ex)
    svc.approve(ALICE, [by_task["left"]])
    ex = svc.get_execution(ALICE, ex["id"])
    assert ex["state"] == "SUCCESS"
    assert [log["message"] for log in ex["logs"]] == ["right done", "all done"]


ERRORS_FLOW = """
id: errs
namespace: t.ns
tasks:
  - id: boom
    type: io.kestra.plugin.core.execution.Fail
    errorMessage: "broken {{ flow.id }}"
  - id: never
    type: io.kestra.plugin.core.log.Log
    message: never
errors:
  - id: handler
    type: io.kestra.plugin.core.log.Log
    message: "handled"
"""


def test_flow_errors_run_on_failure(tmp_path):
    svc = make_service(tmp_path, {"errs.yaml": ERRORS_FLOW})
    ex = svc.start_execution(ALICE, "t.ns", "errs", {})
    assert ex["state"] == "FAILED"
    assert ex["error"] == "broken errs"
    assert runs(ex) == {"boom": "FAILED", "handler": "SUCCESS"}


def test_undefined_variable_fails_the_task_naming_it(tmp_path):
    flow = """
    id: undef
    namespace: t.ns
    tasks:
      - id: speak
        type: io.kestra.plugin.core.log.Log
        message: "{{ inputs.missing }}"
    """
    svc = make_service(tmp_path, {"undef.yaml": flow})
    ex = svc.start_execution(ALICE, "t.ns", "undef", {})
    assert ex["state"] == "FAILED"
    assert ex["error"].startswith("task `speak`: ")
    assert "inputs.missing" in ex["error"]


def test_allow_failure_disabled_and_run_if(tmp_path):
    flow = """
    id: soft
    namespace: t.ns
    tasks:
      - id: flaky
        type: io.kestra.plugin.core.execution.Fail
        allowFailure: true
      - id: off
        type: io.kestra.plugin.core.log.Log
        message: off
        disabled: true
      - id: guarded
        type: io.kestra.plugin.core.log.Log
        message: guarded
        runIf: "{{ 1 > 2 }}"
      - id: last
        type: io.kestra.plugin.core.log.Log
        message: last
    """
    svc = make_service(tmp_path, {"soft.yaml": flow})
    ex = svc.start_execution(ALICE, "t.ns", "soft", {})
    assert ex["state"] == "WARNING"
    assert runs(ex) == {"flaky": "WARNING", "off": "SKIPPED", "guarded": "SKIPPED", "last": "SUCCESS"}


APPROVAL_FLOW = """
id: appr
namespace: t.ns
tasks:
  - id: review
    type: io.kestra.plugin.core.flow.Approval
    commentRequired: ON_DENY
    denyBehavior: CONTINUE
    inputs:
      - id: level
        type: SELECT
        values: [low, high]
        defaults: low
    onApprove:
      - id: approved_note
        type: io.kestra.plugin.core.log.Log
        message: "approved at {{ outputs.review.inputs.level }}"
    onDeny:
      - id: rollback
        type: io.kestra.plugin.core.log.Log
        message: "rolled back: {{ outputs.review.comment }}"
  - id: after
    type: io.kestra.plugin.core.log.Log
    message: "decision={{ outputs.review.decision }}"
"""


def test_approval_approve_outputs(tmp_path):
    svc = make_service(tmp_path, {"appr.yaml": APPROVAL_FLOW})
    ex = svc.start_execution(BOB, "t.ns", "appr", {})
    rid = ex["requests"][0]["id"]
    svc.approve(ALICE, [rid], {"level": "high"}, reason="fine")
    ex = svc.get_execution(ALICE, ex["id"])
    assert ex["state"] == "SUCCESS"
    review = ex["outputs"]["review"]
    assert review["decision"] == "APPROVED" and review["by"] == "alice" and review["comment"] == "fine"
    assert review["inputs"] == {"level": "high"} and review["auto"] is False
    assert [log["message"] for log in ex["logs"]] == ["approved at high", "decision=APPROVED"]


def test_approval_deny_needs_comment_then_continues(tmp_path):
    svc = make_service(tmp_path, {"appr.yaml": APPROVAL_FLOW})
    ex = svc.start_execution(BOB, "t.ns", "appr", {})
    rid = ex["requests"][0]["id"]
    [refused] = svc.deny(ALICE, [rid])
    assert refused.outcome == "invalid_inputs"
    assert refused.errors == {"reason": "A comment is required to deny this request (commentRequired: ON_DENY)"}
    svc.deny(ALICE, [rid], reason="bad timing")
    ex = svc.get_execution(ALICE, ex["id"])
    assert ex["state"] == "SUCCESS"
    assert [log["message"] for log in ex["logs"]] == ["rolled back: bad timing", "decision=DENIED"]


def test_approval_auto_approve_is_audited(tmp_path):
    flow = """
    id: auto
    namespace: t.ns
    inputs:
      - id: amount
        type: INT
    tasks:
      - id: review
        type: io.kestra.plugin.core.flow.Approval
        autoApprove: "{{ inputs.amount < 100 }}"
    """
    svc = make_service(tmp_path, {"auto.yaml": flow})
    ex = svc.start_execution(BOB, "t.ns", "auto", {"amount": 5})
    assert ex["state"] == "SUCCESS"
    assert ex["outputs"]["review"]["auto"] is True
    events = svc.db.query("SELECT action, data FROM audit WHERE action='request.auto_approved'")
    assert len(events) == 1 and '"value":true' in events[0]["data"]
    ex = svc.start_execution(BOB, "t.ns", "auto", {"amount": 500})
    assert ex["state"] == "PAUSED"


TIMEOUT_FLOWS = {
    "RESUME": ("pauseDuration: PT1H", "SUCCESS", "SUCCESS"),
    "WARN": ("pauseDuration: PT1H\n    behavior: WARN", "WARNING", "WARNING"),
    "FAIL": ("pauseDuration: PT1H\n    behavior: FAIL", "FAILED", "FAILED"),
    "CANCEL": ("pauseDuration: PT1H\n    behavior: CANCEL", "CANCELLED", "KILLED"),
}


@pytest.mark.parametrize("behavior", sorted(TIMEOUT_FLOWS))
def test_pause_timeout_behaviours(tmp_path, behavior):
    props, final, gate_state = TIMEOUT_FLOWS[behavior]
    flow = f"""
id: wait
namespace: t.ns
tasks:
  - id: gate
    type: io.kestra.plugin.core.flow.Pause
    {props}
    onResume:
      - id: choice
        type: STRING
        defaults: auto
  - id: after
    type: io.kestra.plugin.core.log.Log
    message: "choice={{{{ outputs.gate.onResume.choice ?? 'none' }}}}"
"""
    clock = FakeClock()
    svc = make_service(tmp_path, {"wait.yaml": flow}, clock=clock)
    ex = svc.start_execution(BOB, "t.ns", "wait", {})
    assert ex["requests"][0]["due_at"] == "2026-01-05T10:00:00.000000Z"
    clock.advance(timedelta(minutes=59))
    svc.tick()
    assert svc.get_execution(ALICE, ex["id"])["state"] == "PAUSED"
    clock.advance(timedelta(minutes=2))
    svc.tick()
    ex = svc.get_execution(ALICE, ex["id"])
    assert ex["state"] == final
    assert runs(ex)["gate"] == gate_state
    if final in ("SUCCESS", "WARNING"):
        assert [log["message"] for log in ex["logs"] if log["path"] == "after"] == ["choice=auto"]
    assert ex["requests"][0]["state"] == "EXPIRED"
    actions = [r["action"] for r in svc.db.query("SELECT action FROM audit ORDER BY seq")]
    assert "request.expired" in actions


def test_execution_keeps_its_revision(tmp_path):
    svc = make_service(tmp_path, {"simple.yaml": PAUSE_FLOW})
    ex = svc.start_execution(BOB, "t.ns", "simple", {"who": "x"})
    assert ex["revision"] == 1
    # the file changes while the execution waits
    write_flows(tmp_path / "flows", {"simple.yaml": PAUSE_FLOW.replace('"ok={{', '"v2 ok={{')})
    svc.engine.flows.reload()
    svc.approve(ALICE, [ex["requests"][0]["id"]], {"ok": True})
    done = svc.get_execution(ALICE, ex["id"])
    assert done["logs"][-1]["message"].startswith("ok=true")
    second = svc.start_execution(BOB, "t.ns", "simple", {"who": "y"})
    assert second["revision"] == 2
    svc.approve(ALICE, [second["requests"][0]["id"]], {"ok": True})
    assert svc.get_execution(ALICE, second["id"])["logs"][-1]["message"].startswith("v2 ok=true")


def test_resume_task_resumes_another_execution(tmp_path):
    resumer = """
    id: resumer
    namespace: t.ns
    inputs:
      - id: target
        type: STRING
    tasks:
      - id: go
        type: io.kestra.plugin.core.execution.Resume
        executionId: "{{ inputs.target }}"
        inputs:
          ok: true
          note: from resumer
    """
    svc = make_service(tmp_path, {"simple.yaml": PAUSE_FLOW, "resumer.yaml": resumer})
    waiting = svc.start_execution(BOB, "t.ns", "simple", {"who": "x"})
    ex = svc.start_execution(ALICE, "t.ns", "resumer", {"target": waiting["id"]})
    assert ex["state"] == "SUCCESS", ex["error"]
    svc.tick()
    waiting = svc.get_execution(ALICE, waiting["id"])
    assert waiting["state"] == "SUCCESS"
    assert waiting["outputs"]["gate"]["onResume"] == {"ok": True, "note": "from resumer"}


def test_pause_deprecated_tasks_run_on_resume(tmp_path):
    flow = """
    id: old
    namespace: t.ns
    tasks:
      - id: gate
        type: io.kestra.plugin.core.flow.Pause
        delay: PT5M
        tasks:
          - id: inside
            type: io.kestra.plugin.core.log.Log
            message: resumed
    """
    clock = FakeClock()
    svc = make_service(tmp_path, {"old.yaml": flow}, clock=clock)
    ex = svc.start_execution(ALICE, "t.ns", "old", {})
    assert ex["state"] == "PAUSED"
    clock.advance(timedelta(minutes=6))
    svc.tick()
    ex = svc.get_execution(ALICE, ex["id"])
    assert ex["state"] == "SUCCESS"
    assert runs(ex)["gate/tasks/inside"] == "SUCCESS"


def test_quorum_two_of_three_and_veto(tmp_path):
    flow = """
    id: q
    namespace: t.ns
    tasks:
      - id: gate
        type: io.kestra.plugin.core.flow.Pause
        required: 2
    """
    carol = ALICE.__class__("carol")
    svc = make_service(tmp_path, {"q.yaml": flow})
    ex = svc.start_execution(BOB, "t.ns", "q", {})
    rid = ex["requests"][0]["id"]
    [first] = svc.approve(ALICE, [rid])
    assert first.state == "PENDING" and "1 of 2" in first.message
    [dup] = svc.approve(ALICE, [rid])
    assert dup.outcome == "already_decided"
    [second] = svc.approve(carol, [rid])
    assert second.state == "APPROVED"
    assert svc.get_execution(ALICE, ex["id"])["state"] == "SUCCESS"
    ex2 = svc.start_execution(BOB, "t.ns", "q", {})
    rid2 = ex2["requests"][0]["id"]
    svc.approve(ALICE, [rid2])
    [veto] = svc.deny(carol, [rid2], reason="no")
    assert veto.state == "DENIED"
    assert svc.get_execution(ALICE, ex2["id"])["state"] == "KILLED"


def test_self_approval_refused_when_task_says_so(tmp_path):
    flow = """
    id: fe
    namespace: t.ns
    tasks:
      - id: gate
        type: io.kestra.plugin.core.flow.Pause
        allowSelfApproval: false
    """
    svc = make_service(tmp_path, {"fe.yaml": flow})
    ex = svc.start_execution(ALICE, "t.ns", "fe", {})
    [outcome] = svc.approve(ALICE, [ex["requests"][0]["id"]])
    assert outcome.outcome == "self_approval"
    [ok] = svc.approve(BOB, [ex["requests"][0]["id"]])
    assert ok.outcome == "decided"


def test_idempotency_key_returns_first_outcome(tmp_path):
    svc = make_service(tmp_path, {"simple.yaml": PAUSE_FLOW})
    ex = svc.start_execution(BOB, "t.ns", "simple", {"who": "x"})
    rid = ex["requests"][0]["id"]
    [first] = svc.approve(ALICE, [rid], {"ok": True}, idempotency_key="k1")
    [retry] = svc.approve(ALICE, [rid], {"ok": True}, idempotency_key="k1")
    assert first.outcome == retry.outcome == "decided"
    assert svc.db.query_one("SELECT count(*) FROM decisions WHERE request_id=?", (rid,))[0] == 1
    [other] = svc.approve(ALICE, [rid], {"ok": True}, idempotency_key="k2")
    assert other.outcome == "already_decided"


def test_bulk_outcomes_each_item_independent(tmp_path):
    svc = make_service(tmp_path, {"simple.yaml": PAUSE_FLOW})
    good = [svc.start_execution(BOB, "t.ns", "simple", {"who": str(i)})["requests"][0]["id"] for i in range(3)]
    svc.approve(ALICE, [good[0]], {"ok": True})
    outcomes = svc.approve(ALICE, [good[0], "rmissing", good[1], good[2]], {"ok": True})
    assert [o.outcome for o in outcomes] == ["already_decided", "not_found", "decided", "decided"]
    assert outcomes[0].by == ["alice"]
    assert pending_ids(svc) == []


def test_audit_records_lifecycle(tmp_path):
    svc = make_service(tmp_path, {"simple.yaml": PAUSE_FLOW})
    ex = svc.start_execution(BOB, "t.ns", "simple", {"who": "x"})
    svc.approve(ALICE, [ex["requests"][0]["id"]], {"ok": True}, reason="looks good")
    rows = svc.db.query("SELECT actor, action FROM audit ORDER BY seq")
    assert [(r["actor"], r["action"]) for r in rows] == [
        ("bob", "execution.started"), ("bob", "request.created"), ("alice", "request.approved"),
        ("signoff", "execution.ended")]


NESTED_OUTPUTS_FLOW = """
id: nested
namespace: t.ns
tasks:
  - id: route
    type: io.kestra.plugin.core.flow.If
    condition: "{{ true }}"
    then:
      - id: chosen
        type: io.kestra.plugin.core.output.OutputValues
        values:
          side: then
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: ["a", "b"]
    tasks:
      - id: pick
        type: io.kestra.plugin.core.flow.Switch
        value: "{{ taskrun.value }}"
        cases:
          a:
            - id: per_item
              type: io.kestra.plugin.core.output.OutputValues
              values:
                got: "A"
          b:
            - id: per_item_b
              type: io.kestra.plugin.core.output.OutputValues
              values:
                got: "B"
  - id: gate
    type: io.kestra.plugin.core.flow.Approval
    onApprove:
      - id: inside_approval
        type: io.kestra.plugin.core.output.OutputValues
        values:
          note: approved
  - id: second_gate
    type: io.kestra.plugin.core.flow.Pause
  - id: after
    type: io.kestra.plugin.core.log.Log
    message: >-
      {{ outputs.chosen.values.side }}
      {{ outputs.per_item.a.values.got }}{{ outputs.per_item_b.b.values.got }}
      {{ outputs.inside_approval.values.note }}
"""


def test_tasks_after_a_pause_see_the_outputs_of_tasks_inside_finished_containers(tmp_path):
    """Resuming walks the flow again from the top and skips finished tasks; the outputs of the
    tasks inside a finished If, ForEach/Switch and Approval block must be back in scope."""
    svc = make_service(tmp_path, {"nested.yaml": NESTED_OUTPUTS_FLOW})
    ex = svc.start_execution(BOB, "t.ns", "nested", {})
    svc.approve(ALICE, pending_ids(svc))
    assert svc.get_execution(ALICE, ex["id"])["state"] == "PAUSED"  # the second gate
    svc.approve(ALICE, pending_ids(svc))
    ex = svc.get_execution(ALICE, ex["id"])
    assert (ex["state"], ex["error"]) == ("SUCCESS", None)
    assert [log["message"] for log in ex["logs"]] == ["then AB approved"]


def test_a_lease_belongs_to_one_advance_not_to_the_process(tmp_path):
    """Two advances in one process (two threads) never hold one execution together; a lease
    whose advance ended without releasing it is free at once."""
    from signoff.engine.runtime import work

    svc = make_service(tmp_path, {"simple.yaml": PAUSE_FLOW})
    db = svc.engine.db
    with db.write() as tx:
        work.enqueue(tx, "exec-1", svc.engine.now())
    with work.lease_holder() as first:
        with db.write() as tx:
            assert work.try_claim(tx, "exec-1", first, svc.engine.clock) is not None
        with work.lease_holder() as second, db.write() as tx:
            assert work.try_claim(tx, "exec-1", second, svc.engine.clock) is None
        assert work.claimable(db.connection(), svc.engine.clock, 10) == []
        svc.engine.clock.advance(timedelta(hours=1))  # past the expiry: still held while it runs
        assert work.claimable(db.connection(), svc.engine.clock, 10) == []
    # the first advance ended without releasing (it raised): nobody runs it any more
    assert work.claimable(db.connection(), svc.engine.clock, 10) == ["exec-1"]
    with work.lease_holder() as third, db.write() as tx:
        assert work.try_claim(tx, "exec-1", third, svc.engine.clock) is not None
