"""The contract: every service behaviour, through the Backend protocol, with the same results
on the local backend and on a real `signoff serve` (see conftest.py for the worlds).

Each test runs once per backend and asserts exact values (shapes as key sets, outcomes,
messages), so both backends are held to one expectation; `test_same_transcript` also runs
one scripted session on both and compares everything it saw, ids and times normalised.
"""
from __future__ import annotations

import re
import threading
from typing import Any

import pytest

from signoff.console.backend import Change
from signoff.engine.approvals.outcome import Outcome
from signoff.engine.errors import Conflict, InvalidInputs, NotFound, Refused
from signoff.engine.inputs import validate_inputs
from signoff.engine.inputs.spec import InputSpec
from tests.contract.server import NS

SUMMARY_KEYS = {"id", "execution_id", "namespace", "flow_id", "task_id", "kind", "state", "summary", "requested_by",
                "created_at", "due_at", "decided_at", "approvals", "required"}
DETAIL_KEYS = SUMMARY_KEYS | {"context", "form", "rules", "result", "decisions", "signatures"}
DECISION_KEYS = {"by", "verdict", "reason", "at", "origin", "automatic", "inputs", "signature"}
EXECUTION_SUMMARY_KEYS = {"id", "namespace", "flow_id", "revision", "state", "inputs", "labels", "started_by",
                          "created_at", "updated_at", "ended_at", "error", "original_id", "origin"}
EXECUTION_KEYS = EXECUTION_SUMMARY_KEYS | {"task_runs", "outputs", "flow_outputs", "logs", "requests"}
TASK_RUN_KEYS = {"path", "task_id", "type", "state", "attempt", "outputs", "started_at", "ended_at", "error"}
FLOW_KEYS = {"namespace", "id", "description", "labels", "inputs", "path", "sha256", "tasks", "origin"}
EVENT_KEYS = {"seq", "at", "actor", "action", "namespace", "flow_id", "execution_id", "request_id", "data", "hash",
              "prev_hash"}
VERIFY_KEYS = {"ok", "count", "head", "head_seq", "first_bad_seq", "problem", "signed", "unsigned",
               "signature_problems", "checkpoints", "last_checkpoint"}


def outcome(id: str, kind: str, message: str, state: str | None = None, *, by: list[str] | None = None,
            errors: dict[str, str] | None = None, execution_id: str | None = None) -> Outcome:
    return Outcome(id, kind, message, state, by or [], errors or {}, execution_id)


def form_errors(request: dict[str, Any], values: dict[str, Any]) -> dict[str, str]:
    """What the engine itself says about these form values (the truth both backends must tell)."""
    specs = [InputSpec.from_dict(d) for d in request["form"]]
    return validate_inputs(specs, values, variables={}).errors


# -- pending and show ---------------------------------------------------------------------------


def test_pending_lists_requests_with_summary_shape(world):
    e1, r1 = world.gate(inputs={"who": "pending-one"})
    e2, r2 = world.gate(inputs={"who": "pending-two"})
    pending = {r["id"]: r for r in world.alice.list_pending()}
    assert {r1, r2} <= set(pending)
    for request in pending.values():
        assert set(request) == SUMMARY_KEYS
    assert pending[r1] | {"created_at": None} == {
        "id": r1, "execution_id": e1, "namespace": NS, "flow_id": "form_gate", "task_id": "wait", "kind": "pause",
        "state": "PENDING", "summary": "Ship for pending-one?", "requested_by": "bob", "created_at": None,
        "due_at": None, "decided_at": None, "approvals": 0, "required": 1}
    assert [r["id"] for r in world.alice.list_pending(q="pending-two")] == [r2]
    # viewers see pending requests too
    assert {r1, r2} <= {r["id"] for r in world.carol.list_pending()}


def test_pending_summaries_keep_order_and_skip_unknown(world):
    _, r1 = world.gate()
    _, r2 = world.gate()
    summaries = world.alice.pending_summaries([r2, "r-nope", r1, r2])
    assert [s["id"] for s in summaries] == [r2, r1]
    assert all(set(s) == SUMMARY_KEYS for s in summaries)
    world.alice.decide([r1], "approve", inputs={"ok": True})
    assert [s["state"] for s in world.alice.pending_summaries([r1])] == ["APPROVED"]


