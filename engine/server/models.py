"""Request and response models of the HTTP API, so /openapi.json documents every shape.

Request bodies are validated by these models (unknown fields refused, text limited, no lone
surrogates, no NUL anywhere - values or keys, however deep (engine.nul) - and no numbers that
JSON or SQLite cannot hold). Response models document the
shapes the service returns (engine.service); endpoints return the service's dicts as they
are, and the schemathesis test checks the two agree.
"""
from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from signoff.engine.nul import nul_problem

MAX_TEXT = 10_000
MAX_DEPTH = 32
_INT64 = 2**63


def _check_value(value: Any, path: str, depth: int = 0) -> str | None:
    """Why a client value cannot be stored (None when it can)."""
    if depth > MAX_DEPTH:
        return f"{path}: nested too deeply"
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return f"{path}: text is not valid Unicode (lone surrogate)"
        return None
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return None if -_INT64 <= value < _INT64 else f"{path}: number out of range"
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{path}: number out of range"
    if isinstance(value, dict):
        for k, v in value.items():
            problem = _check_value(k, path, depth + 1) or _check_value(v, f"{path}.{k}", depth + 1)
            if problem:
                return problem
        return None
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            problem = _check_value(v, f"{path}.{i}", depth + 1)
            if problem:
                return problem
    return None


class Body(BaseModel):
    """Base of request bodies: unknown fields are refused; every value must be storable."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _storable(cls, value: Any, info: ValidationInfo) -> Any:
        name = info.field_name or "value"
        problem = nul_problem(value, name) or _check_value(value, name)
        if problem:
            raise PydanticCustomError("unstorable", problem)
        return value


Inputs = dict[str, Any]
Reason = str | None
IdempotencyKey = str | None


class ValidateBody(Body):
    inputs: Inputs = Field(default_factory=dict, description="Form values by input id")


class SignedIn(Body):
    """A client-made signature over the decision's canonical statement (engine.signing)."""

    # at most 150,000 characters: one character more, even escaped as \uXXXX, still fits the
    # 1 MB body limit, so a statement too long is a 422 naming the field, never a 413
    statement: str = Field(min_length=1, max_length=150_000, description="The canonical statement that was signed")
    signature: str = Field(min_length=1, max_length=20_000, description="OpenSSH sshsig signature, armoured")


class ApproveBody(Body):
    inputs: Inputs = Field(default_factory=dict, description="Form values by input id")
    reason: Reason = Field(default=None, max_length=MAX_TEXT, description="Why (kept in the audit trail)")
    idempotency_key: IdempotencyKey = Field(default=None, min_length=1, max_length=200,
                                            description="Retrying with the same key never decides twice")
    signature: SignedIn | None = Field(default=None, description="The signer's signature (signed decisions)")


class DenyBody(Body):
    reason: Reason = Field(default=None, max_length=MAX_TEXT)
    idempotency_key: IdempotencyKey = Field(default=None, min_length=1, max_length=200)
    signature: SignedIn | None = None


class CancelBody(Body):
    reason: Reason = Field(default=None, max_length=MAX_TEXT)
    signature: SignedIn | None = None


class BulkBody(Body):
    ids: list[str] = Field(min_length=1, max_length=100_000, description="Request ids, decided in this order")
    verdict: Literal["approve", "deny"]
    inputs: Inputs = Field(default_factory=dict, description="Form values (approve), the same for every id")
    reason: Reason = Field(default=None, max_length=MAX_TEXT)
    idempotency_key: IdempotencyKey = Field(default=None, min_length=1, max_length=200)
    signatures: dict[str, SignedIn] | None = Field(default=None, description="Request id -> its signature")
    batches: list[SignedIn] | None = Field(default=None, max_length=200,
                                           description="Signed statements that list many requests (bulk)")


