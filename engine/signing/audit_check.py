"""Checking every signed decision in the audit trail (part of ``signoff audit verify``).

Each signed event carries the statement its signer signed. Verification rebuilds what the
statement must say from the event itself (request, signer, verdict, form values, reason, the
hash of the context stored with the event) and checks the signature with the key that was
registered for the signer when the event was written. The keys come from the ``key.added`` /
``key.revoked`` events before it in the chain, not from the keys table, so a key slipped into
the table does not make a forged signature pass. A change to a signed decision is therefore
found even when the whole hash chain was recomputed after it: the first event whose signature
does not match is named.

The decisions table is checked the same way (the stored row must be what was signed).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from signoff.engine.clock import parse_time
from signoff.engine.signing import sshsig
from signoff.engine.signing import statement as st

DECISION_ACTIONS = {"request.approved": "approve", "request.denied": "deny", "request.cancelled": "cancel"}
KEY_ACTIONS = ("key.added", "key.revoked")
#: how far a statement's signed_at may be from the time its event was written
SKEW_SECONDS = 900


@dataclass
class SignatureReport:
    problem: str | None = None
    first_bad_seq: int | None = None
    signed: int = 0
    unsigned: int = 0
    problems: list[str] = field(default_factory=list)


@dataclass
class _KeyPeriod:
    blob: bytes
    added_at: str
    revoked_at: str | None = None


class _Batches:
    """Batch statements (signed_batches), read, parsed and signature-checked once each."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.cache: dict[str, tuple[str | None, dict[str, dict[str, Any]] | None, str, str]] = {}

    def get(self, sha: str) -> tuple[str | None, dict[str, dict[str, Any]] | None, str, str]:
        """(problem, request id -> fields, statement, signature)."""
        found = self.cache.get(sha)
        if found is None:
            row = self.conn.execute("SELECT statement, signature FROM signed_batches WHERE sha256=?",
                                    (sha,)).fetchone()
            if row is None:
                found = (f"the signed bulk statement {sha[:12]}… it names is missing", None, "", "")
            elif st.text_sha256(row[0]) != sha:
                found = (f"the signed bulk statement {sha[:12]}… was changed", None, "", "")
            else:
                try:
                    found = (None, st.index(st.parse(row[0])), row[0], row[1])
                except st.StatementError as exc:
                    found = (f"the signed bulk statement is unreadable ({exc})", None, "", "")
            self.cache[sha] = found
        return found


def verify_signatures(conn: Any) -> SignatureReport:
    report = SignatureReport()
    batches = _Batches(conn)
    verified: dict[tuple[str, str], str | None] = {}
    keys: dict[tuple[str, str], list[_KeyPeriod]] = {}
    actions = (*DECISION_ACTIONS, *KEY_ACTIONS)
    marks = ",".join("?" * len(actions))
    cur = conn.cursor()
    cur.row_factory = None
    cur.execute(f"SELECT seq, at, actor, action, request_id, data FROM audit WHERE action IN ({marks}) ORDER BY seq",
                actions)
    for seq, at, actor, action, request_id, data_text in cur:
        if action in KEY_ACTIONS:
            _note_key(keys, action, at, data_text)
            continue
        if '"signature":' not in data_text:
            report.unsigned += 1
            continue
        problem = _check_event(keys, at, actor, action, request_id, data_text, batches, verified)
        if problem is None:
            report.signed += 1
            continue
        message = f"event {seq} ({action} by {actor} at {at}): its signature does not match its content: {problem}"
        report.problems.append(message)
        if report.problem is None:
            report.problem, report.first_bad_seq = message, seq
    cur.close()
    if report.problem is None:
        row_problem = _check_decision_rows(conn, batches)
        if row_problem:
            report.problem = row_problem
            report.problems.append(row_problem)
    return report


def _note_key(keys: dict[tuple[str, str], list[_KeyPeriod]], action: str, at: str, data_text: str) -> None:
    try:
        data = json.loads(data_text)
        user, fingerprint = str(data["user"]), str(data["fingerprint"])
        if action == "key.added":
            key = sshsig.parse_public_key(str(data["public_key"]))
            if key.fingerprint == fingerprint:
                keys.setdefault((user, fingerprint), []).append(_KeyPeriod(key.blob, at))
        else:
            for period in keys.get((user, fingerprint), []):
                if period.revoked_at is None:
                    period.revoked_at = at
    except (ValueError, KeyError, TypeError, sshsig.SignatureError):
        return  # a malformed key event registers nothing; signatures by that key then fail


