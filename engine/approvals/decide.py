"""Deciding one approval request inside the caller's write transaction.

Single decisions, bulk decisions, the Resume task and automatic approvals all come through
:func:`decide_in_tx`, so the rules (eligibility, four-eyes, quorum, veto, form validation,
idempotency) live in one place. The caller owns the transaction (a SAVEPOINT per item in
bulk), so an item is either fully recorded - decision row, request state, queued
continuation, audit event - or not at all.
"""
from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from signoff.engine import jsonutil
from signoff.engine.approvals import outcome as oc
from signoff.engine.approvals.close import close_request
from signoff.engine.approvals.outcome import APPROVE, DENY, Outcome, comment_message, comment_mode, comment_required
from signoff.engine.audit import append_event
from signoff.engine.clock import seconds_between
from signoff.engine.identity import Identity
from signoff.engine.inputs.spec import InputSpec, mask
from signoff.engine.store.locks import for_update, lock_work_of

if TYPE_CHECKING:
    from signoff.engine.inputs.validate import ValidationResult
    from signoff.engine.notify.config import NotificationConfig
    from signoff.engine.policy import Policy


@dataclass
class DecisionRequest:
    verdict: str  # approve | deny
    inputs: Mapping[str, Any]
    reason: str | None
    origin: str  # "cli", "console", "http 10.0.0.5", "auto", "resume-task" ...
    automatic: bool = False
    auto_expression: Any = None
    #: performance: form checks already done for this decision, by frozen form text (see
    #: :func:`_checked_form`); one bulk call decides thousands of requests with one decision
    checked: dict[str, tuple[Any, dict[str, Any], dict[str, str]]] = field(
        default_factory=dict, repr=False, compare=False)
    #: signed decisions (engine.signing.check.SignatureCheck): the signatures sent and the
    #: caches of one call; None for the engine's own decisions (automatic approvals)
    signatures: Any = field(default=None, repr=False, compare=False)
    #: performance: parsed rules by their stored text (the requests of one task share it),
    #: read only; see :meth:`rules_of`
    parsed_rules: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False, compare=False)

    def rules_of(self, text: str | None) -> dict[str, Any]:
        """A request's rules (its ``rules`` column) parsed once per decision call. Callers only
        read the dict."""
        key = text or ""
        rules = self.parsed_rules.get(key)
        if rules is None:
            rules = self.parsed_rules[key] = jsonutil.loads(text, {})
        return rules


@dataclass
class Prefetched:
    """What deciding a chunk of requests reads, read in three statements for the whole chunk
    (performance: on PostgreSQL each statement is a network round trip; a 10,000-item bulk
    read 4 rows per item one by one). The request rows are locked as they are read (``FOR
    UPDATE``, in id order), so their decisions cannot change before COMMIT except through
    this transaction, which keeps :attr:`decisions` up to date (:func:`decide_in_tx`)."""

    requests: dict[str, Any]
    #: request id -> [(actor, verdict)] in decision order
    decisions: dict[str, list[tuple[str, str]]]
    #: execution id -> who started it (four-eyes)
    started_by: dict[str, str]


def prefetch(tx: sqlite3.Connection, request_ids: list[str]) -> Prefetched:
    """Lock and read ``request_ids`` (at most a few thousand), their decisions and starters."""
    found = Prefetched({}, {}, {})
    lock_work_of(tx, request_ids)  # the work rows first, as a runner takes them (store.locks)
    for start in range(0, len(request_ids), 1000):
        part = sorted(request_ids[start:start + 1000])
        marks = ",".join("?" * len(part))
        for row in tx.execute(f"SELECT * FROM requests WHERE id IN ({marks}) ORDER BY id" + for_update(tx), part):
            found.requests[row["id"]] = row
        for request_id, who, verdict in tx.execute(
                f"SELECT request_id, actor, verdict FROM decisions WHERE request_id IN ({marks}) ORDER BY id", part):
            found.decisions.setdefault(request_id, []).append((who, verdict))
    executions = sorted({row["execution_id"] for row in found.requests.values()})
    for start in range(0, len(executions), 1000):
        part = executions[start:start + 1000]
        marks = ",".join("?" * len(part))
        for execution_id, who in tx.execute(f"SELECT id, started_by FROM executions WHERE id IN ({marks})", part):
            found.started_by[execution_id] = who
    return found


