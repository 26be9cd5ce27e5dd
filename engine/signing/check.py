"""Checking a decision's signature before it is committed, and what a client needs to sign.

The server never signs for a person: it hands out the material (:func:`material`: a nonce,
each request's context hash, flow revision hash and the form values as the engine validates
them), the client builds and signs the canonical statement where the person is, and
:class:`SignatureCheck` verifies it inside the decision's transaction, against the signer's
key registered and valid now. A refusal says how to fix it.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from signoff.engine import jsonutil
from signoff.engine.signing import keys as key_registry
from signoff.engine.signing import sshsig
from signoff.engine.signing import statement as st

MODES = ("required", "optional", "off")
#: how far a statement's signed_at may be from the server's clock
CLOCK_SKEW_SECONDS = 600

#: outcomes (engine.approvals.outcome) of a refused signature
SIGNATURE_REQUIRED = "signature_required"
BAD_SIGNATURE = "bad_signature"

HOW_TO_SIGN = ("sign it with a registered SSH key: start an agent (`eval $(ssh-agent)`), add your key "
               "(`ssh-add`), register it once (`signoff keys add ~/.ssh/id_ed25519.pub`), then decide again "
               "(or pass --sign-key FILE)")


@dataclass(frozen=True)
class Signed:
    """What a client sends for one item: the statement text and its armoured signature."""

    statement: str
    signature: str

    @classmethod
    def from_value(cls, value: Any) -> Signed:
        if isinstance(value, Signed):
            return value
        if isinstance(value, Mapping) and isinstance(value.get("statement"), str) and \
                isinstance(value.get("signature"), str):
            return cls(value["statement"], value["signature"])
        raise sshsig.SignatureError("a signature must be {statement, signature} (both text)")


def signature_mode(policy: Any, actor: Any, namespace: str) -> str:
    """required | optional | off for ``actor`` deciding in ``namespace`` (policies without the
    setting: optional)."""
    ask = getattr(policy, "signatures_for", None)
    return str(ask(actor, namespace)) if callable(ask) else "optional"


def flow_of(conn: Any, execution_id: str) -> dict[str, Any]:
    """The flow revision a request belongs to: {namespace, id, revision, sha256}."""
    row = conn.execute("SELECT e.namespace, e.flow_id, e.revision, fr.sha256 FROM executions e LEFT JOIN"
                       " flow_revisions fr ON fr.namespace=e.namespace AND fr.flow_id=e.flow_id AND"
                       " fr.revision=e.revision WHERE e.id=?", (execution_id,)).fetchone()
    if row is None:
        return {"namespace": None, "id": None, "revision": None, "sha256": None}
    return {"namespace": row[0], "id": row[1], "revision": row[2], "sha256": row[3]}


def context_hash(row: Any) -> str:
    """The hash of a request's frozen context: of the canonical JSON text the engine stored
    (engine.approvals.requests writes it with jsonutil.dumps), which is also what canonical
    JSON of the context in the decision's audit event gives."""
    return st.text_sha256(str(row["context"]))


def secret_ids(form: list[dict[str, Any]]) -> frozenset[str]:
    return frozenset(str(f.get("id")) for f in form if isinstance(f, dict) and f.get("type") == "SECRET")


@dataclass
class _Parsed:
    """One statement text, parsed once per call (a batch serves hundreds of items)."""

    by_request: dict[str, dict[str, Any]] | None
    sig: sshsig.SshSig | None
    problem: str | None
    sha256: str
    batch: bool
    verified: bool | None = None  # the signature checked (once) against its key


