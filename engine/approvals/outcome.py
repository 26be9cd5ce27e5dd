"""The per-item result of a decision call (single and bulk use the same shape)."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

APPROVE = "approve"
DENY = "deny"

DECIDED = "decided"
ALREADY_DECIDED = "already_decided"
NOT_ELIGIBLE = "not_eligible"
SELF_APPROVAL = "self_approval"
INVALID_INPUTS = "invalid_inputs"
NOT_FOUND = "not_found"
CANCELLED = "cancelled"
SKIPPED = "skipped"
#: signed decisions (engine.signing): the policy requires a signature and none was sent
SIGNATURE_REQUIRED = "signature_required"
#: a signature was sent but refused (wrong key, revoked key, statement not matching the decision)
BAD_SIGNATURE = "bad_signature"

#: outcomes that mean the call did what was asked
SUCCESSFUL = {DECIDED, CANCELLED}


# -- the commentRequired rule (here, not in decide.py, so the console checks it as it types
# without importing the decision code)

def comment_mode(rules: Any) -> str:
    """A request's ``commentRequired``: NEVER, ALWAYS, ON_DENY or ON_APPROVE."""
    return str((rules or {}).get("commentRequired") or "NEVER").upper()


def comment_required(mode: str | None, verdict: str | None) -> bool:
    """Must a decision with ``verdict`` (None: not chosen yet) give a reason?"""
    mode = (mode or "NEVER").upper()
    return mode == "ALWAYS" or (mode == "ON_DENY" and verdict == DENY) or (mode == "ON_APPROVE" and verdict == APPROVE)


def comment_message(mode: str | None, verdict: str) -> str:
    return f"A comment is required to {verdict} this request (commentRequired: {(mode or 'NEVER').upper()})"


@dataclass
class Outcome:
    id: str
    outcome: str
    message: str
    #: request state after the call (PENDING while a quorum is incomplete)
    state: str | None = None
    #: for already_decided: who decided it
    by: list[str] = field(default_factory=list)
    #: for invalid_inputs: input id -> message
    errors: dict[str, str] = field(default_factory=dict)
    execution_id: str | None = None
    #: a signed decision's key: {fingerprint, key_type}; None when unsigned
    signature: dict[str, str] | None = None

    @property
    def ok(self) -> bool:
        return self.outcome in SUCCESSFUL

    def to_dict(self) -> dict[str, Any]:
        """As ``dataclasses.asdict`` (copies of the list and dicts), field by field: a bulk answer
        holds 10,000 of these and ``asdict``'s generic deep copy took ~13 us each."""
        return {"id": self.id, "outcome": self.outcome, "message": self.message, "state": self.state,
                "by": list(self.by), "errors": dict(self.errors), "execution_id": self.execution_id,
                "signature": dict(self.signature) if self.signature is not None else None}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Outcome:
        return cls(**{k: d[k] for k in ("id", "outcome", "message", "state", "by", "errors", "execution_id",
                                          "signature") if k in d})


def not_attempted(request_ids: Iterable[str], why: str = "the bulk action was cancelled") -> list[Outcome]:
    """The outcomes of the ids a bulk call stopped before (a progress callback said stop)."""
    return [Outcome(request_id, SKIPPED, f"not decided: {why}") for request_id in request_ids]
