"""The canonical statement a person signs for a decision.

The statement is JSON with sorted keys and no spaces plus a final newline, so it is one
exact byte string for given fields (``python3 -m json.tool`` shows it readably); its fields::

    {
      "context_sha256": "…",           SHA-256 of the frozen context's canonical JSON (what was shown)
      "flow": {"id": "…", "namespace": "…", "revision": 3, "sha256": "…"},
      "inputs": {"amount": 120, "pin": {"salt": "…", "secret_sha256": "…"}},
      "nonce": "…",                    issued by the server for this signer, short-lived
      "reason": "…" or null,
      "request_id": "…",
      "signed_at": "2026-…Z",
      "signer": "alice",
      "type": "signoff.decision/v1",
      "verdict": "approve" | "deny" | "cancel"
    }

A SECRET form value appears only as SHA-256 over ``salt + ":" + value`` with a random salt
chosen by the signer, so the statement (and the evidence bundle) never reveals it while the
server can still check it against the value submitted.

Signatures use the sshsig namespace :data:`DECISION_NAMESPACE`.
"""
from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Mapping, Sequence
from typing import Any

from signoff.engine import jsonutil

STATEMENT_TYPE = "signoff.decision/v1"
#: one signature over many decisions (a bulk): the shared fields once, then each request's own
BATCH_TYPE = "signoff.decisions/v1"
BATCH_FIELDS = ("items", "nonce", "reason", "signed_at", "signer", "type", "verdict")
ITEM_FIELDS = ("context_sha256", "flow", "inputs", "request_id")
DECISION_NAMESPACE = "signoff-decision"
KEY_NAMESPACE = "signoff-key-registration"
CHECKPOINT_NAMESPACE = "signoff-checkpoint"
FIELDS = ("context_sha256", "flow", "inputs", "nonce", "reason", "request_id", "signed_at", "signer", "type",
          "verdict")
VERDICTS = ("approve", "deny", "cancel")


class StatementError(ValueError):
    """A statement that is not the canonical one for its decision (the message says what differs)."""