def decide_in_tx(tx: sqlite3.Connection, *, now: str, actor: Identity, request_id: str, decision: DecisionRequest,
                 policy: Policy, enqueue: Callable[[sqlite3.Connection, str], object],
                 notifications: NotificationConfig | None = None,
                 functions: Callable[[sqlite3.Row], Mapping[str, Any]] | None = None,
                 prefetched: Prefetched | None = None) -> Outcome:
    """``functions(row)``: the expression functions the request's form defaults may call.
    ``prefetched``: the chunk's rows, read and locked beforehand (:func:`prefetch`)."""
    # locked until COMMIT on PostgreSQL: two replicas deciding the same request take turns, so
    # the state check and the approvals count below see every decision committed before
    if prefetched is None:
        lock_work_of(tx, [request_id])  # the work row first, as a runner takes it (store.locks)
        row = tx.execute("SELECT * FROM requests WHERE id=?" + for_update(tx), (request_id,)).fetchone()
        decided = [(r[0], r[1]) for r in tx.execute("SELECT actor, verdict FROM decisions WHERE request_id=?"
                                                    " ORDER BY id", (request_id,))] if row is not None else []
    else:
        row = prefetched.requests.get(request_id)
        decided = prefetched.decisions.setdefault(request_id, [])
    if row is None:
        return Outcome(request_id, oc.NOT_FOUND, f"no approval request `{request_id}`")
    rules = decision.rules_of(row["rules"])
    execution_id = row["execution_id"]
    base = dict(id=request_id, execution_id=execution_id)
    if row["state"] != "PENDING":
        by = [who for who, _verdict in decided]
        who = ", ".join(by) if by else ("the engine" if row["state"] == "EXPIRED" else "nobody")
        return Outcome(**base, outcome=oc.ALREADY_DECIDED, state=row["state"], by=by,
                       message=f"request {request_id} is already {row['state'].lower()} (by {who})")
    if not decision.automatic:
        refusal = eligibility_refusal(actor, row, rules, policy)
        if refusal:
            append_event(tx, at=now, actor=actor.name, action="policy.denied", namespace=row["namespace"],
                         flow_id=row["flow_id"], execution_id=execution_id, request_id=request_id,
                         data={"operation": decision.verdict, "reason": refusal})
            return Outcome(**base, outcome=oc.NOT_ELIGIBLE, state="PENDING", message=refusal)
        if decision.verdict == APPROVE and not self_approval_allowed(rules, policy):
            started_by = prefetched.started_by.get(execution_id) if prefetched is not None else tx.execute(
                "SELECT started_by FROM executions WHERE id=?", (execution_id,)).fetchone()[0]
            if started_by == actor.name:
                append_event(tx, at=now, actor=actor.name, action="policy.denied", namespace=row["namespace"],
                             flow_id=row["flow_id"], execution_id=execution_id, request_id=request_id,
                             data={"operation": "approve", "reason": "four-eyes"})
                return Outcome(**base, outcome=oc.SELF_APPROVAL, state="PENDING",
                               message=f"{actor.name} started execution {execution_id} and may not approve it "
                                       "(four-eyes rule)")
    mine = next(((verdict,) for who, verdict in decided if who == actor.name), None)
    if mine is not None:
        return Outcome(**base, outcome=oc.ALREADY_DECIDED, state="PENDING", by=[actor.name],
                       message=f"{actor.name} already {mine[0]}d request {request_id}; waiting for other approvers")

    values: dict[str, Any] = {}
    errors = comment_errors(rules, decision)
    # performance: the context is not parsed here: a form check reused from another request of
    # the bulk does not read it, and the audit event carries its stored text as it is
    masked: dict[str, Any] = {}  # ``values`` as the audit shows them (secrets masked)
    if decision.verdict == APPROVE:
        values, masked, form_errors = _checked_form(row, decision, functions)
        errors.update(form_errors)
    if errors:
        return Outcome(**base, outcome=oc.INVALID_INPUTS, state="PENDING", errors=errors,
                       message="; ".join(errors.values()))
    signature: dict[str, Any] | None = None
    if decision.signatures is not None and not decision.automatic:
        from signoff.engine.signing.check import signature_mode

        refused, message, signature = decision.signatures.check(
            tx, now=now, actor=actor.name, mode=signature_mode(policy, actor, row["namespace"]), row=row,
            verdict=decision.verdict, reason=decision.reason, values=values)
        if refused:
            append_event(tx, at=now, actor=actor.name, action="policy.denied", namespace=row["namespace"],
                         flow_id=row["flow_id"], execution_id=execution_id, request_id=request_id,
                         data={"operation": decision.verdict, "reason": refused, "message": message})
            return Outcome(**base, outcome=refused, state="PENDING", message=message)

    elapsed = seconds_between(row["created_at"], now)
    tx.execute("INSERT INTO decisions(request_id, actor, verdict, inputs, reason, at, origin, automatic, statement,"
               " signature, key_fingerprint, batch_sha256, response_s) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
               (request_id, actor.name, decision.verdict, jsonutil.dumps(values), decision.reason, now,
                decision.origin, int(decision.automatic), signature.get("statement") if signature else None,
                signature.get("signature") if signature else None, signature["fingerprint"] if signature else None,
                signature.get("batch_sha256") if signature else None, elapsed))
    decided.append((actor.name, decision.verdict))
    required = int(rules.get("required") or 1)
    if decision.verdict == DENY:
        state = "DENIED"
    elif decision.automatic:
        state = "APPROVED"
    else:
        approvals = sum(1 for _who, verdict in decided if verdict == APPROVE)
        state = "APPROVED" if approvals >= required else "PENDING"
    event: dict[str, Any] = {"verdict": decision.verdict, "inputs": masked, "reason": decision.reason,
                             "origin": decision.origin, "state": state}
    if signature is not None:
        event["signature"] = signature
    if decision.automatic:
        event["automatic"] = True
        event["expression"] = row_rules_expression(rules)
        event["value"] = decision.auto_expression
    append_event(tx, at=now, actor=actor.name, action="request.auto_approved" if decision.automatic
                 else f"request.{'approved' if decision.verdict == APPROVE else 'denied'}",
                 namespace=row["namespace"], flow_id=row["flow_id"], execution_id=execution_id,
                 request_id=request_id, data=event, raw={"context": row["context"] or "{}"})
    if state != "PENDING":
        close_request(tx, request_id, state, by=actor.name, now=now, elapsed=elapsed, inputs=values,
                      reason=decision.reason, automatic=decision.automatic)
        enqueue(tx, execution_id)
        if notifications is not None:  # (enqueue sends nothing without a configuration)
            from signoff.engine.notify import outbox

            outbox.enqueue(tx, notifications, "decided", dict(row), now,
                           {"state": state, "by": actor.name, "reason": decision.reason})
        message = f"request {request_id} {state.lower()}"
    else:  # only an approval short of the quorum leaves the request pending
        message = f"approval recorded for request {request_id} ({approvals} of {required})"
    return Outcome(**base, outcome=oc.DECIDED, state=state, message=message,
                   signature={"fingerprint": signature["fingerprint"], "key_type": signature["key_type"]}
                   if signature else None)


