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


def sign_decisions(backend: SigningBackend, signer: KeySigner, request_ids: Sequence[str], verdict: str, *,
                   inputs: Mapping[str, Any] | None = None, reason: str | None = None) -> dict[str, dict[str, str]]:
    """request id -> {statement, signature} for every request whose policy is not `off` and whose
    form values are valid (the others go unsigned; the server reports why they fail).

    The form values signed are the engine's validated ones (typed text made a number, a date,
    defaults filled in), exactly what the decision records; `--json` shows each statement."""
    material = backend.signing_material(list(request_ids), verdict, inputs)
    signer_name = str(material.get("signer") or backend.identity)
    if signer_name != backend.identity and backend.identity not in ("?", ""):
        raise SignoffError(f"the server's signing material names {signer_name}, not you ({backend.identity})")
    nonce = str(material["nonce"])
    signed_at = format_time(_now())
    wanted = set(request_ids)
    ids: list[str] = []
    texts: list[str] = []
    for item in material.get("items") or []:
        if item.get("id") not in wanted or not item.get("found") or item.get("mode") == "off" or item.get("errors"):
            continue
        values = dict(item.get("inputs") or {})
        text = st.build(request_id=item["id"], verdict=verdict,
                        inputs=st.hide_secrets(values, frozenset(item.get("secret_fields") or ())), reason=reason,
                        context_hash=str(item["context_sha256"]), flow=item["flow"], signer=signer_name,
                        nonce=nonce, signed_at=signed_at)
        ids.append(item["id"])
        texts.append(text)
    signatures = signer.sign_many([t.encode("utf-8") for t in texts], st.DECISION_NAMESPACE)
    return {i: {"statement": t, "signature": s} for i, t, s in zip(ids, texts, signatures, strict=True)}


def _now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


def sign_key_registration(user: str, key: sshsig.PublicKey, nonce: str, signer: KeySigner) -> str:
    from signoff.engine.signing.keys import registration_statement

    return signer.sign_many([registration_statement(user, key, nonce).encode("utf-8")], st.KEY_NAMESPACE)[0]