def test_show_request_with_context_form_and_rules(world):
    e1, r1 = world.gate(inputs={"who": "show", "count": 3})
    request = world.alice.get_request(r1)
    assert set(request) == DETAIL_KEYS
    assert request["context"]["summary"] == "Ship for show?"
    assert request["context"]["details"] == "count is 3"
    assert request["context"]["impact"] == "one shipment"
    assert request["context"]["inputs"] == {"who": "show", "count": 3}
    assert request["context"]["outputs"] == {"hello": {}}
    assert [f["id"] for f in request["form"]] == ["ok", "note", "copies"]
    assert [f["type"] for f in request["form"]] == ["BOOLEAN", "STRING", "INT"]
    assert request["rules"]["kind"] == "pause"
    assert request["decisions"] == [] and request["result"] is None
    assert world.carol.get_request(r1)["id"] == r1


def test_show_unknown_request_is_not_found(world):
    with pytest.raises(NotFound) as err:
        world.alice.get_request("r-missing")
    assert str(err.value) == "no approval request `r-missing`"


# -- validate -------------------------------------------------------------------------------------


def test_validate_form_values(world):
    _, r1 = world.gate()
    request = world.alice.get_request(r1)
    bad = {"ok": "maybe", "copies": 9}
    errors = world.alice.validate(r1, bad)
    assert errors == form_errors(request, bad)
    assert set(errors) == {"ok", "copies"}
    assert world.alice.validate(r1, {}) == {"ok": "Missing required input:`ok`"}
    assert world.alice.validate(r1, {"ok": True, "copies": 2, "note": "fine"}) == {}
    with pytest.raises(NotFound):
        world.alice.validate("r-missing", {})


# -- approve, deny, cancel -------------------------------------------------------------------------


def test_approve_with_form_resumes_the_execution(world):
    e1, r1 = world.gate(inputs={"who": "approve"})
    outcomes = world.alice.decide([r1], "approve", inputs={"ok": True, "copies": 2}, reason="looks good")
    assert outcomes == [outcome(r1, "decided", f"request {r1} approved", "APPROVED", execution_id=e1)]
    assert outcomes[0].ok
    execution = world.wait_execution(e1)
    assert set(execution) == EXECUTION_KEYS
    assert execution["state"] == "SUCCESS"
    assert execution["outputs"]["wait"]["onResume"] == {"ok": True, "copies": 2, "note": None}
    assert execution["outputs"]["done"] == {"values": {"ok": "true", "copies": "2"}}
    request = world.alice.get_request(r1)
    assert request["state"] == "APPROVED" and request["approvals"] == 1
    assert len(request["decisions"]) == 1
    decision = request["decisions"][0]
    assert set(decision) == DECISION_KEYS
    assert (decision["by"], decision["verdict"], decision["reason"], decision["automatic"], decision["inputs"]) == (
        "alice", "approve", "looks good", False, {"ok": True, "note": None, "copies": 2})
    assert decision["origin"] == world.origin("alice")
    assert request["result"]["state"] == "APPROVED" and request["result"]["by"] == "alice"
    # deciding again: already decided, by whom
    again = world.alice.decide([r1], "approve", inputs={"ok": True})
    assert again == [outcome(r1, "already_decided", f"request {r1} is already approved (by alice)", "APPROVED",
                             by=["alice"], execution_id=e1)]


def test_approve_with_invalid_form_values_decides_nothing(world):
    e1, r1 = world.gate()
    request = world.alice.get_request(r1)
    bad = {"ok": True, "copies": 99}
    errors = form_errors(request, bad)
    outcomes = world.alice.decide([r1], "approve", inputs=bad)
    assert outcomes == [outcome(r1, "invalid_inputs", "; ".join(errors.values()), "PENDING", errors=errors,
                                execution_id=e1)]
    assert world.alice.get_request(r1)["state"] == "PENDING"


