"""Signed decisions through a real `signoff serve` (HTTP on 127.0.0.1) and the remote client.

The signing happens in this (client) process through a real ssh-agent; the server checks the
signature before it commits. Policy: tests/server/data/policy.yaml plus `signatures:
required` for the approvers of company.finance.
"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from signoff.console.remote import RemoteBackend
from signoff.console.signing import AgentKeySigner, find_signer, sign_decisions, sign_key_registration
from signoff.engine.signing import sshsig
from tests.server.conftest import POLICY, make_server
from tests.sshtools import make_key
from tests.support import REPO, SIGNOFF


def _policy(tmp_path: Path) -> Path:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY.read_text().replace(
        "  - role: approver\n    subjects: [group:finance]\n    namespaces: [company.finance, company.finance.*]\n",
        "  - role: approver\n    subjects: [group:finance]\n    namespaces: [company.finance, company.finance.*]\n"
        "    signatures: required\n"))
    assert "signatures: required" in policy.read_text()
    return policy


def _seed(srv, policy: Path, count: int) -> list[str]:
    """``count`` pending payments started by rita, written before the server starts (in-process
    runs to the pause are ~100x faster than 1,000 HTTP starts through the background runner)."""
    from signoff.engine.core import Engine
    from signoff.engine.identity import Identity
    from signoff.engine.policy import load_policy
    from signoff.engine.service import ApprovalService

    engine = Engine(srv.data_dir, [srv.base / "flows"], policy=load_policy(policy))
    svc = ApprovalService(engine)
    ids = []
    for n in range(count):
        execution = svc.start_execution(Identity("rita"), "company.finance", "payment", {"amount": n + 1})
        ids += [r["id"] for r in execution["requests"] if r["state"] == "PENDING"]
    engine.close()
    return ids


@pytest.fixture
def signed_server(tmp_path: Path, request: pytest.FixtureRequest):
    policy = _policy(tmp_path)
    srv = make_server(tmp_path / "srv", policy=False, args=["--policy", str(policy)])
    marker = request.node.get_closest_marker("seed")
    srv.seeded = _seed(srv, policy, marker.args[0]) if marker else []
    srv.start()
    try:
        yield srv
    finally:
        assert srv.stop() == 0, srv.log


def _register(remote: RemoteBackend, agent, tmp_path: Path, name: str) -> sshsig.PublicKey:
    private = make_key(tmp_path / "keys", name)
    agent.add(private)
    text = (private.parent / f"{name}.pub").read_text()
    key = sshsig.parse_public_key(text)
    challenge = remote.key_challenge()
    remote.add_key(text, nonce=challenge["nonce"],
                   signature=sign_key_registration(remote.identity, key, challenge["nonce"], AgentKeySigner(None, key)))
    return key


def test_signed_decisions_over_http(signed_server, agent, tmp_path: Path) -> None:
    srv = signed_server
    alice = RemoteBackend(srv.url, srv.tokens["alice"])
    admin = RemoteBackend(srv.url, srv.tokens["root-admin"])
    try:
        key = _register(alice, agent, tmp_path, "alice")
        assert [k["fingerprint"] for k in alice.list_keys()] == [key.fingerprint]
        assert key.openssh in admin.allowed_signers()
        ids = srv.pending_payments(3)

        # required: unsigned is refused with 403 and a how-to, over the single endpoint and the bulk one
        with srv.client("alice") as c:
            r = c.post(f"/api/v1/approvals/{ids[0]}/approve", json={"inputs": {"approved": True}})
            assert r.status_code == 403, r.text
            assert r.json()["type"].endswith("signature-required") and "ssh-add" in r.json()["detail"]
            # a garbage signature is a 4xx, never a 500
            r = c.post(f"/api/v1/approvals/{ids[0]}/approve",
                       json={"inputs": {"approved": True}, "signature": {"statement": "x", "signature": "y"}})
            assert r.status_code == 422 and r.json()["type"].endswith("bad-signature"), r.text
            r = c.post("/api/v1/keys", json={"public_key": "ssh-ed25519 AAAA", "nonce": "n", "signature": "s"})
            assert 400 <= r.status_code < 500, r.text
            r = c.post("/api/v1/keys/revoke", json={"fingerprint": "nope"})
            assert r.status_code == 400, r.text
        [unsigned] = alice.decide([ids[0]], "approve", inputs={"approved": True})
        assert unsigned.outcome == "signature_required"

        # signed through the agent, in this process: decided, and the outcome says with which key
        signer, why = find_signer(alice)
        assert signer is not None, why
        signatures = sign_decisions(alice, signer, ids[:2], "approve", inputs={"approved": "true"})
        outcomes = alice.decide(ids[:2], "approve", inputs={"approved": "true"}, signatures=signatures)
        assert [o.outcome for o in outcomes] == ["decided", "decided"], outcomes
        assert outcomes[0].signature == {"fingerprint": key.fingerprint, "key_type": "ssh-ed25519"}
        shown = alice.get_request(ids[0])
        assert shown["signatures"] == "required"
        assert shown["decisions"][0]["signature"]["fingerprint"] == key.fingerprint
        # deny, signed
        [deny] = alice.decide([ids[2]], "deny", reason="no",
                              signatures=sign_decisions(alice, signer, [ids[2]], "deny", reason="no"))
        assert deny.outcome == "decided" and deny.state == "DENIED"

        # bob's key cannot sign for alice
        bob = RemoteBackend(srv.url, srv.tokens["bob"])
        bob_key = _register(bob, agent, tmp_path, "bob")
        [more] = srv.pending_payments(1)
        forged = sign_decisions(alice, AgentKeySigner(None, bob_key), [more], "deny")
        [refused] = alice.decide([more], "deny", signatures=forged)
        assert refused.outcome == "bad_signature" and "not a valid registered key of alice" in refused.message

        # revoked: refused from now on, the earlier ones still verify
        alice.revoke_key(key.fingerprint)
        stale = sign_decisions(alice, AgentKeySigner(None, key), [more], "deny")
        [late] = alice.decide([more], "deny", signatures=stale)
        assert late.outcome == "bad_signature"
        result = admin.verify_audit()
        assert result["ok"] and result["signed"] == 3, result
        head = admin.audit_head()
        assert head["checkpoint"]["seq"] == head["seq"]
        bob.close()
    finally:
        alice.close()
        admin.close()

    # evidence through the server, checked by stock ssh-keygen with the README's own command
    token_file = tmp_path / "token"
    token_file.write_text(srv.tokens["victor"])
    token_file.chmod(0o600)
    out = tmp_path / "evidence"
    proc = subprocess.run([*SIGNOFF, "audit", "evidence", ids[0], "--out", str(out), "--server", srv.url,
                           "--token-file", str(token_file)], env=srv.env, cwd=REPO, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc
    command = next(line.strip() for line in (out / "README.md").read_text().splitlines()
                   if line.strip().startswith("ssh-keygen -Y verify"))
    done = subprocess.run(command, shell=True, cwd=out, capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 0 and "Good" in done.stdout, done


@pytest.mark.seed(1000)
def test_bulk_of_1000_signed_over_http(signed_server, agent, tmp_path: Path) -> None:
    srv = signed_server
    alice = RemoteBackend(srv.url, srv.tokens["alice"], timeout=120)
    try:
        _register(alice, agent, tmp_path, "alice")
        ids = srv.seeded
        assert len(ids) == 1000
        signer, why = find_signer(alice)
        assert signer is not None, why
        signatures = sign_decisions(alice, signer, ids, "approve", inputs={"approved": "true"})
        outcomes = alice.decide(ids, "approve", inputs={"approved": "true"}, signatures=signatures)
        assert [o.outcome for o in outcomes] == ["decided"] * 1000
        assert all(o.signature for o in outcomes)
        with srv.client("root-admin") as c:
            verified = c.get("/api/v1/audit/verify", timeout=120).json()
        assert verified["ok"] and verified["signed"] == 1000, json.dumps(verified)[:500]
    finally:
        alice.close()