def canonical_text(fields: Mapping[str, Any]) -> str:
    """Sorted keys, no spaces, UTF-8, one final newline (compact: the C encoder writes a bulk's
    statement of 500 items in ~2 ms; pretty-printed it takes 50x longer)."""
    return json.dumps(dict(fields), sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n"


def context_sha256(context: Any) -> str:
    """The hash of a frozen context, from its parsed value (as the client and the audit hold it)."""
    return hashlib.sha256(jsonutil.dumps(context).encode("utf-8")).hexdigest()


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def secret_hash(value: Any, salt: str) -> str:
    return hashlib.sha256(f"{salt}:{value}".encode()).hexdigest()


def hide_secrets(values: Mapping[str, Any], secret_ids: set[str] | frozenset[str]) -> dict[str, Any]:
    """Form values as a statement holds them: each SECRET as a salted hash (a fresh salt each)."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key in secret_ids and value is not None:
            salt = secrets.token_hex(16)
            out[key] = {"salt": salt, "secret_sha256": secret_hash(value, salt)}
        else:
            out[key] = value
    return out


def build(*, request_id: str, verdict: str, inputs: Mapping[str, Any], reason: str | None, context_hash: str,
          flow: Mapping[str, Any], signer: str, nonce: str, signed_at: str) -> str:
    return canonical_text({
        "context_sha256": context_hash, "flow": dict(flow), "inputs": dict(inputs), "nonce": nonce,
        "reason": reason, "request_id": request_id, "signed_at": signed_at, "signer": signer,
        "type": STATEMENT_TYPE, "verdict": verdict})


def build_batch(*, items: Sequence[Mapping[str, Any]], verdict: str, reason: str | None, signer: str, nonce: str,
                signed_at: str) -> str:
    """One statement for many decisions with the same verdict, reason and form values; each
    item has its own request id, context hash, flow revision and (validated) form values."""
    return canonical_text({
        "items": [{k: dict(i[k]) if isinstance(i[k], Mapping) else i[k] for k in ITEM_FIELDS} for i in items],
        "nonce": nonce, "reason": reason, "signed_at": signed_at, "signer": signer, "type": BATCH_TYPE,
        "verdict": verdict})


def is_batch(text: str) -> bool:
    return text.startswith('{"items":[')


KEY_REGISTRATION_TYPE = "signoff.key-registration/v1"


def registration_statement(user: str, public_key: Any, nonce: str) -> str:
    """What a key signs to prove possession when it is registered (``public_key``: an
    engine.signing.sshsig.PublicKey)."""
    return canonical_text({"nonce": nonce, "public_key": public_key.openssh, "type": KEY_REGISTRATION_TYPE,
                           "user": user})


def parse(text: str) -> dict[str, Any]:
    """The fields of a statement (one decision, or a batch); StatementError unless it is
    canonical and complete."""
    try:
        fields = json.loads(text)
    except (ValueError, TypeError):
        raise StatementError("the signed statement is not JSON") from None
    if not isinstance(fields, dict):
        raise StatementError("the signed statement must be a JSON object")
    batch = fields.get("type") == BATCH_TYPE
    want = BATCH_FIELDS if batch else FIELDS
    if sorted(fields) != sorted(want):
        raise StatementError(f"the signed statement must have exactly the fields {', '.join(want)}")
    if fields["type"] not in (STATEMENT_TYPE, BATCH_TYPE):
        raise StatementError(f"the signed statement's type is `{fields['type']}`, not `{STATEMENT_TYPE}`")
    if canonical_text(fields) != text:
        raise StatementError("the signed statement is not in canonical form (sorted keys, no spaces, "
                             "one final newline)")
    for item in fields["items"] if batch else [fields]:
        if not isinstance(item, dict) or (batch and sorted(item) != sorted(ITEM_FIELDS)):
            raise StatementError(f"each item of a signed batch must have exactly the fields {', '.join(ITEM_FIELDS)}")
        if not isinstance(item["inputs"], dict) or not isinstance(item["flow"], dict):
            raise StatementError("the signed statement's inputs and flow must be objects")
    return fields


def index(fields: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """request id -> the fields that concern it (a single statement's own, or a batch's shared
    fields merged with that request's item), each shaped like a single statement."""
    if fields.get("type") != BATCH_TYPE:
        return {str(fields["request_id"]): dict(fields)}
    shared = {k: fields[k] for k in ("nonce", "reason", "signed_at", "signer", "verdict")}
    return {str(item["request_id"]): {**shared, **item, "type": STATEMENT_TYPE} for item in fields["items"]}


def differences(fields: Mapping[str, Any], expected: Mapping[str, Any], secret_ids: set[str] | frozenset[str],
                submitted_inputs: Mapping[str, Any] | None) -> list[str]:
    """What a parsed statement says that differs from ``expected`` (same keys as the statement
    but ``inputs`` with clear values for secrets when ``submitted_inputs`` is given, else with
    secrets masked). Empty when the statement is what was decided."""
    problems = []
    for key in ("request_id", "verdict", "signer", "reason", "context_sha256", "flow"):
        if fields.get(key) != expected.get(key):
            problems.append(f"{key} is {_show(fields.get(key))} in the statement but {_show(expected.get(key))} "
                            "in the decision")
    signed_inputs = fields.get("inputs") or {}
    want = dict(expected.get("inputs") or {})
    if sorted(signed_inputs) != sorted(want):
        problems.append(f"the statement's form fields ({', '.join(sorted(signed_inputs)) or 'none'}) are not the "
                        f"decision's ({', '.join(sorted(want)) or 'none'})")
        return problems
    for key, value in want.items():
        signed = signed_inputs[key]
        if key in secret_ids and submitted_inputs is None and signed is None:
            continue  # masked in the audit: an empty SECRET was signed as null
        if key in secret_ids and value is not None:
            if not (isinstance(signed, dict) and set(signed) == {"salt", "secret_sha256"}):
                problems.append(f"form field {key} is a SECRET and must be signed as a salted hash")
            elif submitted_inputs is not None and secret_hash(value, str(signed["salt"])) != signed["secret_sha256"]:
                problems.append(f"form field {key}: the signed hash does not match the value submitted")
        elif jsonutil.dumps(signed) != jsonutil.dumps(value):
            problems.append(f"form field {key} is {_show(signed)} in the statement but {_show(value)} in the "
                            "decision")
    return problems


def _show(value: Any) -> str:
    text = jsonutil.dumps(value)
    return f"`{text[:60]}…`" if len(text) > 60 else f"`{text}`"