def test_deny_needs_a_comment_then_kills_the_execution(world):
    e1, r1 = world.gate("comment_gate")
    message = "A comment is required to deny this request (commentRequired: ON_DENY)"
    assert world.alice.decide([r1], "deny") == [
        outcome(r1, "invalid_inputs", message, "PENDING", errors={"reason": message}, execution_id=e1)]
    assert world.alice.decide([r1], "deny", reason="not today") == [
        outcome(r1, "decided", f"request {r1} denied", "DENIED", execution_id=e1)]
    assert world.wait_execution(e1)["state"] == "KILLED"
    request = world.alice.get_request(r1)
    assert request["state"] == "DENIED"
    assert [(d["by"], d["verdict"], d["reason"]) for d in request["decisions"]] == [("alice", "deny", "not today")]


def test_cancel_outcomes(world):
    e1, r1 = world.gate()
    e2, r2 = world.gate()
    # carol (viewer) may not cancel bob's request; unknown ids are reported, not raised
    assert world.carol.cancel([r1]) == [outcome(
        r1, "not_eligible", f"carol may not cancel request {r1}: only the requester (bob) or an admin may", "PENDING",
        execution_id=e1)]
    outcomes = world.alice.cancel([r1, "r-missing", r1], reason="wrong target")
    assert outcomes == [outcome(r1, "cancelled", f"request {r1} cancelled", "CANCELLED", execution_id=e1),
                        outcome("r-missing", "not_found", "no approval request `r-missing`")]
    assert world.bob.cancel([r1]) == [outcome(r1, "already_decided", f"request {r1} is already cancelled",
                                              "CANCELLED", execution_id=e1)]
    assert world.bob.cancel([r2]) == [outcome(r2, "cancelled", f"request {r2} cancelled", "CANCELLED",
                                              execution_id=e2)]
    assert world.wait_execution(e1)["state"] in {"KILLED", "CANCELLED"}
    assert world.alice.get_request(r1)["result"]["reason"] == "wrong target"


# -- bulk -------------------------------------------------------------------------------------------


def test_bulk_outcomes_one_per_id(world):
    e_ok1, r_ok1 = world.gate("comment_gate")
    e_ok2, r_ok2 = world.gate("comment_gate")
    e_done, r_done = world.gate("comment_gate", by="alice")
    e_self, r_self = world.gate("comment_gate", by="alice")
    e_dave, r_dave = world.gate("assigned_gate")
    assert world.bob.decide([r_done], "approve")[0].outcome == "decided"
    seen: list[tuple[int, int]] = []
    outcomes = world.alice.decide([r_ok1, r_done, r_self, r_dave, "r-missing", r_ok2, r_ok1], "approve",
                                  reason="bulk", progress=lambda done, total: seen.append((done, total)) or True)
    assert outcomes == [
        outcome(r_ok1, "decided", f"request {r_ok1} approved", "APPROVED", execution_id=e_ok1),
        outcome(r_done, "already_decided", f"request {r_done} is already approved (by bob)", "APPROVED", by=["bob"],
                execution_id=e_done),
        outcome(r_self, "self_approval",
                f"alice started execution {e_self} and may not approve it (four-eyes rule)", "PENDING",
                execution_id=e_self),
        outcome(r_dave, "not_eligible", "alice is not assigned to this request (assigned to dave)", "PENDING",
                execution_id=e_dave),
        outcome("r-missing", "not_found", "no approval request `r-missing`"),
        outcome(r_ok2, "decided", f"request {r_ok2} approved", "APPROVED", execution_id=e_ok2),
    ]
    assert seen == [(6, 6)]
    # nothing was half-applied: refused items are still pending
    states = {s["id"]: s["state"] for s in world.alice.pending_summaries([r_self, r_dave, r_ok1])}
    assert states == {r_self: "PENDING", r_dave: "PENDING", r_ok1: "APPROVED"}
    for execution_id in (e_ok1, e_ok2):
        assert world.wait_execution(execution_id)["state"] == "SUCCESS"


