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
from typing import TYPE_CHECKING, Any, NamedTuple

from signoff.engine import jsonutil
from signoff.engine.approvals import outcome as oc
from signoff.engine.approvals.close import close_request, result_document
from signoff.engine.approvals.outcome import APPROVE, DENY, Outcome, comment_message, comment_mode, comment_required
from signoff.engine.audit import append_event
from signoff.engine.clock import seconds_between
from signoff.engine.identity import Identity
from signoff.engine.inputs.spec import InputSpec, mask
from signoff.engine.signing.check import signature_mode
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
    checked: dict[str, FormCheck] = field(default_factory=dict, repr=False, compare=False)
    #: signed decisions (engine.signing.check.SignatureCheck): the signatures sent and the
    #: caches of one call; None for the engine's own decisions (automatic approvals)
    signatures: Any = field(default=None, repr=False, compare=False)
    #: performance: parsed rules by their stored text (the requests of one task share it),
    #: read only; see :meth:`rules_of`
    parsed_rules: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False, compare=False)
    #: performance: JSON texts that are the same for many items of one call (an event's members
    #: other than the context, a result document), by what they depend on; see :meth:`once`
    encoded: dict[tuple[Any, ...], Any] = field(default_factory=dict, repr=False, compare=False)
    #: performance: the checks that depend only on the namespace and the rules, by both
    #: (see :meth:`gates_of`)
    gates: dict[tuple[str, str, str], Gates] = field(default_factory=dict, repr=False, compare=False)

    def rules_of(self, text: str | None) -> dict[str, Any]:
        """A request's rules (its ``rules`` column) parsed once per decision call. Callers only
        read the dict."""
        key = text or ""
        rules = self.parsed_rules.get(key)
        if rules is None:
            rules = self.parsed_rules[key] = jsonutil.loads(text, {})
        return rules

    def once(self, key: tuple[Any, ...] | None, make: Callable[[], Any]) -> Any:
        """``make()``, kept under ``key`` for the rest of the call (None: not kept, as for what
        differs from item to item)."""
        if key is None:
            return make()
        value = self.encoded.get(key)
        if value is None:
            value = self.encoded[key] = make()
        return value

    def gates_of(self, actor: Identity, policy: Policy, row: Any, rules: Mapping[str, Any]) -> Gates:
        """The checks of a request that depend on nothing but its namespace and rules (the actor,
        the policy and this decision are the call's), made once per call for each pair: a bulk
        decision's thousands of requests usually share one."""
        key = (actor.name, row["namespace"], row["rules"] or "")
        gates = self.gates.get(key)
        if gates is None:
            by_hand = not self.automatic
            gates = self.gates[key] = Gates(
                refusal=eligibility_refusal(actor, row, rules, policy) if by_hand else None,
                four_eyes=by_hand and self.verdict == APPROVE and not self_approval_allowed(rules, policy),
                comment_errors=comment_errors(rules, self),
                signature_mode=signature_mode(policy, actor, key[1])
                if by_hand and self.signatures is not None else None)
        return gates


class Gates(NamedTuple):
    """What :meth:`DecisionRequest.gates_of` gives."""

    #: why the actor may not decide (policy, assignment), or None
    refusal: str | None
    #: the four-eyes rule applies: the execution's starter may not approve
    four_eyes: bool
    #: the comment the rules require and the decision lacks (read only)
    comment_errors: dict[str, str]
    #: the signatures mode (engine.signing.check), when this decision is checked for one
    signature_mode: str | None


class FormCheck(NamedTuple):
    """A decision's form values checked against a request's frozen form (:func:`_checked_form`),
    with their canonical JSON, encoded once per check."""

    values: dict[str, Any]
    #: ``values`` as the audit shows them (secrets masked)
    masked: dict[str, Any]
    errors: dict[str, str]
    values_json: str
    masked_json: str
    #: the check depends on the form text alone, so it serves every request with that form
    shared: bool


#: a deny's form check: it sends no values, so there is nothing to check (read only)
NO_FORM = FormCheck({}, {}, {}, "{}", "{}", True)

#: the audit event's members given as JSON text (jsonutil.splice), in sorted order
EVENT_RAW = ("context", "inputs")


@dataclass
class Prefetched:
    """What deciding a chunk of requests reads, read in two statements for the whole chunk
    (performance: on PostgreSQL each statement is a network round trip; a 10,000-item bulk
    read 4 rows per item one by one). The request rows are locked as they are read (``FOR
    UPDATE``, in id order), so their decisions cannot change before COMMIT except through
    this transaction, which keeps :attr:`decisions` up to date (:func:`decide_in_tx`)."""

    requests: dict[str, Any]
    #: request id -> [(actor, verdict)] in decision order
    decisions: dict[str, list[tuple[str, str]]]


