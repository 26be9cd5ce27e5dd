"""Signed decisions (README, "Signed decisions"), with a real ssh-agent and real ssh-keygen.

In-process tests drive the approval service through LocalBackend and the client-side signer
(console/signing.py) exactly as the CLI does; the CLI tests run the `signoff` program. The
auditor's side is always stock `ssh-keygen -Y verify`.
"""
from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

import pytest

from signoff.console.backend import LocalBackend
from signoff.console.signing import AgentKeySigner, find_signer, load_key_file, sign_decisions, sign_key_registration
from signoff.engine.audit.log import GENESIS, event_content, event_hash
from signoff.engine.clock import SystemClock
from signoff.engine.errors import Refused, UsageError
from signoff.engine.governance.policy_file import parse_policy
from signoff.engine.identity import Identity
from signoff.engine.signing import sshsig
from signoff.engine.signing.statement import DECISION_NAMESPACE
from tests.sshtools import make_key, ssh_verify
from tests.support import REPO, SIGNOFF, clean_env, make_service

ALICE = Identity("alice", ("finance",))
BOB = Identity("bob", ("finance",))
ROOT = Identity("root-admin", ())
RITA = Identity("rita", ())

FLOW = """
id: pay
namespace: company.finance
inputs:
  - id: amount
    type: INT
tasks:
  - id: review
    type: io.kestra.plugin.core.flow.Pause
    context:
      summary: "Pay {{ inputs.amount }}"
    onResume:
      - id: approved
        type: BOOLEAN
      - id: copies
        type: INT
        required: false
      - id: pin
        type: SECRET
        required: false
  - id: done
    type: io.kestra.plugin.core.log.Log
    message: paid
"""

POLICY = """
fourEyes: true
signatures: {mode}
bindings:
  - role: admin
    subjects: [user:root-admin]
    namespaces: ["*"]
  - role: approver
    subjects: [user:alice, user:bob]
    namespaces: [company.finance]
  - role: requester
    subjects: [user:rita]
    namespaces: [company.finance]
"""


def service(tmp_path: Path, mode: str = "optional"):
    policy = parse_policy(POLICY.format(mode=mode), "policy.yaml")
    return make_service(tmp_path, {"pay.yaml": FLOW}, clock=SystemClock(), policy=policy)  # type: ignore[arg-type]


def start(svc, count: int = 1) -> list[str]:
    ids = []
    for n in range(count):
        execution = svc.start_execution(RITA, "company.finance", "pay", {"amount": n + 1})
        ids += [r["id"] for r in execution["requests"] if r["state"] == "PENDING"]
    return ids


def register(svc, agent, who: Identity, name: str, tmp_path: Path, key_type: str = "ed25519") -> sshsig.PublicKey:
    """A key made by ssh-keygen, added to the agent, registered with proof of possession."""
    private = make_key(tmp_path / "keys", name, key_type)
    agent.add(private)
    key = sshsig.parse_public_key((private.parent / f"{name}.pub").read_text())
    backend = LocalBackend(svc, who)
    challenge = backend.key_challenge()
    signature = sign_key_registration(who.name, key, challenge["nonce"], AgentKeySigner(None, key))
    row = backend.add_key((private.parent / f"{name}.pub").read_text(), nonce=challenge["nonce"], signature=signature)
    assert row["proof"] == "possession" and row["fingerprint"] == key.fingerprint
    return key


def signed_decide(svc, who: Identity, ids: list[str], verdict: str, inputs=None, reason=None):
    backend = LocalBackend(svc, who, origin="cli")
    signer, why = find_signer(backend)
    assert signer is not None, why
    signatures = sign_decisions(backend, signer, ids, verdict, inputs=inputs, reason=reason)
    return backend.decide(ids, verdict, inputs=inputs, reason=reason, signatures=signatures), signatures


# -- the format: ours and OpenSSH's agree both ways ------------------------------------------------