def test_bulk_invalid_inputs_and_viewer_refusal(world):
    e1, r1 = world.gate()
    e2, r2 = world.gate()
    request = world.alice.get_request(r1)
    bad = {"ok": "maybe"}
    errors = form_errors(request, bad)
    assert world.alice.decide([r1, r2], "approve", inputs=bad) == [
        outcome(r1, "invalid_inputs", "; ".join(errors.values()), "PENDING", errors=errors, execution_id=e1),
        outcome(r2, "invalid_inputs", "; ".join(errors.values()), "PENDING", errors=errors, execution_id=e2)]
    assert world.carol.decide([r1], "deny", reason="no") == [outcome(
        r1, "not_eligible", "carol may not decide requests in namespace contract.tests (no approver or admin role)",
        "PENDING", execution_id=e1)]


def test_bulk_deny_many(world):
    gates = [world.gate("comment_gate") for _ in range(3)]
    outcomes = world.alice.decide([r for _, r in gates], "deny", reason="batch")
    assert [(o.id, o.outcome, o.state, o.execution_id) for o in outcomes] == [
        (r, "decided", "DENIED", e) for e, r in gates]


def test_idempotency_key_never_decides_twice(world):
    e1, r1 = world.gate("comment_gate")
    e2, r2 = world.gate("comment_gate")
    first = world.alice.decide([r1, r2], "approve", idempotency_key=f"key-{world.kind}-{r1}")
    assert [o.outcome for o in first] == ["decided", "decided"]
    again = world.alice.decide([r1, r2], "approve", idempotency_key=f"key-{world.kind}-{r1}")
    assert again == first
    request = world.alice.get_request(r1)
    assert len(request["decisions"]) == 1


def test_progress_can_stop_a_bulk_action(world):
    """Work goes in chunks (embedded: engine.service.BULK_CHUNK by store; remote: the client's
    DECIDE_SLICE); returning False from progress stops before the next chunk."""
    from signoff.console.remote import DECIDE_SLICE
    from signoff.engine.service import BULK_CHUNK

    chunk = {"local": BULK_CHUNK["sqlite"], "local_pg": BULK_CHUNK["postgresql"]}.get(world.kind, DECIDE_SLICE)
    _, r1 = world.gate("comment_gate")
    assert world.alice.decide([], "approve") == []
    missing = [f"r-gone-{i}" for i in range(chunk)]
    calls: list[tuple[int, int]] = []

    def progress(done: int, total: int) -> bool:
        calls.append((done, total))
        return False

    outcomes = world.alice.decide([*missing, r1], "deny", reason="stop", progress=progress)
    assert calls == [(chunk, chunk + 1)]
    assert [o.outcome for o in outcomes] == ["not_found"] * chunk + ["skipped"]
    assert outcomes[-1] == outcome(r1, "skipped", "not decided: the bulk action was cancelled")
    assert world.alice.get_request(r1)["state"] == "PENDING"


# -- history and audit ------------------------------------------------------------------------------


def test_history_search(world):
    e1, r1 = world.gate()
    world.alice.decide([r1], "approve", inputs={"ok": False}, reason="history check")
    world.wait_execution(e1)
    events = world.alice.history(f"request:{r1}")
    assert [e["action"] for e in events] == ["request.approved", "request.created"]
    assert all(set(e) == EVENT_KEYS for e in events)
    assert events[0]["actor"] == "alice" and events[0]["data"]["reason"] == "history check"
    assert events[0]["seq"] > events[1]["seq"]
    # pages: newest first, then older than the last one seen
    page = world.alice.history(f"request:{r1}", limit=1)
    assert [e["action"] for e in page] == ["request.approved"]
    older = world.alice.history(f"request:{r1}", limit=1, before_seq=page[0]["seq"])
    assert [e["action"] for e in older] == ["request.created"]
    # free text and field filters, as in the CLI
    assert [e["request_id"] for e in world.alice.history(f'"history check" actor:alice request:{r1}')] == [r1]
    execution_events = world.alice.history(f"execution:{e1} action:execution.*")
    assert [e["action"] for e in execution_events] == ["execution.ended", "execution.started"]