def _checked_form(row: sqlite3.Row, decision: DecisionRequest,
                  functions: Callable[[sqlite3.Row], Mapping[str, Any]] | None = None,
                  ) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
    """(values, values with secrets masked, errors) of the decision's form values against the
    request's frozen form. Without templates or conditions in the form, the outcome depends on
    the form text and the values alone (not on the request's context), so a bulk decision
    checks each distinct form once instead of once per request. ``functions(row)``: the
    expression functions the form's defaults may call."""
    text = row["form"] or "[]"
    reusable = ("{{" not in text and "{%" not in text
                and text.count('"dependsOn":') == text.count('"dependsOn":null'))
    if reusable and text in decision.checked:
        return decision.checked[text]
    form = jsonutil.loads(text, [])
    # (the expression functions are made only for a form that is checked: not for a reused check)
    result = validate_form(row, decision.inputs, form=form,
                           functions=functions(row) if functions is not None else None)
    checked = (result.values, mask(form, result.values), dict(result.errors))
    if reusable:
        decision.checked[text] = checked
    return checked


def row_rules_expression(rules: Mapping[str, Any]) -> Any:
    return rules.get("autoApprove") or rules.get("when")


def eligibility_refusal(actor: Identity, row: sqlite3.Row, rules: Mapping[str, Any], policy: Policy) -> str | None:
    """Why ``actor`` may not decide this request, or None when they may."""
    namespace = row["namespace"]
    if not policy.allows(actor, "decide", namespace):
        return f"{actor.name} may not decide requests in namespace {namespace} (no approver or admin role)"
    assignment = rules.get("escalatedTo") or rules.get("assignment") or {}
    users = _as_list(assignment.get("users"))
    groups = _as_list(assignment.get("groups"))
    if users or groups:
        if actor.name in users or any(policy.in_group(actor, g) for g in groups):
            return None
        named = ", ".join([*users, *(f"group {g}" for g in groups)])
        return f"{actor.name} is not assigned to this request (assigned to {named})"
    return None