@dataclass
class SignatureCheck:
    """Per decision call: the signatures sent, and caches (one bulk call checks thousands)."""

    signatures: Mapping[str, Signed]
    _keys: dict[tuple[str, str], Any] = field(default_factory=dict)
    _nonces: dict[tuple[str, str], str | None] = field(default_factory=dict)
    _parsed: dict[str, _Parsed] = field(default_factory=dict)
    #: batch statements stored in the open transaction (cleared when an item is rolled back)
    stored: set[str] = field(default_factory=set)

    def check(self, tx: Any, *, now: str, actor: str, mode: str, row: Any, verdict: str, reason: str | None,
              values: Mapping[str, Any], form: list[dict[str, Any]] | None = None) -> tuple[str | None, str,
                                                                                            dict[str, Any] | None]:
        """(refusal outcome or None, message, the signature block to record or None). A batch
        statement is stored (signed_batches) in ``tx`` the first time an item of it is accepted.
        ``form``: the request's parsed form, when the caller has it (read from ``row`` only for
        an item that carries a signature: a bulk call without signatures parses nothing)."""
        request_id = row["id"]
        signed = self.signatures.get(request_id)
        if signed is None:
            if mode == "required":
                return SIGNATURE_REQUIRED, (f"request {request_id} needs a signed decision (signatures: required in "
                                            f"namespace {row['namespace']}): {HOW_TO_SIGN}"), None
            return None, "", None
        if mode == "off":
            return BAD_SIGNATURE, (f"signatures are off in namespace {row['namespace']}; decide request "
                                   f"{request_id} without signing"), None
        problem, block = self._verify(tx, now=now, actor=actor, row=row, verdict=verdict, reason=reason,
                                      values=values, form=form, signed=signed)
        if problem is not None:
            return BAD_SIGNATURE, f"the signature on request {request_id} was refused: {problem}", None
        if block is not None and block.get("batch_sha256") and block["batch_sha256"] not in self.stored:
            tx.execute("INSERT INTO signed_batches(sha256, statement, signature, fingerprint, signer, created_at)"
                       " VALUES (?,?,?,?,?,?) ON CONFLICT (sha256) DO NOTHING",
                       (block["batch_sha256"], signed.statement, signed.signature, block["fingerprint"], actor, now))
            self.stored.add(block["batch_sha256"])
        return None, "", block

    def _parse(self, signed: Signed) -> _Parsed:
        cached = self._parsed.get(signed.statement)
        if cached is None:
            sha = st.text_sha256(signed.statement)
            try:
                fields = st.parse(signed.statement)
                cached = _Parsed(st.index(fields), sshsig.parse_signature(signed.signature), None, sha,
                                 fields["type"] == st.BATCH_TYPE)
            except (st.StatementError, sshsig.SignatureError) as exc:
                cached = _Parsed(None, None, str(exc), sha, False)
            self._parsed[signed.statement] = cached
        return cached

    def _verify(self, tx: Any, *, now: str, actor: str, row: Any, verdict: str, reason: str | None,
                values: Mapping[str, Any], form: list[dict[str, Any]] | None,
                signed: Signed) -> tuple[str | None, dict[str, Any] | None]:
        parsed = self._parse(signed)
        if parsed.problem is not None or parsed.by_request is None or parsed.sig is None:
            return parsed.problem, None
        fields = parsed.by_request.get(row["id"])
        if fields is None:
            return f"the signed statement does not name request {row['id']}", None
        sig = parsed.sig
        expected = {"request_id": row["id"], "verdict": verdict, "signer": actor, "reason": reason,
                    "context_sha256": context_hash(row), "flow": flow_of(tx, row["execution_id"]),
                    "inputs": dict(values)}
        if form is None:
            form = jsonutil.loads(row["form"], [])
        problems = st.differences(fields, expected, secret_ids(form), values)
        if problems:
            return "; ".join(problems), None
        nonce = str(fields["nonce"])
        cached = self._nonces.get((nonce, actor), "?")
        if cached == "?":
            cached = self._nonces[(nonce, actor)] = key_registry.nonce_problem(tx, nonce, actor, "decide", now,
                                                                              consume=False)
        if cached is not None:
            return cached, None
        skew = _seconds_between(str(fields["signed_at"]), now)
        if skew is None or abs(skew) > CLOCK_SKEW_SECONDS:
            return (f"the statement's signed_at ({fields['signed_at']}) is not within {CLOCK_SKEW_SECONDS // 60} "
                    "minutes of the server's clock"), None
        fingerprint = sig.public_key.fingerprint
        key = self._keys.get((actor, fingerprint), "?")
        if key == "?":
            key = self._keys[(actor, fingerprint)] = key_registry.key_valid_at(tx, actor, fingerprint, now)
        if key is None:
            return (f"key {fingerprint} is not a valid registered key of {actor} (register it with `signoff keys "
                    "add`, or it was revoked)"), None
        if parsed.verified is None:
            try:
                sig.verify(signed.statement.encode("utf-8"), st.DECISION_NAMESPACE)
                parsed.verified = True
            except sshsig.SignatureError as exc:
                parsed.verified = False
                parsed.problem = str(exc)
        if not parsed.verified:
            return parsed.problem, None
        block: dict[str, Any] = {"fingerprint": fingerprint, "key_type": sig.public_key.key_type,
                                 "namespace": st.DECISION_NAMESPACE}
        if parsed.batch:
            block.update({"batch_sha256": parsed.sha256, "batch_items": len(parsed.by_request)})
        else:
            block.update({"statement": signed.statement, "signature": signed.signature})
        return None, block