def _check_event(keys: dict[tuple[str, str], list[_KeyPeriod]], at: str, actor: str, action: str,
                 request_id: str | None, data_text: str, batches: _Batches,
                 verified: dict[tuple[str, str], str | None]) -> str | None:
    try:
        data = json.loads(data_text)
        block = data["signature"]
        if block.get("batch_sha256"):
            problem, by_request, text, armored = batches.get(str(block["batch_sha256"]))
            if problem is not None or by_request is None:
                return problem
            found = by_request.get(str(request_id))
            if found is None:
                return f"the signed bulk statement does not name request {request_id}"
            fields = found
        else:
            text, armored = str(block["statement"]), str(block["signature"])
            fields = st.parse(text)
        sig = sshsig.parse_signature(armored)
    except (ValueError, KeyError, TypeError, st.StatementError, sshsig.SignatureError) as exc:
        return f"the signature record is unreadable ({exc})"
    verdict = DECISION_ACTIONS[action]
    if action != "request.cancelled" and data.get("verdict") != verdict:
        return f"the event's action is {action} but its verdict is {data.get('verdict')!r}"
    inputs = (data.get("inputs") or {}) if verdict == "approve" else {}
    secret_ids = {k for k, v in inputs.items() if v == "***"}
    expected = {"request_id": request_id, "verdict": verdict, "signer": actor, "reason": data.get("reason"),
                "context_sha256": st.context_sha256(data.get("context", {})), "flow": fields.get("flow"),
                "inputs": inputs}
    problems = st.differences(fields, expected, secret_ids, None)
    if problems:
        return "; ".join(problems)
    try:
        skew = abs((parse_time(str(fields["signed_at"])) - parse_time(at)).total_seconds())
    except (ValueError, TypeError):
        return "the statement's signed_at is not a time"
    if skew > SKEW_SECONDS:
        return f"the statement was signed at {fields['signed_at']}, not when the event was written ({at})"
    fingerprint = sig.public_key.fingerprint
    if block.get("fingerprint") != fingerprint:
        return f"the event names key {block.get('fingerprint')} but the signature was made by {fingerprint}"
    periods = keys.get((actor, fingerprint), [])
    if not any(p.blob == sig.public_key.blob and p.added_at <= at and (p.revoked_at is None or p.revoked_at > at)
               for p in periods):
        return f"key {fingerprint} was not a registered, unrevoked key of {actor} at {at}"
    once = (text, armored)
    if once not in verified:
        try:
            sig.verify(text.encode("utf-8"), st.DECISION_NAMESPACE)
            verified[once] = None
        except sshsig.SignatureError as exc:
            verified[once] = str(exc)
    return verified[once]


def _check_decision_rows(conn: Any, batches: _Batches) -> str | None:
    """The first stored decision whose row is not what its signer signed, or None."""
    cur = conn.cursor()
    cur.row_factory = None
    cur.execute("SELECT request_id, actor, verdict, inputs, reason, statement, batch_sha256 FROM decisions"
                " WHERE statement IS NOT NULL OR batch_sha256 IS NOT NULL ORDER BY id")
    try:
        for request_id, actor, verdict, inputs_text, reason, text, batch_sha in cur:
            try:
                if batch_sha:
                    problem, by_request, _, _ = batches.get(batch_sha)
                    if problem is not None or by_request is None or request_id not in by_request:
                        return (f"the decision of {actor} on request {request_id}: "
                                f"{problem or 'its signed bulk statement does not name it'}")
                    fields = by_request[request_id]
                else:
                    fields = st.parse(text)
                inputs = json.loads(inputs_text or "{}")
            except (ValueError, st.StatementError) as exc:
                return f"the decision of {actor} on request {request_id} has an unreadable statement ({exc})"
            signed_inputs = fields.get("inputs") or {}
            secret_ids = {k for k, v in signed_inputs.items()
                          if isinstance(v, dict) and set(v) == {"salt", "secret_sha256"}}
            expected = {"request_id": request_id, "verdict": verdict, "signer": actor, "reason": reason,
                        "context_sha256": fields.get("context_sha256"), "flow": fields.get("flow"),
                        "inputs": inputs}
            problems = st.differences(fields, expected, secret_ids, inputs)
            if problems:
                return (f"the stored decision of {actor} on request {request_id} is not what was signed: "
                        + "; ".join(problems))
    finally:
        cur.close()
    return None