def test_export_is_oldest_first(world):
    e1, r1 = world.gate()
    world.alice.decide([r1], "approve", inputs={"ok": True})
    actions = [e["action"] for e in world.alice.export_audit(f"request:{r1}")]
    assert actions == ["request.created", "request.approved"]


def test_history_bad_query_is_a_usage_error(world):
    from signoff.engine.errors import UsageError

    with pytest.raises(UsageError):
        world.alice.history("since:notadate")


def test_usage_errors_say_the_same(world):
    from signoff.engine.errors import UsageError

    with pytest.raises(UsageError) as verdict:
        world.alice.decide(["r-any"], "maybe")
    assert str(verdict.value) == "verdict must be `approve` or `deny`, not `maybe`"
    with pytest.raises(UsageError) as limit:
        world.alice.history("", limit=0)
    assert str(limit.value) == "--limit must be at least 1"


def test_history_pages_larger_than_the_server_page(world):
    world.gate()
    everything = world.alice.history("", limit=5000)
    seqs = [e["seq"] for e in everything]
    assert seqs == sorted(seqs, reverse=True) and len(set(seqs)) == len(seqs)
    head = everything[0]["seq"]  # the server's runner may add events meanwhile: compare up to here
    exported = [e for e in world.alice.export_audit("") if e["seq"] <= head]
    assert [e["seq"] for e in exported] == seqs[::-1]
    assert world.alice.history("", limit=3, before_seq=head + 1) == everything[:3]


def test_verify_audit(world):
    world.gate()
    result = world.alice.verify_audit()
    assert set(result) == VERIFY_KEYS
    assert result["ok"] is True and result["problem"] is None and result["first_bad_seq"] is None
    assert result["count"] >= 2 and result["head_seq"] >= result["count"] - 1
    assert re.fullmatch(r"[0-9a-f]{64}", result["head"])


# -- flows and executions -----------------------------------------------------------------------------


def test_flows_list_and_validate(world):
    flows = {(f["namespace"], f["id"]): f for f in world.alice.list_flows()}
    assert set(flows) == {(NS, "form_gate"), (NS, "comment_gate"), (NS, "assigned_gate"), (NS, "no_gate")}
    form_gate = flows[(NS, "form_gate")]
    assert set(form_gate) == FLOW_KEYS
    assert form_gate["tasks"] == ["hello", "wait", "done"]
    assert form_gate["labels"] == {"suite": "contract"}
    assert [i["id"] for i in form_gate["inputs"]] == ["who", "count"]
    assert world.alice.validate_flow_inputs(NS, "form_gate", {}) == {"who": "Missing required input:`who`"}
    assert world.alice.validate_flow_inputs(NS, "form_gate", {"who": "a", "count": 2}) == {}
    with pytest.raises(NotFound):
        world.alice.validate_flow_inputs(NS, "no_such_flow", {})


def test_start_and_get_execution(world):
    execution = world.bob.start_execution(NS, "no_gate", {"greeting": "hello there"})
    assert set(execution) == EXECUTION_KEYS
    assert (execution["namespace"], execution["flow_id"], execution["started_by"]) == (NS, "no_gate", "bob")
    assert execution["inputs"] == {"greeting": "hello there"}
    done = world.wait_execution(execution["id"])
    assert done["state"] == "SUCCESS"
    assert done["outputs"] == {"say": {}, "result": {"values": {"greeting": "hello there"}}}
    assert [(t["task_id"], t["state"]) for t in done["task_runs"]] == [("say", "SUCCESS"), ("result", "SUCCESS")]
    assert all(set(t) == TASK_RUN_KEYS for t in done["task_runs"])
    assert any(log["message"] == "hello there" for log in done["logs"])
    assert done["requests"] == []