def _seconds_between(text: str, now: str) -> float | None:
    from signoff.engine.clock import parse_time

    try:
        return (parse_time(text) - parse_time(now)).total_seconds()
    except (ValueError, TypeError):
        return None


def material(db: Any, engine: Any, actor: Any, request_ids: list[str], verdict: str,
             inputs: Mapping[str, Any], visible: Any) -> dict[str, Any]:
    """What the client needs to sign ``verdict`` on each request: a nonce, and per request the
    signature mode, context hash, flow revision, and the form values as the engine validates
    them (with ``secret_fields`` naming the SECRET ones, to be hashed by the signer)."""
    from signoff.engine.approvals.decide import validate_form

    now = engine.clock.now()
    with db.write() as tx:
        issued = key_registry.issue_nonce(tx, actor.name, "decide", now)
    items: list[dict[str, Any]] = []
    checked: dict[str, tuple[dict[str, Any], dict[str, str]]] = {}
    conn = db.connection()
    for start in range(0, len(request_ids), 500):
        chunk = request_ids[start:start + 500]
        marks = ",".join("?" * len(chunk))
        rows = {r["id"]: r for r in db.query(f"SELECT * FROM requests WHERE id IN ({marks})", chunk)}
        for request_id in chunk:
            row = rows.get(request_id)
            if row is None or not visible(row["namespace"]):
                items.append({"id": request_id, "found": False})
                continue
            form = jsonutil.loads(row["form"], [])
            values: dict[str, Any] = {}
            errors: dict[str, str] = {}
            if verdict == "approve":
                text = row["form"] or "[]"
                reusable = "{{" not in text and "{%" not in text and '"dependsOn":' not in text.replace(
                    '"dependsOn":null', "")
                if reusable and text in checked:
                    values, errors = checked[text]
                else:
                    context = jsonutil.loads(row["context"], {})
                    result = validate_form(row, inputs, context=context, form=form)
                    values, errors = dict(result.values), dict(result.errors)
                    if reusable:
                        checked[text] = (values, errors)
            items.append({"id": request_id, "found": True, "state": row["state"], "namespace": row["namespace"],
                          "mode": signature_mode(engine.policy, actor, row["namespace"]),
                          "context_sha256": context_hash(row),
                          "flow": flow_of(conn, row["execution_id"]),
                          "inputs": values, "secret_fields": sorted(secret_ids(form) & set(values)),
                          "errors": errors})
    return {"nonce": issued["nonce"], "expires_at": issued["expires_at"], "signer": actor.name, "items": items}