def prefetch(tx: sqlite3.Connection, request_ids: list[str]) -> Prefetched:
    """Lock and read ``request_ids`` (at most a few thousand) and their decisions."""
    found = Prefetched({}, {})
    lock_work_of(tx, request_ids)  # the work rows first, as a runner takes them (store.locks)
    for start in range(0, len(request_ids), 1000):
        part = sorted(request_ids[start:start + 1000])
        marks = ",".join("?" * len(part))
        for row in tx.execute(f"SELECT * FROM requests WHERE id IN ({marks}) ORDER BY id" + for_update(tx), part):
            found.requests[row["id"]] = row
        for request_id, who, verdict in tx.execute(
                f"SELECT request_id, actor, verdict FROM decisions WHERE request_id IN ({marks}) ORDER BY id", part):
            found.decisions.setdefault(request_id, []).append((who, verdict))
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
    gates = decision.gates_of(actor, policy, row, rules)
    if gates.refusal:
        append_event(tx, at=now, actor=actor.name, action="policy.denied", namespace=row["namespace"],
                     flow_id=row["flow_id"], execution_id=execution_id, request_id=request_id,
                     data={"operation": decision.verdict, "reason": gates.refusal})
        return Outcome(**base, outcome=oc.NOT_ELIGIBLE, state="PENDING", message=gates.refusal)
    # four-eyes: ``requested_by`` is the execution's ``started_by``, copied when the request was
    # made (engine.approvals.requests; an execution's starter never changes), so the executions
    # table is not read (performance: ~2 us an item of a bulk decision)
    if gates.four_eyes and row["requested_by"] == actor.name:
        append_event(tx, at=now, actor=actor.name, action="policy.denied", namespace=row["namespace"],
                     flow_id=row["flow_id"], execution_id=execution_id, request_id=request_id,
                     data={"operation": "approve", "reason": "four-eyes"})
        return Outcome(**base, outcome=oc.SELF_APPROVAL, state="PENDING",
                       message=f"{actor.name} started execution {execution_id} and may not approve it "
                               "(four-eyes rule)")
    for who, verdict in decided:
        if who == actor.name:
            return Outcome(**base, outcome=oc.ALREADY_DECIDED, state="PENDING", by=[actor.name],
                           message=f"{actor.name} already {verdict}d request {request_id}; waiting for other "
                                   "approvers")

    # performance: the context is not parsed here: a form check reused from another request of
    # the bulk does not read it, and the audit event carries its stored text as it is
    if decision.verdict == APPROVE:
        check = _checked_form(row, decision, functions)
    else:
        check = NO_FORM
    if gates.comment_errors or check.errors:
        errors = {**gates.comment_errors, **check.errors}
        return Outcome(**base, outcome=oc.INVALID_INPUTS, state="PENDING", errors=errors,
                       message="; ".join(errors.values()))
    signature: dict[str, Any] | None = None
    if gates.signature_mode is not None:
        refused, message, signature = decision.signatures.check(
            tx, now=now, actor=actor.name, mode=gates.signature_mode, row=row,
            verdict=decision.verdict, reason=decision.reason, values=check.values)
        if refused:
            append_event(tx, at=now, actor=actor.name, action="policy.denied", namespace=row["namespace"],
                         flow_id=row["flow_id"], execution_id=execution_id, request_id=request_id,
                         data={"operation": decision.verdict, "reason": refused, "message": message})
            return Outcome(**base, outcome=refused, state="PENDING", message=message)

    elapsed = seconds_between(row["created_at"], now)
    tx.execute("INSERT INTO decisions(request_id, actor, verdict, inputs, reason, at, origin, automatic, statement,"
               " signature, key_fingerprint, batch_sha256, response_s) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
               (request_id, actor.name, decision.verdict, check.values_json, decision.reason, now,
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
        approvals = [verdict for _who, verdict in decided].count(APPROVE)
        state = "APPROVED" if approvals >= required else "PENDING"
    # the event: the request's context and the masked values spliced in as JSON text; the other
    # members are encoded once per state for a call whose events differ in nothing else
    event: dict[str, Any] = {"verdict": decision.verdict, "reason": decision.reason, "origin": decision.origin,
                             "state": state}
    if signature is not None:
        event["signature"] = signature
    if decision.automatic:
        event["automatic"] = True
        event["expression"] = row_rules_expression(rules)
        event["value"] = decision.auto_expression
    parts = decision.once(("event", state) if signature is None and not decision.automatic else None,
                          lambda: jsonutil.plain_parts(event, EVENT_RAW))
    data_json = jsonutil.splice(parts, EVENT_RAW, {"context": row["context"] or "{}", "inputs": check.masked_json})
    append_event(tx, at=now, actor=actor.name, action="request.auto_approved" if decision.automatic
                 else f"request.{'approved' if decision.verdict == APPROVE else 'denied'}",
                 namespace=row["namespace"], flow_id=row["flow_id"], execution_id=execution_id,
                 request_id=request_id, data_json=data_json)
    if state != "PENDING":
        # the result document: once per state and moment when the form check is shared, as it is
        # for every item of a bulk decision on one form
        result_json = decision.once(
            ("result", state, actor.name, now, check.values_json) if check.shared else None,
            lambda: jsonutil.dumps_with_raw(result_document(state, actor.name, now, reason=decision.reason,
                                                            automatic=decision.automatic),
                                            {"inputs": check.values_json}))
        close_request(tx, request_id, state, by=actor.name, now=now, elapsed=elapsed, result_json=result_json)
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
                  functions: Callable[[sqlite3.Row], Mapping[str, Any]] | None = None) -> FormCheck:
    """The decision's form values checked against the request's frozen form. Without templates
    or conditions in the form, the outcome depends on the form text and the values alone (not
    on the request's context), so a bulk decision checks each distinct form once instead of
    once per request. ``functions(row)``: the expression functions the form's defaults may
    call."""
    text = row["form"] or "[]"
    reusable = ("{{" not in text and "{%" not in text
                and text.count('"dependsOn":') == text.count('"dependsOn":null'))
    if reusable and text in decision.checked:
        return decision.checked[text]
    form = jsonutil.loads(text, [])
    # (the expression functions are made only for a form that is checked: not for a reused check)
    result = validate_form(row, decision.inputs, form=form,
                           functions=functions(row) if functions is not None else None)
    masked = mask(form, result.values)
    checked = FormCheck(result.values, masked, dict(result.errors), jsonutil.dumps(result.values),
                        jsonutil.dumps(masked), reusable)
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

