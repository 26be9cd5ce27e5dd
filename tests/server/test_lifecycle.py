"""Starting and stopping `signoff serve`: refusals, TLS, single-user, graceful SIGTERM."""
from __future__ import annotations

import datetime
import ipaddress
import ssl
import threading
import time

import httpx
import pytest

from tests.server.conftest import fresh_address, make_server, signoff


def test_refuses_to_start_without_a_policy_unless_single_user(tmp_path):
    srv = make_server(tmp_path, policy=False, tokens=False)
    done = signoff(["serve", "--port", "0", *srv.args], srv.env, timeout=30)
    assert done.returncode == 2
    assert "policy" in done.stderr and "--single-user" in done.stderr and "listening" not in done.stdout


def test_refuses_a_non_loopback_host_without_tls(tmp_path):
    srv = make_server(tmp_path, tokens=False)
    done = signoff(["serve", "--host", "0.0.0.0", "--port", "0", *srv.args], srv.env, timeout=30)
    assert done.returncode == 2 and "TLS" in done.stderr and "--insecure-http" in done.stderr
    done = signoff(["serve", "--tls-cert", str(tmp_path / "missing.pem"), "--port", "0", *srv.args], srv.env)
    assert done.returncode == 2 and "--tls-key" in done.stderr


def test_insecure_http_allows_a_non_loopback_host(tmp_path):
    srv = make_server(tmp_path, args=["--host", "0.0.0.0", "--insecure-http"])
    srv.start()
    try:
        with srv.client("alice") as c:
            assert c.get("/api/v1/me").status_code == 200
    finally:
        assert srv.stop() == 0


def test_single_user_server_still_needs_tokens(tmp_path):
    srv = make_server(tmp_path, policy=False, args=["--single-user"])
    srv.start()
    try:
        with srv.client(address=fresh_address()) as c:
            assert c.get("/api/v1/me").status_code == 401
        with srv.client("bob") as c:  # any valid token holder may do everything
            me = c.get("/api/v1/me").json()
            assert me["single_user"] is True and me["name"] == "bob"
            assert c.put("/api/v1/kv/company.finance/k", json={"value": 1}).status_code == 200
            assert c.get("/api/v1/audit/verify").json()["ok"] is True
    finally:
        assert srv.stop() == 0


def _self_signed(directory) -> tuple:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return cert_path, key_path


def test_tls_with_a_self_signed_certificate(tmp_path):
    cert, key = _self_signed(tmp_path)
    context = ssl.create_default_context(cafile=str(cert))
    srv = make_server(tmp_path, args=["--tls-cert", str(cert), "--tls-key", str(key)], verify=context)
    srv.start()
    try:
        assert srv.url.startswith("https://") and "https://" in srv.log
        with srv.client("alice") as c:
            assert c.get("/api/v1/me").json()["name"] == "alice"
        with pytest.raises(httpx.ConnectError):  # the default trust store does not know the certificate
            httpx.get(srv.url + "/healthz", timeout=5)
        with pytest.raises(httpx.HTTPError):  # plain HTTP is not served on the TLS port
            httpx.get(srv.url.replace("https://", "http://") + "/healthz", timeout=5)
    finally:
        assert srv.stop() == 0


def test_sigterm_while_bulk_approving_loses_no_acknowledged_decision(tmp_path):
    srv = make_server(tmp_path)
    srv.start()
    requests = srv.pending_payments(120)
    acknowledged: set[str] = set()
    errors: list[str] = []
    lock = threading.Lock()
    started = threading.Event()

    def approve(chunk: list[str], single: bool) -> None:
        with srv.client("alice", timeout=30) as c:
            for i in range(0, len(chunk), 1 if single else 4):
                ids = chunk[i:i + (1 if single else 4)]
                try:
                    if single:
                        r = c.post(f"/api/v1/approvals/{ids[0]}/approve", json={"inputs": {"approved": True}})
                        done = [ids[0]] if r.status_code == 200 else []
                    else:
                        r = c.post("/api/v1/approvals/bulk", json={"ids": ids, "verdict": "approve",
                                                                   "inputs": {"approved": True}})
                        done = [o["id"] for o in r.json()["outcomes"] if o["outcome"] == "decided"] \
                            if r.status_code == 200 else []
                except httpx.HTTPError:
                    return  # the server has stopped accepting
                if r.status_code >= 500:
                    errors.append(r.text)
                with lock:
                    acknowledged.update(done)
                started.set()

    threads = [threading.Thread(target=approve, args=(requests[k::4], k % 2 == 0)) for k in range(4)]
    for t in threads:
        t.start()
    assert started.wait(20)
    time.sleep(0.3)
    code = srv.stop()
    for t in threads:
        t.join(60)
    assert code == 0, srv.log
    assert not errors
    assert "Shutting down" in srv.log and "signoff serve: stopped" in srv.log
    assert acknowledged  # the shutdown came while decisions were being acknowledged

    srv.start()  # the same data dir: every acknowledged decision is there
    try:
        with srv.client("root-admin") as c:
            states = {}
            for i in range(0, len(requests), 100):
                chunk = requests[i:i + 100]
                states.update({s["id"]: s["state"] for s in
                               c.get("/api/v1/approvals", params={"ids": ",".join(chunk)}).json()["items"]})
        lost = [r for r in acknowledged if states.get(r) != "APPROVED"]
        assert not lost, lost
        # and the background runner continues the approved executions after the restart
        deadline = time.monotonic() + 30
        with srv.db() as db:
            while time.monotonic() < deadline:
                marks = ",".join("?" * len(acknowledged))
                left = db.execute(f"SELECT count(*) FROM requests r JOIN executions e ON e.id=r.execution_id "
                                  f"WHERE r.id IN ({marks}) AND e.state!='SUCCESS'", list(acknowledged)).fetchone()[0]
                if not left:
                    break
                time.sleep(0.2)
        assert left == 0
    finally:
        assert srv.stop() == 0