@pytest.mark.parametrize("key_type", ["ed25519", "ecdsa", "rsa"])
def test_sshsig_matches_openssh_both_ways(tmp_path: Path, agent, key_type: str) -> None:
    private = make_key(tmp_path, "k", key_type)
    agent.add(private)
    key = sshsig.parse_public_key((tmp_path / "k.pub").read_text())
    message = tmp_path / "message"
    message.write_bytes(b"approve request 42\n")
    allowed = tmp_path / "allowed_signers"
    allowed.write_text(f"tester {key.openssh}\n")

    # ours (through the real agent) -> ssh-keygen -Y verify
    [ours] = AgentKeySigner(None, key).sign_many([message.read_bytes()], DECISION_NAMESPACE)
    (tmp_path / "ours.sig").write_text(ours)
    good = ssh_verify(allowed, "tester", DECISION_NAMESPACE, tmp_path / "ours.sig", message)
    assert good.returncode == 0 and "Good" in good.stdout, good

    # ssh-keygen -Y sign (through the agent, only the public key on disk) -> ours
    subprocess.run(["ssh-keygen", "-Y", "sign", "-q", "-f", str(tmp_path / "k.pub"), "-n", DECISION_NAMESPACE,
                    str(message)], check=True, env={"SSH_AUTH_SOCK": agent.sock, "PATH": "/usr/bin:/bin"},
                   capture_output=True)
    theirs = sshsig.verify(message.read_bytes(), (tmp_path / "message.sig").read_text(), DECISION_NAMESPACE)
    assert theirs.public_key.fingerprint == key.fingerprint

    # a private key file read into the process (--sign-key) signs the same format
    [from_file] = load_key_file(private).sign_many([message.read_bytes()], DECISION_NAMESPACE)
    (tmp_path / "file.sig").write_text(from_file)
    assert ssh_verify(allowed, "tester", DECISION_NAMESPACE, tmp_path / "file.sig", message).returncode == 0

    # wrong message, wrong namespace, garbage: refused with a message
    with pytest.raises(sshsig.SignatureError, match="does not match"):
        sshsig.verify(b"approve request 43\n", ours, DECISION_NAMESPACE)
    with pytest.raises(sshsig.SignatureError, match="namespace"):
        sshsig.verify(message.read_bytes(), ours, "file")
    with pytest.raises(sshsig.SignatureError, match="armoured"):
        sshsig.verify(message.read_bytes(), "not a signature", DECISION_NAMESPACE)


# -- keys: registration with and without proof of possession ----------------------------------------


def test_key_registration_needs_proof_of_possession(tmp_path: Path, agent) -> None:
    svc = service(tmp_path)
    alice = LocalBackend(svc, ALICE)
    key = register(svc, agent, ALICE, "alice", tmp_path)
    assert [k["fingerprint"] for k in alice.list_keys()] == [key.fingerprint]

    # bob cannot register a key he does not hold: no signature, a wrong signature, a replayed nonce
    other = make_key(tmp_path / "keys", "stolen")
    public = (other.parent / "stolen.pub").read_text()
    bob = LocalBackend(svc, BOB)
    with pytest.raises(UsageError, match="proof of possession"):
        bob.add_key(public)
    challenge = bob.key_challenge()
    alices_signature = sign_key_registration("bob", key, challenge["nonce"], AgentKeySigner(None, key))
    with pytest.raises(Refused, match="proof of possession failed"):
        bob.add_key(public, nonce=challenge["nonce"], signature=alices_signature)
    with pytest.raises(Refused, match="already used"):
        bob.add_key(public, nonce=challenge["nonce"], signature=alices_signature)
    with pytest.raises(Refused, match="not issued to you"):
        bob.add_key(public, nonce=alice.key_challenge()["nonce"], signature=alices_signature)
    # alice's key cannot become bob's as well
    challenge = bob.key_challenge()
    good = sign_key_registration("bob", key, challenge["nonce"], AgentKeySigner(None, key))
    with pytest.raises(Refused, match="another identity"):
        bob.add_key(key.openssh, nonce=challenge["nonce"], signature=good)
    assert bob.list_keys() == []
    denied = [e for e in svc.history(ROOT, "action:policy.denied actor:bob", limit=10)]
    assert len(denied) == 3 and all(e["data"]["operation"] == "keys.add" for e in denied)

    # an admin registers a key for someone else without proof; audited as such
    row = LocalBackend(svc, ROOT).add_key(public, user="bob")
    assert row["user"] == "bob" and row["proof"] == "admin" and row["added_by"] == "root-admin"
    [event] = svc.history(ROOT, "action:key.added actor:root-admin", limit=5)
    assert event["data"]["user"] == "bob" and event["data"]["proof"] == "admin"
    # ... which a non-admin may not
    with pytest.raises(Refused, match="only an admin"):
        alice.add_key((make_key(tmp_path / "keys", "x").parent / "x.pub").read_text(), user="bob")
    # bad key text: a clear message
    for text, message in (("ssh-ed25519", "TYPE BASE64"), ("ssh-ed25519 !!!", "not valid base64"),
                          ("-----BEGIN OPENSSH PRIVATE KEY-----\nabc", "private key"),
                          ("ssh-dss AAAAB3NzaC1kc3M=", "unsupported key type")):
        with pytest.raises(UsageError, match=message):
            alice.add_key(text)


