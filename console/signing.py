"""Signing decisions where the person is: in the console's or the CLI's own process.

The server hands out the material (a nonce, each request's context hash, flow revision and
the form values as the engine validates them); this module builds each canonical statement
(engine.signing.statement), checks it says what the person asked for, and signs it with the
person's key: through their SSH agent (``SSH_AUTH_SOCK``, forwarded agents included) using a
key registered with signoff, or with ``--sign-key FILE`` (a private key file, or a public key
whose private half is in the agent). The server verifies before it commits.

Key choice (decided): the first key in the agent that is registered and valid for you; with
``--sign-key`` exactly that key. No usable key: decisions go unsigned, and where the policy
requires signatures the server refuses them with a message saying how to fix it.
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from signoff.engine.clock import format_time
from signoff.engine.errors import SignoffError, UsageError
from signoff.engine.signing import sshsig
from signoff.engine.signing import statement as st


class SigningBackend(Protocol):
    identity: str

    def list_keys(self, user: str | None = None, all_users: bool = False) -> list[dict[str, Any]]: ...

    def signing_material(self, request_ids: Sequence[str], verdict: str,
                         inputs: Mapping[str, Any] | None = None) -> dict[str, Any]: ...


class KeySigner(Protocol):
    key: sshsig.PublicKey

    def sign_many(self, messages: Sequence[bytes], namespace: str) -> list[str]: ...


@dataclass
class AgentKeySigner:
    """A key held by the SSH agent."""

    agent_path: str | None
    key: sshsig.PublicKey

    def sign_many(self, messages: Sequence[bytes], namespace: str) -> list[str]:
        from signoff.console.sshagent import Agent

        datas = [sshsig.signed_data(m, namespace) for m in messages]
        with Agent(self.agent_path) as agent:
            blobs = agent.sign_many(self.key, datas)
        return [sshsig.armor(sshsig.build_blob(self.key.blob, namespace, b)) for b in blobs]


@dataclass
class FileKeySigner:
    """A private key file read into this process (asked for its passphrase when it has one)."""

    private_key: Any
    key: sshsig.PublicKey

    def sign_many(self, messages: Sequence[bytes], namespace: str) -> list[str]:
        out = []
        for message in messages:
            public, blob = sshsig.raw_sign(self.private_key, sshsig.signed_data(message, namespace))
            out.append(sshsig.armor(sshsig.build_blob(public.blob, namespace, blob)))
        return out


def agent_keys(agent_path: str | None = None) -> list[sshsig.PublicKey]:
    """The agent's keys; empty when there is no agent."""
    from signoff.console.sshagent import Agent, AgentError

    try:
        with Agent(agent_path) as agent:
            return agent.identities()
    except AgentError:
        return []