def test_start_refusals(world):
    with pytest.raises(InvalidInputs) as err:
        world.bob.start_execution(NS, "form_gate", {"count": 99})
    assert err.value.errors == {"who": "Missing required input:`who`",
                                "count": "Invalid input for `count`, it must be less than `10`, but received `99`"}
    assert str(err.value) == "\n".join(err.value.errors.values())
    with pytest.raises(NotFound):
        world.bob.start_execution(NS, "no_such_flow", {})
    with pytest.raises(Refused) as refused:
        world.carol.start_execution(NS, "no_gate", {})
    assert str(refused.value) == "carol may not start in namespace contract.tests (flow contract.tests.no_gate)"
    with pytest.raises(NotFound) as missing:
        world.bob.get_execution("e-missing")
    assert str(missing.value) == "no execution `e-missing`"


def test_execution_shows_its_requests(world):
    e1, r1 = world.gate()
    execution = world.bob.get_execution(e1)
    assert execution["state"] == "PAUSED"
    assert [(r["id"], r["state"]) for r in execution["requests"]] == [(r1, "PENDING")]
    assert all(set(r) == SUMMARY_KEYS for r in execution["requests"])


# -- changes ---------------------------------------------------------------------------------------------


def test_changes_follow_requests(world):
    after = world.alice.last_change()
    e1, r1 = world.gate()
    world.alice.decide([r1], "approve", inputs={"ok": True})
    world.wait_execution(e1)
    changes = world.alice.changes(after)
    assert all(isinstance(c, Change) for c in changes)
    mine = [(c.action, c.request_id, c.actor) for c in changes if c.execution_id == e1]
    assert mine == [("request.created", r1, "bob"), ("request.approved", r1, "alice"),
                    ("execution.ended", None, "signoff")]
    seqs = [c.seq for c in changes]
    assert seqs == sorted(seqs) and seqs[0] > after
    assert world.alice.last_change() >= seqs[-1]
    assert world.alice.changes(after, limit=1) == changes[:1]


def test_follow_delivers_live_changes(world):
    if not hasattr(world.alice, "follow"):
        # the local backend has no stream: the console polls changes(); nothing more to check
        assert callable(world.alice.changes)
        return
    after = world.alice.last_change()
    got: list[Change] = []
    states: list[bool] = []
    stop = threading.Event()
    arrived = threading.Event()

    def on_change(change: Change) -> None:
        got.append(change)
        if change.action == "request.approved":
            arrived.set()

    thread = threading.Thread(target=world.alice.follow, args=(after, on_change, stop),
                              kwargs={"on_state": states.append}, daemon=True)
    thread.start()
    try:
        e1, r1 = world.gate()
        world.alice.decide([r1], "approve", inputs={"ok": True})
        assert arrived.wait(15), f"no request.approved event; got {got}"
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()
    assert states[0] is True
    assert [(c.action, c.request_id) for c in got if c.request_id == r1][:2] == [
        ("request.created", r1), ("request.approved", r1)]


# -- both backends, side by side -----------------------------------------------------------------------

_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def _normalise(value: Any, names: dict[str, str]) -> Any:
    if isinstance(value, Outcome):
        value = value.to_dict()
    if isinstance(value, dict):
        return {k: ("<seq>" if k in ("seq", "head_seq", "count") else
                    "<hash>" if k in ("hash", "prev_hash", "head") else
                    # where a decision came from differs by design: "console" / "http 127.0.0.1"
                    "<origin>" if k == "origin" else _normalise(v, names))
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_normalise(v, names) for v in value]
    if isinstance(value, str):
        if _TIME.match(value):
            return "<time>"
        for real, placeholder in names.items():
            value = value.replace(real, placeholder)
        return value
    return value