def _as_list(value: Any) -> list[str]:
    """Flows may write one user or group as a plain string."""
    if not value:
        return []
    return [value] if isinstance(value, str) else [str(v) for v in value]


def self_approval_allowed(rules: Mapping[str, Any], policy: Policy) -> bool:
    allowed = rules.get("allowSelfApproval")
    if allowed is None:
        return not policy.four_eyes
    return bool(allowed)


def comment_errors(rules: Mapping[str, Any], decision: DecisionRequest) -> dict[str, str]:
    mode = comment_mode(rules)
    if comment_required(mode, decision.verdict) and not (decision.reason or "").strip() and not decision.automatic:
        return {"reason": comment_message(mode, decision.verdict)}
    return {}


def form_specs(row: sqlite3.Row, form: list[dict[str, Any]] | None = None) -> list[InputSpec]:
    return [InputSpec.from_dict(d) for d in (jsonutil.loads(row["form"], []) if form is None else form)]


def validate_form(row: sqlite3.Row, inputs: Mapping[str, Any], *, context: dict[str, Any] | None = None,
                  form: list[dict[str, Any]] | None = None,
                  functions: Mapping[str, Any] | None = None) -> ValidationResult:
    """``context`` / ``form``: the row's already-parsed JSON columns, when the caller has them.
    A value holding NUL once parsed (a JSON, YAML or ARRAY text may spell it as an escape) is an
    error of its field, on both stores (engine.nul)."""
    from signoff.engine.inputs import validate_inputs
    from signoff.engine.nul import input_errors

    if context is None:
        context = jsonutil.loads(row["context"], {})
    variables = {"inputs": context.get("inputs", {}), "outputs": context.get("outputs", {})}
    result = validate_inputs(form_specs(row, form), dict(inputs or {}), variables=variables, functions=functions)
    refused = input_errors(inputs) or input_errors(result.values)
    if refused:
        result.errors = {**result.errors, **refused}
    return result