def load_key_file(path: Path, passphrase: str | None = None) -> KeySigner:
    """``--sign-key FILE``: a private key file, or a public key whose private half the agent holds."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read --sign-key {path}: {exc.strerror or exc}") from None
    text = data.decode("utf-8", "replace")
    if "PRIVATE KEY" not in text:
        key = sshsig.parse_public_key(text)
        if not any(k.blob == key.blob for k in agent_keys()):
            raise UsageError(f"--sign-key {path} is a public key, but your SSH agent does not hold its private "
                             f"key ({key.fingerprint}); `ssh-add` it, or give the private key file")
        return AgentKeySigner(None, key)
    from cryptography.hazmat.primitives.serialization import load_ssh_private_key

    try:
        private = load_ssh_private_key(data, passphrase.encode() if passphrase is not None else None)
    except TypeError:  # encrypted and no passphrase yet
        if passphrase is not None:
            raise
        import getpass

        try:
            secret = os.environ.get("SIGNOFF_SIGN_KEY_PASSPHRASE") or getpass.getpass(f"Passphrase for {path}: ")
        except (EOFError, OSError):
            raise UsageError(f"--sign-key {path} is encrypted and no passphrase could be read") from None
        return load_key_file(path, secret)
    except ValueError as exc:
        raise UsageError(f"--sign-key {path}: {exc} (an OpenSSH private key is expected)") from None
    from cryptography.hazmat.primitives import serialization

    line = private.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                             serialization.PublicFormat.OpenSSH).decode("ascii")
    return FileKeySigner(private, sshsig.parse_public_key(line))


class NoUsableKey(SignoffError):
    exit_code = 1


def find_signer(backend: SigningBackend, key_file: Path | None = None) -> tuple[KeySigner | None, str]:
    """(the signer to use, "") or (None, why there is none, in words a person can act on)."""
    if key_file is not None:
        signer = load_key_file(key_file)
        if signer.key.fingerprint not in _registered(backend):
            raise UsageError(f"--sign-key {key_file} ({signer.key.fingerprint}) is not a valid key registered for "
                             f"{backend.identity}; register it with `signoff keys add`")
        return signer, ""
    if not os.environ.get("SSH_AUTH_SOCK"):
        return None, "no SSH agent (SSH_AUTH_SOCK is not set): start one with `eval $(ssh-agent)` and `ssh-add`"
    held = agent_keys()
    if not held:
        return None, "your SSH agent holds no keys (or cannot be reached): `ssh-add` your key"
    registered = _registered(backend)
    for key in held:
        if key.fingerprint in registered:
            return AgentKeySigner(None, key), ""
    if not registered:
        return None, "you have no key registered with signoff: `signoff keys add ~/.ssh/id_ed25519.pub`"
    return None, "none of the keys in your SSH agent is registered with signoff: `signoff keys add` one of them"


def _registered(backend: SigningBackend) -> set[str]:
    return {str(k["fingerprint"]) for k in backend.list_keys() if k.get("valid")}


def describe_key(key: sshsig.PublicKey) -> str:
    return f"{key.key_type} {key.fingerprint}"


#: up to this many items, each decision gets its own statement and signature (the neatest
#: evidence); a larger bulk is signed once per :data:`BATCH_ITEMS` items, over a statement
#: that lists each item with its own context hash (each signature costs the agent ~0.3 ms);
#: 200 items keep a statement (~80 kB) well inside the server's 150,000-character limit
PER_ITEM_MAX = 20
BATCH_ITEMS = 200


def sign_decisions(backend: SigningBackend, signer: KeySigner, request_ids: Sequence[str], verdict: str, *,
                   inputs: Mapping[str, Any] | None = None, reason: str | None = None,
                   now: Any = None) -> dict[str, dict[str, str]]:
    """request id -> {statement, signature} for every request whose policy is not `off` and whose
    form values are valid (the others go unsigned; the server reports why they fail).

    The form values signed are the engine's validated ones (typed text made a number, a date,
    defaults filled in), exactly what the decision records; `--json` shows each statement.
    Items of one batch share one {statement, signature} object."""
    material = backend.signing_material(list(request_ids), verdict, inputs)
    signer_name = str(material.get("signer") or backend.identity)
    if signer_name != backend.identity and backend.identity not in ("?", ""):
        raise SignoffError(f"the server's signing material names {signer_name}, not you ({backend.identity})")
    nonce = str(material["nonce"])
    signed_at = format_time(now or _now())
    wanted = set(request_ids)
    items = []
    for item in material.get("items") or []:
        if item.get("id") not in wanted or not item.get("found") or item.get("mode") == "off" or item.get("errors"):
            continue
        items.append({"request_id": item["id"], "context_sha256": str(item["context_sha256"]), "flow": item["flow"],
                      "inputs": st.hide_secrets(dict(item.get("inputs") or {}),
                                                frozenset(item.get("secret_fields") or ()))})
    if len(items) <= PER_ITEM_MAX:
        texts = [st.build(request_id=i["request_id"], verdict=verdict, inputs=i["inputs"], reason=reason,
                          context_hash=i["context_sha256"], flow=i["flow"], signer=signer_name, nonce=nonce,
                          signed_at=signed_at) for i in items]
        groups = [[i["request_id"]] for i in items]
    else:
        chunks = [items[n:n + BATCH_ITEMS] for n in range(0, len(items), BATCH_ITEMS)]
        texts = [st.build_batch(items=chunk, verdict=verdict, reason=reason, signer=signer_name, nonce=nonce,
                                signed_at=signed_at) for chunk in chunks]
        groups = [[i["request_id"] for i in chunk] for chunk in chunks]
    signatures = signer.sign_many([t.encode("utf-8") for t in texts], st.DECISION_NAMESPACE)
    out: dict[str, dict[str, str]] = {}
    for ids, text, signature in zip(groups, texts, signatures, strict=True):
        shared = {"statement": text, "signature": signature}
        for request_id in ids:
            out[request_id] = shared
    return out


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


def sign_key_registration(user: str, key: sshsig.PublicKey, nonce: str, signer: KeySigner) -> str:
    from signoff.engine.signing.statement import registration_statement

    return signer.sign_many([registration_statement(user, key, nonce).encode("utf-8")], st.KEY_NAMESPACE)[0]


class SessionSigner:
    """The console's signer: found once (in a worker thread: it asks the server and the agent),
    then used for every decision of the session. ``problem`` says why nothing can be signed."""

    def __init__(self, backend: Any, key_file: Path | None = None) -> None:
        import threading

        self.backend = backend
        self.key_file = key_file
        self._lock = threading.Lock()
        self._found = False
        self.signer: KeySigner | None = None
        self.problem: str | None = None

    @property
    def found(self) -> bool:
        """Has the signer been looked for already?"""
        return self._found

    def ensure(self) -> KeySigner | None:
        """The signer (looked up on first use; blocks: call from a worker)."""
        with self._lock:
            if not self._found:
                try:
                    self.signer, why = find_signer(self.backend, self.key_file)
                    self.problem = why or None
                except SignoffError as exc:
                    self.signer, self.problem = None, exc.message
                self._found = True
            return self.signer

    def sign(self, request_ids: Sequence[str], verdict: str, *, inputs: Mapping[str, Any] | None = None,
             reason: str | None = None, now: Any = None) -> dict[str, dict[str, str]] | None:
        """``now``: the console's clock (the signing time in the statement)."""
        signer = self.ensure()
        if signer is None:
            return None
        return sign_decisions(self.backend, signer, request_ids, verdict, inputs=inputs, reason=reason, now=now)

    def describe(self) -> str:
        """For the status line: what decisions are signed with, or why they are not."""
        if self.signer is not None:
            return f"signing with {describe_key(self.signer.key)}"
        return f"decisions unsigned: {self.problem}" if self.problem else "looking for a signing key…"