def test_keys_cli_add_list_revoke_allowed_signers(tmp_path: Path, agent) -> None:
    env = clean_env(SSH_AUTH_SOCK=agent.sock)
    data = tmp_path / "data"

    def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([*SIGNOFF, "--data-dir", str(data), *args], env=env, cwd=REPO, capture_output=True,
                              text=True, input=stdin or "", timeout=60)
        assert "Traceback" not in proc.stderr, proc.stderr
        return proc

    private = make_key(tmp_path / "keys", "me")
    # not in the agent, and no private key beside the public one: no proof possible
    lonely = make_key(tmp_path / "lonely", "solo")
    lonely.unlink()
    refused = cli("keys", "add", str(lonely.parent / "solo.pub"))
    assert refused.returncode == 2 and "cannot prove you hold key" in refused.stderr, refused
    # the private key file beside the .pub proves it (agent empty)
    added = cli("keys", "add", str(private.parent / "me.pub"), "--json")
    assert added.returncode == 0, added
    row = json.loads(added.stdout)
    assert row["proof"] == "possession" and row["valid"] is True
    # through the agent, from stdin
    second = make_key(tmp_path / "keys", "second", "ecdsa")
    agent.add(second)
    again = cli("keys", "add", "-", stdin=(second.parent / "second.pub").read_text())
    assert again.returncode == 0 and "registered ecdsa-sha2-nistp256" in again.stdout, again
    listed = json.loads(cli("keys", "list", "--json").stdout)
    assert [k["key_type"] for k in listed] == ["ssh-ed25519", "ecdsa-sha2-nistp256"]
    revoked = cli("keys", "revoke", row["fingerprint"])
    assert revoked.returncode == 0 and "revoked" in revoked.stdout
    assert cli("keys", "revoke", row["fingerprint"]).returncode == 1
    bad = cli("keys", "revoke", "nonsense")
    assert bad.returncode == 2 and "is not a key fingerprint" in bad.stderr
    allowed = cli("keys", "allowed-signers").stdout.splitlines()
    assert len(allowed) == 2
    assert 'namespaces="signoff-decision",valid-after=' in allowed[0] and ",valid-before=" in allowed[0]
    assert "valid-before" not in allowed[1]
    assert cli("keys", "add", str(tmp_path / "missing.pub")).returncode == 2


# -- decisions -----------------------------------------------------------------------------------


def test_signed_approve_and_deny_are_recorded_and_shown(tmp_path: Path, agent) -> None:
    svc = service(tmp_path)
    key = register(svc, agent, ALICE, "alice", tmp_path)
    first, second = start(svc, 2)
    [outcome], signatures = signed_decide(svc, ALICE, [first], "approve",
                                          inputs={"approved": "true", "copies": "2", "pin": "1234"}, reason="ok")
    assert outcome.outcome == "decided", outcome
    assert outcome.signature == {"fingerprint": key.fingerprint, "key_type": "ssh-ed25519"}
    statement = json.loads(signatures[first]["statement"])
    assert statement["inputs"]["approved"] is True and statement["inputs"]["copies"] == 2
    assert set(statement["inputs"]["pin"]) == {"salt", "secret_sha256"} and "1234" not in signatures[first]["statement"]
    assert statement["signer"] == "alice" and statement["verdict"] == "approve" and statement["reason"] == "ok"
    shown = svc.get_request(ALICE, first)
    assert shown["decisions"][0]["signature"] == {"fingerprint": key.fingerprint, "key_type": "ssh-ed25519"}
    [denied], _ = signed_decide(svc, ALICE, [second], "deny", reason="no")
    assert denied.outcome == "decided" and denied.state == "DENIED" and denied.signature
    # unsigned decisions still work under `optional`
    [third] = start(svc)
    [plain] = LocalBackend(svc, ALICE).decide([third], "deny")
    assert plain.outcome == "decided" and plain.signature is None
    result = svc.verify_audit(ROOT)
    assert result["ok"] and result["signed"] == 2 and result["unsigned"] == 1, result