class MaterialBody(Body):
    ids: list[str] = Field(min_length=1, max_length=1000, description="Request ids to sign decisions on")
    verdict: Literal["approve", "deny", "cancel"]
    inputs: Inputs = Field(default_factory=dict, description="Form values (approve), the same for every id")


class KeyBody(Body):
    public_key: str = Field(min_length=1, max_length=20_000, description="One OpenSSH public key line")
    nonce: str | None = Field(default=None, max_length=200, description="From POST /keys/challenge")
    signature: str | None = Field(default=None, max_length=20_000,
                                  description="The key's sshsig signature over the registration statement")
    user: str | None = Field(default=None, max_length=128, description="Register for this user (admins only)")


class RevokeBody(Body):
    fingerprint: str = Field(min_length=1, max_length=200, description="SHA256:... as `signoff keys list` shows it")
    user: str | None = Field(default=None, max_length=128)


class StartBody(Body):
    namespace: str = Field(min_length=1, max_length=500)
    flow_id: str = Field(min_length=1, max_length=500)
    inputs: Inputs = Field(default_factory=dict)


class ReplayBody(Body):
    from_task: str | None = Field(default=None, min_length=1, max_length=500,
                                  description="Run again from this task; earlier finished tasks are copied")
    revision: int | None = Field(default=None, ge=1, description="Flow revision (default: the original's)")


class KvBody(Body):
    value: Any = Field(description="Any JSON value")


# -- responses -------------------------------------------------------------------------


class Out(BaseModel):
    """Responses may gain fields over time; clients ignore the ones they do not know."""

    model_config = ConfigDict(extra="allow")


class Problem(Out):
    type: str = Field(description="A URI naming the kind of problem, or about:blank")
    title: str
    status: int
    detail: str
    errors: dict[str, str] | None = Field(default=None, description="Per-field messages (422)")


class Health(Out):
    status: Literal["ok"]
    schema_: int = Field(alias="schema")


class Me(Out):
    name: str
    groups: list[str]
    roles: dict[str, list[str]] = Field(description="Roles by namespace pattern")
    single_user: bool
    four_eyes: bool


class RequestSummary(Out):
    id: str
    execution_id: str
    namespace: str
    flow_id: str
    task_id: str
    kind: str
    state: str
    summary: str
    requested_by: str
    created_at: str
    due_at: str | None
    decided_at: str | None
    approvals: int
    required: int


class SignatureInfo(Out):
    fingerprint: str
    key_type: str


class Decision(Out):
    by: str
    verdict: str
    reason: str | None
    at: str
    origin: str
    automatic: bool
    inputs: dict[str, Any]
    signature: SignatureInfo | None = None


class RequestDetail(RequestSummary):
    context: dict[str, Any]
    form: list[dict[str, Any]]
    rules: dict[str, Any]
    result: Any = None
    decisions: list[Decision]
    signatures: Literal["required", "optional", "off"] | None = Field(
        default=None, description="Whether your decisions here must be signed")


class RequestPage(Out):
    items: list[RequestSummary]
    next_cursor: str | None


class Errors(Out):
    errors: dict[str, str] = Field(description="Input id -> message; empty when every value is valid")


class OutcomeOut(Out):
    id: str
    outcome: str = Field(description="decided, already_decided, not_eligible, self_approval, invalid_inputs, "
                                     "not_found, cancelled, error")
    message: str
    state: str | None
    by: list[str]
    errors: dict[str, str]
    execution_id: str | None
    signature: SignatureInfo | None = None


class BulkResult(Out):
    outcomes: list[OutcomeOut]


class AuditEvent(Out):
    seq: int
    at: str
    actor: str
    action: str
    namespace: str | None
    flow_id: str | None
    execution_id: str | None
    request_id: str | None
    data: Any
    hash: str
    prev_hash: str


class AuditPage(Out):
    items: list[AuditEvent]
    next_cursor: str | None


