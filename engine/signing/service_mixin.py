"""The signing part of the approval service: keys, signing material, evidence.

Mixed into :class:`engine.service.ApprovalService`; uses its ``db``, ``engine``, ``_check``
and ``_view_filter``. Permissions: anyone may manage their own keys; registering a key for
someone else, or revoking someone else's, needs the ``admin`` role on every namespace (and is
audited with the admin's name); public keys are not secret, so listing every key and the
allowed_signers file is open to anyone with a role somewhere.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from signoff.engine.errors import NotFound, Refused, UsageError


class SigningMixin:
    db: Any
    engine: Any
    _check: Callable[..., None]
    _view_filter: Callable[[Any], Callable[[str], bool]]
    _require_audit_access: Callable[[Any], None]

    # -- decisions ----------------------------------------------------------------------
    def _signature_check(self, signatures: Mapping[str, Any] | None) -> Any:
        from signoff.engine.signing.check import SignatureCheck, Signed
        from signoff.engine.signing.sshsig import SignatureError

        parsed: dict[str, Signed] = {}
        for request_id, value in (signatures or {}).items():
            try:
                parsed[str(request_id)] = Signed.from_value(value)
            except SignatureError as exc:
                raise UsageError(f"signature for request {request_id}: {exc}") from None
        return SignatureCheck(parsed)

    def signature_mode(self, actor: Any, namespace: str) -> str:
        from signoff.engine.signing.check import signature_mode

        return signature_mode(self.engine.policy, actor, namespace)

    def signing_material(self, actor: Any, request_ids: Iterable[str], verdict: str,
                         inputs: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """What a client needs to sign ``verdict`` on these requests (engine.signing.check.material)."""
        from signoff.engine.signing.check import material
        from signoff.engine.signing.statement import VERDICTS

        if verdict not in VERDICTS:
            raise UsageError(f"verdict must be one of {', '.join(VERDICTS)}, not `{verdict}`")
        return material(self.db, self.engine, actor, list(dict.fromkeys(request_ids)), verdict, dict(inputs or {}),
                        self._view_filter(actor))

    # -- keys -----------------------------------------------------------------------------
    def _is_admin(self, actor: Any) -> bool:
        return bool(self.engine.policy.allows(actor, "admin", "*"))

    def key_challenge(self, actor: Any) -> dict[str, str]:
        """A fresh single-use nonce for proving possession of a key being registered."""
        from signoff.engine.signing.keys import issue_nonce

        with self.db.write() as tx:
            return issue_nonce(tx, actor.name, "key", self.engine.clock.now())

    def _refuse(self, actor: Any, operation: str, target: str, message: str) -> Refused:
        """Audit a refusal (``policy.denied``) and return the error to raise."""
        from signoff.engine.audit import append_event

        with self.db.write() as tx:
            append_event(tx, at=self.engine.now(), actor=actor.name, action="policy.denied",
                         data={"operation": operation, "target": target, "reason": message})
        return Refused(message)

    def add_key(self, actor: Any, public_key: str, *, nonce: str | None = None, signature: str | None = None,
                user: str | None = None) -> dict[str, Any]:
        """Register ``public_key`` for the actor (with ``nonce`` and the key's ``signature`` over
        the registration statement: proof of possession) or, as an admin, for ``user`` (no
        proof needed; the row and the audit event say ``proof: admin``)."""
        from signoff.engine.clock import format_time
        from signoff.engine.signing import keys as registry
        from signoff.engine.signing.sshsig import SignatureError, parse_public_key

        key = parse_public_key(public_key)
        owner = registry.check_user_name(user) if user else actor.name
        now = self.engine.clock.now()
        if owner != actor.name or (user and signature is None):
            if not self._is_admin(actor):
                raise self._refuse(actor, "keys.add", f"key {key.fingerprint} for {owner}",
                                   f"{actor.name} may not register a key for {owner}: only an admin may (register "
                                   "your own key with `signoff keys add`, which proves you hold it)")
            return registry.add_key(self.db, actor=actor.name, owner=owner, key=key, now=now, proof="admin")
        if not nonce or not signature:
            raise UsageError("registering your own key needs proof of possession: sign the challenge from "
                             "`POST /api/v1/keys/challenge` with the key (`signoff keys add` does this through "
                             "your agent)")
        with self.db.write() as tx:
            problem = registry.nonce_problem(tx, nonce, actor.name, "key", format_time(now), consume=True)
        if problem is not None:
            raise self._refuse(actor, "keys.add", f"key {key.fingerprint}",
                               "proof of possession failed: " + problem.replace("statement's nonce", "challenge"))
        try:
            registry.verify_registration(user=actor.name, key=key, nonce=nonce, signature=signature)
        except SignatureError as exc:
            raise self._refuse(actor, "keys.add", f"key {key.fingerprint}", str(exc)) from None
        return registry.add_key(self.db, actor=actor.name, owner=owner, key=key, now=now, proof="possession")

    def list_keys(self, actor: Any, user: str | None = None, all_users: bool = False) -> list[dict[str, Any]]:
        """The actor's keys (default), ``user``'s, or everyone's (``all_users``), revoked ones included."""
        from signoff.engine.signing.keys import list_keys

        if all_users or (user and user != actor.name):
            self._require_audit_access(actor)
            return list_keys(self.db, None if all_users else user)
        return list_keys(self.db, actor.name)

    def revoke_key(self, actor: Any, fingerprint: str, user: str | None = None) -> dict[str, Any]:
        """Revoke a valid key (dated; the row stays): your own, or anyone's as an admin."""
        from signoff.engine.signing import keys as registry

        fingerprint = registry.check_fingerprint(fingerprint)
        admin = self._is_admin(actor)
        owner = user or (None if admin else actor.name)
        if owner != actor.name and not admin:
            raise self._refuse(actor, "keys.revoke", f"key {fingerprint} of {owner}",
                               f"{actor.name} may not revoke {owner}'s keys: only the owner or an admin may")
        try:
            return registry.revoke_key(self.db, actor=actor.name, fingerprint=fingerprint, owner=owner,
                                       now=self.engine.clock.now())
        except NotFound:
            if not admin and any(k["fingerprint"] == fingerprint and k["valid"] for k in registry.list_keys(self.db)):
                message = f"key {fingerprint} is not yours: only its owner or an admin may revoke it"
                raise self._refuse(actor, "keys.revoke", f"key {fingerprint}", message) from None
            raise

    def allowed_signers(self, actor: Any, user: str | None = None) -> str:
        """The allowed_signers file (OpenSSH) for every registered key, with validity dates."""
        from signoff.engine.signing.keys import allowed_signers, list_keys

        self._require_audit_access(actor)
        return allowed_signers(list_keys(self.db, user))

    # -- evidence for auditors --------------------------------------------------------------
    def audit_evidence(self, actor: Any, request_id: str) -> dict[str, Any]:
        """Everything an auditor needs to check the decisions on one request with OpenSSH alone:
        per decision its statement, signature, allowed_signers line (the key valid when it was
        made) and the frozen context it covers."""
        from signoff.engine import jsonutil
        from signoff.engine.signing import keys as registry
        from signoff.engine.signing.audit_check import DECISION_ACTIONS
        from signoff.engine.signing.statement import context_sha256

        self._require_audit_access(actor)
        row = self.db.query_one("SELECT * FROM requests WHERE id=?", (request_id,))
        if row is None:
            raise NotFound(f"no approval request `{request_id}`")
        self._check(actor, "view", row["namespace"], f"request {request_id}")
        actions = list(DECISION_ACTIONS)
        events = self.db.query(f"SELECT seq, at, actor, action, data FROM audit WHERE request_id=? AND action IN"
                               f" ({','.join('?' * len(actions))}) ORDER BY seq", [request_id, *actions])
        decisions = []
        for event in events:
            data = jsonutil.loads(event["data"], {})
            block = data.get("signature") if isinstance(data.get("signature"), dict) else None
            item: dict[str, Any] = {"seq": event["seq"], "at": event["at"], "by": event["actor"],
                                    "verdict": DECISION_ACTIONS[event["action"]], "signed": block is not None}
            if block is not None:
                key = self.db.query_one(f"SELECT {registry.KEY_COLUMNS} FROM signing_keys WHERE owner=? AND"
                                        " fingerprint=? AND added_at<=? ORDER BY id DESC LIMIT 1",
                                        (event["actor"], block.get("fingerprint"), event["at"]))
                context = data.get("context", {})
                statement, signature = block.get("statement"), block.get("signature")
                if block.get("batch_sha256"):
                    batch = self.db.query_one("SELECT statement, signature FROM signed_batches WHERE sha256=?",
                                              (block["batch_sha256"],))
                    statement, signature = (batch["statement"], batch["signature"]) if batch else (None, None)
                    item.update({"batch": True, "batch_items": block.get("batch_items")})
                if statement is None:
                    item["signed"] = False
                    item["missing"] = "the signed bulk statement is missing from the database"
                    decisions.append(item)
                    continue
                item.update({"statement": statement, "signature": signature,
                             "fingerprint": block.get("fingerprint"), "key_type": block.get("key_type"),
                             "namespace": block.get("namespace"),
                             "allowed_signers": registry.allowed_signers_line(registry.key_row(key)) if key else None,
                             "verify_time": registry.ssh_time(event["at"]),
                             "context": jsonutil.dumps(context), "context_sha256": context_sha256(context)})
            decisions.append(item)
        return {"request_id": request_id, "namespace": row["namespace"], "flow_id": row["flow_id"],
                "state": row["state"], "context": jsonutil.dumps(jsonutil.loads(row["context"], {})),
                "decisions": decisions}