def test_required_refuses_unsigned_and_foreign_and_revoked_keys(tmp_path: Path, agent) -> None:
    svc = service(tmp_path, "required")
    alice_key = register(svc, agent, ALICE, "alice", tmp_path)
    bob_key = register(svc, agent, BOB, "bob", tmp_path)
    a, b, c, d = start(svc, 4)
    alice = LocalBackend(svc, ALICE)

    # unsigned: refused with how to fix it, and audited
    [unsigned] = alice.decide([a], "approve", inputs={"approved": "true"})
    assert unsigned.outcome == "signature_required"
    assert "ssh-add" in unsigned.message and "signoff keys add" in unsigned.message
    [audited] = svc.history(ROOT, f"action:policy.denied request:{a}", limit=5)
    assert audited["data"]["reason"] == "signature_required"
    assert svc.get_request(ALICE, a)["state"] == "PENDING"

    # signed with bob's key, sent as alice: refused
    foreign = sign_decisions(alice, AgentKeySigner(None, bob_key), [a], "approve", inputs={"approved": "true"})
    [wrong] = alice.decide([a], "approve", inputs={"approved": "true"}, signatures=foreign)
    assert wrong.outcome == "bad_signature" and "not a valid registered key of alice" in wrong.message
    # a statement for other values than the decision: refused
    mismatch = sign_decisions(alice, AgentKeySigner(None, alice_key), [a], "approve", inputs={"approved": "false"})
    [other] = alice.decide([a], "approve", inputs={"approved": "true"}, signatures=mismatch)
    assert other.outcome == "bad_signature" and "form field approved" in other.message
    # a statement for request a replayed on request b: refused
    replay = {b: sign_decisions(alice, AgentKeySigner(None, alice_key), [a], "deny")[a]}
    [replayed] = alice.decide([b], "deny", signatures=replay)
    assert replayed.outcome == "bad_signature" and f"does not name request {b}" in replayed.message

    [ok], _ = signed_decide(svc, ALICE, [a], "approve", inputs={"approved": "true"})
    assert ok.outcome == "decided"
    # revoke: new decisions with the key are refused, the old one still verifies
    alice.revoke_key(alice_key.fingerprint)
    stale = sign_decisions(alice, AgentKeySigner(None, alice_key), [c], "deny")
    [refused] = alice.decide([c], "deny", signatures=stale)
    assert refused.outcome == "bad_signature" and "revoked" in refused.message
    signer, why = find_signer(alice)
    assert signer is None and "you have no key registered with signoff" in why
    result = svc.verify_audit(ROOT)
    assert result["ok"] and result["signed"] == 1, result
    # bob's own key still works for bob; cancel can be signed too (root-admin, required too)
    [bob_ok], _ = signed_decide(svc, BOB, [c], "deny")
    assert bob_ok.outcome == "decided"
    root_key = register(svc, agent, ROOT, "root", tmp_path)
    root = LocalBackend(svc, ROOT)
    [unsigned_cancel] = root.cancel([d])
    assert unsigned_cancel.outcome == "signature_required"
    signer, _ = find_signer(root)
    assert signer is not None and signer.key.fingerprint == root_key.fingerprint
    cancelled = root.cancel([d], signatures=sign_decisions(root, signer, [d], "cancel", reason="dup"), reason="dup")
    assert cancelled[0].outcome == "cancelled" and cancelled[0].signature
    assert svc.verify_audit(ROOT)["signed"] == 3