class VerifyResult(Out):
    ok: bool
    count: int
    head: str | None
    first_bad_seq: int | None
    problem: str | None
    head_seq: int | None
    signed: int | None = Field(default=None, description="Signed decisions whose signature verified")
    unsigned: int | None = Field(default=None, description="Decisions without a signature")
    signature_problems: list[str] | None = None
    checkpoints: int | None = Field(default=None, description="Engine-signed checkpoints that verified")
    last_checkpoint: dict[str, Any] | None = None


class AuditHead(Out):
    seq: int
    hash: str
    at: str | None
    checkpoint: dict[str, Any] | None = Field(default=None, description="The engine's newest signed checkpoint")


class KeyOut(Out):
    id: int
    user: str
    fingerprint: str
    key_type: str
    public_key: str
    comment: str | None
    added_at: str
    added_by: str
    proof: str
    revoked_at: str | None
    revoked_by: str | None
    valid: bool


class KeyPage(Out):
    items: list[KeyOut]


class Challenge(Out):
    nonce: str
    expires_at: str


class Material(Out):
    nonce: str
    expires_at: str
    signer: str
    items: list[dict[str, Any]]


class Evidence(Out):
    request_id: str
    namespace: str
    flow_id: str
    state: str
    context: str
    decisions: list[dict[str, Any]]


class FlowInfo(Out):
    namespace: str
    id: str
    description: str | None
    labels: dict[str, Any]
    inputs: list[dict[str, Any]]
    path: str | None
    sha256: str
    tasks: list[str]
    origin: Literal["api", "file"] = "file"


class FlowDetail(FlowInfo):
    source: str
    revision: int | None = None


class FlowPage(Out):
    items: list[FlowInfo]
    next_cursor: str | None
    problems: list[str] = Field(default_factory=list,
                                description="Flow files that do not load, file:line:col: message (admins only)")


class ExecutionSummary(Out):
    id: str
    namespace: str
    flow_id: str
    revision: int
    state: str
    inputs: dict[str, Any]
    labels: dict[str, Any]
    started_by: str
    created_at: str
    updated_at: str
    ended_at: str | None
    error: str | None
    original_id: str | None = None
    origin: dict[str, Any] | None = None


class FlowProblem(Out):
    line: int
    col: int
    message: str


class FlowProblems(Out):
    valid: bool
    problems: list[FlowProblem]


class FlowDeleted(Out):
    namespace: str
    id: str
    revision: int
    deleted: bool


class Revision(Out):
    revision: int
    sha256: str
    created_at: str
    origin: Literal["api", "file"]
    current: bool


class RevisionPage(Out):
    items: list[Revision]


class Stats(Out):
    since: str
    until: str
    namespace: str | None
    flows: list[dict[str, Any]]
    approvers: list[dict[str, Any]]
    days: list[dict[str, Any]]
    totals: dict[str, Any]


class TriggerOut(Out):
    namespace: str
    flow_id: str
    trigger_id: str
    type: str
    disabled: Literal["flow", "operator"] | None
    next_at: str | None
    last_at: str | None
    last_execution_id: str | None
    detail: dict[str, Any]


class TriggerPage(Out):
    items: list[TriggerOut]


class ExecutionDetail(ExecutionSummary):
    task_runs: list[dict[str, Any]]
    outputs: dict[str, Any]
    flow_outputs: dict[str, Any] | None = Field(
        default=None, description="the flow's `outputs`, rendered when the execution ended (null before, or "
                                  "when the flow declares none)")
    logs: list[dict[str, Any]]
    requests: list[RequestSummary]


class ExecutionPage(Out):
    items: list[ExecutionSummary]
    next_cursor: str | None


class KvResult(Out):
    namespace: str
    key: str


class Change(Out):
    seq: int
    action: str
    request_id: str | None
    execution_id: str | None
    actor: str


class ChangePage(Out):
    items: list[Change]
    last_seq: int = Field(description="Ask again with after=last_seq")