def _transcript(world) -> list[Any]:
    """One scripted session; everything the backend answered, ids and times normalised."""
    names: dict[str, str] = {}
    seen: list[Any] = []

    def gate(flow: str, inputs: dict[str, Any] | None = None, by: str = "bob") -> tuple[str, str]:
        e, r = world.gate(flow, inputs, by=by)
        index = len(names) // 2
        names[e] = f"<execution{index}>"
        names[r] = f"<request{index}>"
        return e, r

    e1, r1 = gate("form_gate", {"who": "transcript"})
    e2, r2 = gate("comment_gate")
    e3, r3 = gate("comment_gate", by="alice")
    e4, r4 = gate("assigned_gate")
    seen.append(world.alice.pending_summaries([r1, r2, r3, r4]))
    seen.append(world.alice.get_request(r1))
    seen.append(world.alice.validate(r1, {"ok": "maybe", "copies": 7}))
    seen.append(world.alice.decide([r1], "approve", inputs={"ok": "yes", "copies": 99}))
    seen.append(world.alice.decide([r1, r2, r3, r4, "r-missing"], "approve", inputs={"ok": True, "copies": 1},
                                   reason="together"))
    seen.append(world.alice.cancel([r4, r2, "r-missing"], reason="tidy"))
    for e in (e1, e2, e4):
        execution = world.wait_execution(e)
        execution.pop("logs")  # engine log lines are the same, but their order within a millisecond may vary
        seen.append(execution)
    seen.append(world.alice.get_request(r1))
    seen.append([{k: v for k, v in e.items() if k not in ("data",)} | {"data_keys": sorted(e["data"] or {})}
                 for e in world.alice.history(f"execution:{e1}")])
    seen.append([f for f in world.alice.list_flows()])
    seen.append(world.alice.validate_flow_inputs(NS, "form_gate", {"count": "many"}))
    for call in (lambda: world.alice.get_request("r-missing"), lambda: world.carol.start_execution(NS, "no_gate", {}),
                 lambda: world.bob.start_execution(NS, "form_gate", {})):
        try:
            call()
            seen.append("no error")
        except Exception as exc:  # noqa: BLE001 - the type and message are what we compare
            seen.append((type(exc).__name__, str(exc), getattr(exc, "errors", None)))
    world.alice.decide([r3], "deny", reason="cleanup")
    return _normalise(seen, names)


def _differences(a: Any, b: Any, path: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = [f"{path}.{k}: only on {'local' if k in a else 'remote'}" for k in set(a) ^ set(b)]
        for k in a.keys() & b.keys():
            out += _differences(a[k], b[k], f"{path}.{k}")
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in _differences(x, y, f"{path}[{i}]")]
    return [] if a == b else [f"{path}: local {a!r} != remote {b!r}"]


@pytest.mark.parametrize("pair", [("local_world", "remote_world"), ("local_world", "local_pg_world"),
                                  ("remote_world", "remote_pg_world"), ("local_world", "socket_world")])
def test_same_transcript(request, pair):
    """The same session gives the same results through both backends and on both stores."""
    local = _transcript(request.getfixturevalue(pair[0]))
    remote = _transcript(request.getfixturevalue(pair[1]))
    assert len(local) == len(remote)
    differences = _differences(local, remote)
    assert not differences, "\n".join(differences)


# -- restart and replay -------------------------------------------------------------------------


def test_restart_and_replay(world):
    execution_id, request_id = world.gate(inputs={"who": "replayed", "count": 2})
    world.alice.decide([request_id], "approve", inputs={"ok": True, "copies": 3})
    done = world.wait_execution(execution_id)
    assert done["state"] == "SUCCESS"
    with pytest.raises(Conflict, match=f"execution {execution_id} is SUCCESS: only FAILED or KILLED"):
        world.bob.restart_execution(execution_id)
    with pytest.raises(Refused, match="carol may not"):
        world.carol.replay_execution(execution_id, from_task="done")
    with pytest.raises(NotFound, match="no execution `e-none`"):
        world.bob.restart_execution("e-none")
    replay = world.alice.replay_execution(execution_id, from_task="done")
    assert set(replay) == EXECUTION_KEYS
    assert replay["original_id"] == execution_id and replay["started_by"] == "alice"
    assert replay["origin"] == {"kind": "replay", "execution_id": execution_id, "from": "done"}
    replayed = world.wait_execution(replay["id"])
    assert replayed["state"] == "SUCCESS" and replayed["requests"] == []
    assert replayed["outputs"]["done"] == done["outputs"]["done"] == {"values": {"ok": "true", "copies": "3"}}
    assert [t["path"] for t in replayed["task_runs"]] == ["hello", "wait", "done"]