def test_bulk_of_1000_signed_decisions(tmp_path: Path, agent) -> None:
    svc = service(tmp_path, "required")
    register(svc, agent, ALICE, "alice", tmp_path)
    ids = start(svc, 1000)
    outcomes, signatures = signed_decide(svc, ALICE, ids, "approve", inputs={"approved": "true"})
    assert [o.outcome for o in outcomes] == ["decided"] * 1000 and all(o.signature for o in outcomes)
    # one signature per 200 items, over a statement listing each item with its own context hash
    assert len(signatures) == 1000 and len({s["signature"] for s in signatures.values()}) == 5
    batch = json.loads(signatures[ids[0]]["statement"])
    assert batch["type"] == "signoff.decisions/v1" and [i["request_id"] for i in batch["items"]] == ids[:200]
    assert len({i["context_sha256"] for i in batch["items"]}) == 200  # each request's own context
    stored = svc.db.query_one("SELECT count(*) FROM signed_batches")[0]
    assert stored == 5
    result = svc.verify_audit(ROOT)
    assert result["ok"] and result["signed"] == 1000, result

    # the evidence for one item stands alone: the batch statement, its signature, the key
    out = tmp_path / "evidence"
    subprocess.run([*SIGNOFF, "--data-dir", str(tmp_path / "data"), "audit", "evidence", ids[700], "--out",
                    str(out)], env=clean_env(), cwd=REPO, capture_output=True, text=True, timeout=60, check=True)
    readme = (out / "README.md").read_text()
    assert "lists 200 requests" in readme and ids[700] in readme
    command = next(line.strip() for line in readme.splitlines() if line.strip().startswith("ssh-keygen -Y verify"))
    done = subprocess.run(command, shell=True, cwd=out, capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 0 and "Good" in done.stdout, done
    listed = json.loads((out / "1-alice-approve.statement").read_text())
    assert ids[700] in [i["request_id"] for i in listed["items"]]

    # an insider who edits one item of a bulk in the database is named, chain recomputed or not
    conn = svc.db.connection()
    seq, data_text = conn.execute("SELECT seq, data FROM audit WHERE action='request.approved' AND request_id=?",
                                  (ids[321],)).fetchone()
    data = json.loads(data_text)
    data["reason"] = "changed later"
    conn.execute("UPDATE audit SET data=? WHERE seq=?", (json.dumps(data), seq))
    svc.engine.close()
    _rehash_chain(tmp_path / "data" / "signoff.db")
    result = service(tmp_path).verify_audit(ROOT)
    assert not result["ok"] and result["first_bad_seq"] == seq and "reason" in result["problem"], result


def test_keys_and_signed_bulk_on_postgresql(tmp_path: Path, agent, pg_url: str) -> None:
    """The signing tables on PostgreSQL: a key registered (its id from RETURNING), single and
    bulk signed decisions stored with their batches, and the auditor's verification."""
    from signoff.engine.core import Engine
    from signoff.engine.service import ApprovalService
    from tests.support import write_flows

    policy = parse_policy(POLICY.format(mode="required"), "policy.yaml")
    engine = Engine(tmp_path / "data", [write_flows(tmp_path / "flows", {"pay.yaml": FLOW})],
                    clock=SystemClock(), policy=policy, database=pg_url)  # type: ignore[arg-type]
    svc = ApprovalService(engine)
    assert svc.db.dialect == "postgresql"
    key = register(svc, agent, ALICE, "alice", tmp_path)
    second = register(svc, agent, BOB, "bob", tmp_path)
    ids = svc.db.query("SELECT id, owner FROM signing_keys ORDER BY id")
    assert [r[1] for r in ids] == ["alice", "bob"] and ids[0][0] < ids[1][0]
    requests = start(svc, 251)
    [one], _ = signed_decide(svc, BOB, [requests[0]], "deny", reason="no")
    assert one.outcome == "decided" and one.signature["fingerprint"] == second.fingerprint
    outcomes, signatures = signed_decide(svc, ALICE, requests[1:], "approve", inputs={"approved": "true"})
    assert [o.outcome for o in outcomes] == ["decided"] * 250
    assert all(o.signature["fingerprint"] == key.fingerprint for o in outcomes)
    assert len({s["signature"] for s in signatures.values()}) == 2  # 200 + 50 items
    assert svc.db.query_one("SELECT count(*) FROM signed_batches")[0] == 2
    result = svc.verify_audit(ROOT)
    assert result["ok"] and result["signed"] == 251 and result["unsigned"] == 0, result
    # an insider's edit of one signed decision is found on PostgreSQL as on SQLite
    svc.db.connection().execute("UPDATE decisions SET reason='later' WHERE request_id=?", (requests[0],))
    result = svc.verify_audit(ROOT)
    assert not result["ok"], result
    engine.close()


# -- the auditor's checks ---------------------------------------------------------------------------


def _rehash_chain(db_path: Path) -> None:
    """What an insider with write access does after editing an event: recompute every hash."""
    conn = sqlite3.connect(db_path, isolation_level=None)
    prev = GENESIS
    rows = conn.execute("SELECT seq, at, actor, action, namespace, flow_id, execution_id, request_id, data"
                        " FROM audit ORDER BY seq").fetchall()
    conn.execute("BEGIN")
    for row in rows:
        digest = event_hash(prev, event_content(*row))
        conn.execute("UPDATE audit SET prev_hash=?, hash=? WHERE seq=?", (prev, digest, row[0]))
        prev = digest
    conn.execute("COMMIT")
    conn.close()


@pytest.mark.parametrize("change", ["verdict", "form_value"])
def test_insider_edit_with_recomputed_chain_is_named(tmp_path: Path, agent, change: str) -> None:
    svc = service(tmp_path)
    register(svc, agent, ALICE, "alice", tmp_path)
    ids = start(svc, 3)
    for request_id in ids:
        signed_decide(svc, ALICE, [request_id], "approve", inputs={"approved": "true", "copies": "1"})
    svc.engine.close()
    db_path = tmp_path / "data" / "signoff.db"
    conn = sqlite3.connect(db_path, isolation_level=None)
    seq, data_text = conn.execute("SELECT seq, data FROM audit WHERE action='request.approved' AND request_id=?",
                                  (ids[1],)).fetchone()
    data = json.loads(data_text)
    if change == "verdict":
        data["verdict"] = "deny"
        conn.execute("UPDATE audit SET action='request.denied', data=? WHERE seq=?", (json.dumps(data), seq))
    else:
        data["inputs"]["copies"] = 5
        conn.execute("UPDATE audit SET data=? WHERE seq=?", (json.dumps(data), seq))
    conn.close()
    _rehash_chain(db_path)
    # also drop the checkpoints, so only the people's signatures are left to tell
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute("DELETE FROM audit_checkpoints")
    conn.close()
    (tmp_path / "data" / "audit-checkpoint").unlink()

    from signoff.engine.audit.verify import verify_chain

    svc2 = service(tmp_path)
    assert verify_chain(svc2.db).ok  # the hash chain alone no longer shows anything
    result = svc2.verify_audit(ROOT)
    assert not result["ok"] and result["first_bad_seq"] == seq, result
    assert f"event {seq} (" in result["problem"] and "signature does not match its content" in result["problem"]
    assert ("verdict" if change == "verdict" else "form field copies") in result["problem"]
    # the CLI says the same, exit 1
    proc = subprocess.run([*SIGNOFF, "--data-dir", str(tmp_path / "data"), "audit", "verify"], env=clean_env(),
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and f"FAILED: event {seq} (" in proc.stderr, proc


def test_edited_decision_row_is_found(tmp_path: Path, agent) -> None:
    svc = service(tmp_path)
    register(svc, agent, ALICE, "alice", tmp_path)
    [request_id] = start(svc)
    signed_decide(svc, ALICE, [request_id], "approve", inputs={"approved": "true", "pin": "4321"})
    assert svc.verify_audit(ROOT)["ok"]
    svc.db.connection().execute("UPDATE decisions SET inputs=? WHERE request_id=?",
                                (json.dumps({"approved": True, "copies": None, "pin": "0000"}), request_id))
    result = svc.verify_audit(ROOT)
    assert not result["ok"] and "stored decision of alice on request" in result["problem"]
    assert "pin" in result["problem"]


def test_checkpoints_detect_truncation_and_rewrite_before_them(tmp_path: Path, agent) -> None:
    from signoff.engine.signing import checkpoints

    svc = service(tmp_path)
    start(svc, 5)
    first = checkpoints.write_checkpoint(svc.engine, force=True)
    assert first is not None and checkpoints.write_checkpoint(svc.engine, force=True) is None
    start(svc, 3)
    second = checkpoints.write_checkpoint(svc.engine, force=True)
    assert second is not None and second["seq"] > first["seq"]
    head = svc.audit_head(ROOT)
    assert head["checkpoint"]["seq"] == head["seq"]
    # the checkpoint is an sshsig signature by the engine's key: OpenSSH checks it too
    (tmp_path / "cp.txt").write_text(second["statement"])
    (tmp_path / "cp.sig").write_text(second["signature"])
    engine_pub = (tmp_path / "data" / "engine-key.pub").read_text().split()
    (tmp_path / "engine_signers").write_text(f"signoff-engine {engine_pub[0]} {engine_pub[1]}\n")
    ok = ssh_verify(tmp_path / "engine_signers", "signoff-engine", "signoff-checkpoint", tmp_path / "cp.sig",
                    tmp_path / "cp.txt")
    assert ok.returncode == 0, ok
    result = svc.verify_audit(ROOT)
    assert result["ok"] and result["checkpoints"] >= 2

    # truncation before the last checkpoint, checkpoint rows deleted too: the file still tells
    conn = svc.db.connection()
    last = conn.execute("SELECT max(seq) FROM audit").fetchone()[0]
    conn.execute("DELETE FROM audit WHERE seq > ?", (first["seq"] + 2,))
    conn.execute("DELETE FROM audit_checkpoints WHERE seq > ?", (first["seq"],))
    result = svc.verify_audit(ROOT)
    assert not result["ok"] and "were removed" in result["problem"], result
    assert f"checkpoint of event {last}" in result["problem"] or f"event {head['seq']}" in result["problem"]

    # a rewrite before a checkpoint (chain recomputed) is found by the checkpoint
    svc.engine.close()
    (tmp_path / "data" / "audit-checkpoint").unlink()
    db_path = tmp_path / "data" / "signoff.db"
    raw = sqlite3.connect(db_path, isolation_level=None)
    raw.execute("UPDATE audit SET actor='mallory' WHERE seq=2")
    raw.close()
    _rehash_chain(db_path)
    svc3 = service(tmp_path)
    result = svc3.verify_audit(ROOT)
    assert not result["ok"] and "rewritten between event 1 and event" in result["problem"], result
    # a checkpoint forged with another key counts for nothing
    from cryptography.hazmat.primitives.asymmetric import ed25519

    forged_key = ed25519.Ed25519PrivateKey.generate()
    conn = svc3.db.connection()
    seq, digest = conn.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    text = checkpoints.checkpoint_statement(seq, digest, "2026-01-01T00:00:00.000000Z", "SHA256:x")
    conn.execute("DELETE FROM audit_checkpoints")
    conn.execute("INSERT INTO audit_checkpoints VALUES (?,?,?,?,?,?)",
                 (seq, digest, "2026-01-01T00:00:00.000000Z", text,
                  sshsig.sign_with_private_key(forged_key, text.encode(), "signoff-checkpoint"), "SHA256:x"))
    assert svc3.verify_audit(ROOT)["checkpoints"] == 0


def test_evidence_verifies_with_stock_ssh_keygen(tmp_path: Path, agent) -> None:
    svc = service(tmp_path)
    key = register(svc, agent, ALICE, "alice", tmp_path)
    register(svc, agent, BOB, "bob", tmp_path, "ecdsa")
    [request_id] = start(svc)
    # quorum of one: alice approves; a second request gets bob's denial after alice's key is revoked
    signed_decide(svc, ALICE, [request_id], "approve", inputs={"approved": "true", "pin": "9"}, reason="fine")
    LocalBackend(svc, ALICE).revoke_key(key.fingerprint)
    [second] = start(svc)
    signed_decide(svc, BOB, [second], "deny", reason="too much")
    out = tmp_path / "evidence"
    proc = subprocess.run([*SIGNOFF, "--data-dir", str(tmp_path / "data"),
                           "audit", "evidence", request_id, "--out", str(out)], env=clean_env(), cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc
    files = sorted(p.name for p in out.iterdir())
    assert files == ["1-alice-approve.allowed_signers", "1-alice-approve.sig", "1-alice-approve.statement",
                     "README.md", "context.json"]
    readme = (out / "README.md").read_text()
    command = next(line.strip() for line in readme.splitlines() if line.strip().startswith("ssh-keygen -Y verify"))
    # the exact line from the README, run by a shell in the evidence folder, on a machine
    # that knows nothing about signoff (no agent, a bare PATH)
    done = subprocess.run(command, shell=True, cwd=out, capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 0 and 'Good "signoff-decision" signature for alice' in done.stdout, (command, done)
    # the key is revoked now: without the signing time OpenSSH refuses it, as it should
    allowed = (out / "1-alice-approve.allowed_signers").read_text()
    assert "valid-before=" in allowed
    import time

    time.sleep(2.1)  # OpenSSH compares whole seconds: be past the (rounded up) second of the revocation
    now_check = ssh_verify(out / "1-alice-approve.allowed_signers", "alice", DECISION_NAMESPACE,
                           out / "1-alice-approve.sig", out / "1-alice-approve.statement")
    assert now_check.returncode != 0
    # the statement names the context in the bundle
    import hashlib

    statement = json.loads((out / "1-alice-approve.statement").read_text())
    assert statement["context_sha256"] == hashlib.sha256((out / "context.json").read_bytes()).hexdigest()
    assert "9" not in json.dumps(statement["inputs"]["pin"]) or statement["inputs"]["pin"]["salt"]
    # a changed statement does not verify
    (out / "1-alice-approve.statement").write_text(json.dumps({**statement, "verdict": "deny"}, indent=2))
    bad = subprocess.run(command, shell=True, cwd=out, capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
    assert bad.returncode != 0
    # a folder that is not empty is refused; an unknown request is a clear error
    again = subprocess.run([*SIGNOFF, "--data-dir", str(tmp_path / "data"), "audit", "evidence", request_id,
                            "--out", str(out)], env=clean_env(), cwd=REPO, capture_output=True, text=True, timeout=60)
    assert again.returncode == 2 and "not empty" in again.stderr


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_cli_signs_through_the_agent_and_required_refuses_without(tmp_path: Path, agent, store: str,
                                                                  request: pytest.FixtureRequest) -> None:
    """`signoff approve|deny` sign without extra steps when the agent holds a registered key;
    under `required` an unsigned decision exits 1 with how to fix it. On both stores (key
    registration, signed decisions and `audit verify` on PostgreSQL too)."""
    import os
    import pwd

    me = pwd.getpwuid(os.getuid()).pw_name
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "pay.yaml").write_text(FLOW.replace("company.finance", "cli.sign"))
    policy = tmp_path / "policy.yaml"
    policy.write_text(f"fourEyes: false\nsignatures: required\nbindings:\n  - role: admin\n    subjects: [user:{me}]\n"
                      "    namespaces: [\"*\"]\n")
    base = ["--data-dir", str(tmp_path / "data"), "--flows", str(flows), "--policy", str(policy)]
    if store == "postgresql":
        base += ["--database", request.getfixturevalue("pg_url")]

    def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([*SIGNOFF, *base, *args], env=env, cwd=REPO, capture_output=True, text=True,
                              timeout=120)
        assert "Traceback" not in proc.stderr, proc.stderr
        return proc

    with_agent = clean_env(SSH_AUTH_SOCK=agent.sock)
    without = clean_env()
    without.pop("SSH_AUTH_SOCK", None)
    ids = []
    for n in range(3):
        run = cli("run", "cli.sign", "pay", "-i", f"amount={n + 1}", "--json", env=without)
        assert run.returncode == 0, run
        ids.append(json.loads(run.stdout)["requests"][0]["id"])
    refused = cli("approve", ids[0], "-i", "approved=true", env=without)
    assert refused.returncode == 1 and "needs a signed decision" in refused.stderr, refused
    assert "not signed: no SSH agent" in refused.stderr
    private = make_key(tmp_path / "keys", "me")
    agent.add(private)
    assert cli("keys", "add", str(private.parent / "me.pub"), env=with_agent).returncode == 0
    approved = cli("approve", ids[0], "-i", "approved=true", "--json", env=with_agent)
    assert approved.returncode == 0, approved
    [item] = json.loads(approved.stdout)
    assert item["outcome"] == "decided" and item["signature"]["key_type"] == "ssh-ed25519"
    assert json.loads(item["signature"]["statement"])["request_id"] == ids[0]
    denied = cli("deny", ids[1], "--reason", "no", env=with_agent)
    assert denied.returncode == 0 and "(signed: ssh-ed25519 SHA256:" in denied.stdout, denied
    # --sign-key with the private key file, no agent
    by_file = cli("deny", ids[2], "--sign-key", str(private), "--json", env=without)
    assert by_file.returncode == 0 and json.loads(by_file.stdout)[0]["signature"], by_file
    shown = json.loads(cli("show", ids[0], "--json", env=without).stdout)
    assert shown["signatures"] == "required" and shown["decisions"][0]["signature"]["key_type"] == "ssh-ed25519"
    verify = cli("audit", "verify", env=without)
    assert verify.returncode == 0 and "3 signed decisions verified, 0 unsigned" in verify.stdout, verify
    nosign = cli("run", "cli.sign", "pay", "-i", "amount=9", "--json", env=without)
    fourth = json.loads(nosign.stdout)["requests"][0]["id"]
    explicit = cli("deny", fourth, "--no-sign", env=with_agent)
    assert explicit.returncode == 1 and "not signed: --no-sign was given" in explicit.stderr
