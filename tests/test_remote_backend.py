"""The client side of server mode: credentials, `signoff login/logout`, errors over HTTP,
idempotent retries, the live event stream across a server restart, and TLS verification.

Servers are real `signoff serve` subprocesses on 127.0.0.1 (tests/contract/server.py).
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import httpx
import keyring
import pytest
from keyring.backends import fail

from signoff.console import credentials
from signoff.console.remote import AuthError, ConnectionLost, RemoteBackend
from signoff.engine.errors import NotFound, UsageError
from tests.contract.server import NS, ServerProcess, free_port, make_certs, run_cli

FAKE_KEYRING = "tests.contract.keyring_fake.FileKeyring"


# -- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = ServerProcess(tmp_path_factory.mktemp("client-server"))
    srv.tokens = {name: srv.issue_token(name) for name in ("alice", "bob")}
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def file_keyring(tmp_path, monkeypatch):
    """The test keyring backend, in this process and (through the env) in subprocesses."""
    from tests.contract.keyring_fake import FileKeyring

    path = tmp_path / "keyring.json"
    monkeypatch.setenv("SIGNOFF_TEST_KEYRING", str(path))
    previous = keyring.get_keyring()
    keyring.set_keyring(FileKeyring())
    yield path
    keyring.set_keyring(previous)


@pytest.fixture
def no_keyring():
    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    yield
    keyring.set_keyring(previous)


def cli_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    from tests.contract.server import child_env

    config = tmp_path / "client-config"
    config.mkdir(exist_ok=True)
    return child_env(config, **extra)


def start_gate(backend: RemoteBackend, flow: str = "comment_gate") -> tuple[str, str]:
    execution = backend.start_execution(NS, flow, {})
    end = time.monotonic() + 15
    while time.monotonic() < end:
        requests = [r["id"] for r in backend.get_execution(execution["id"])["requests"] if r["state"] == "PENDING"]
        if requests:
            return execution["id"], requests[0]
        time.sleep(0.05)
    raise AssertionError("no pending request")


# -- credentials ----------------------------------------------------------------------------------


def test_token_file_must_be_private(tmp_path, monkeypatch):
    monkeypatch.delenv("SIGNOFF_TOKEN", raising=False)
    token_file = tmp_path / "token"
    token_file.write_text("so_aaaaaaaaaaaa_from-the-file-0123456789\n")
    token_file.chmod(0o644)
    with pytest.raises(UsageError) as err:
        credentials.resolve_token("https://signoff.example:8750", token_file)
    assert "mode 0644" in str(err.value) and f"chmod 600 {token_file}" in str(err.value)
    assert "so_aaaa" not in str(err.value)
    token_file.chmod(0o600)
    assert credentials.resolve_token("https://signoff.example:8750", token_file) == \
        "so_aaaaaaaaaaaa_from-the-file-0123456789"
    token_file.chmod(0o400)  # stricter is fine
    assert credentials.read_token_file(token_file) == "so_aaaaaaaaaaaa_from-the-file-0123456789"


def test_token_file_problems_are_clear(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        credentials.read_token_file(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.write_text("\n")
    empty.chmod(0o600)
    with pytest.raises(UsageError, match="is empty"):
        credentials.read_token_file(empty)
    with pytest.raises(UsageError, match="not a regular file"):
        credentials.read_token_file(tmp_path)


def test_token_order_file_then_env_then_keyring(tmp_path, monkeypatch, file_keyring):
    url = "https://signoff.example:8750"
    credentials.save_token(url + "/", "so_kkkkkkkkkkkk_from-the-keyring-0123456789")
    monkeypatch.delenv("SIGNOFF_TOKEN", raising=False)
    assert credentials.resolve_token(url) == "so_kkkkkkkkkkkk_from-the-keyring-0123456789"
    monkeypatch.setenv("SIGNOFF_TOKEN", "so_eeeeeeeeeeee_from-the-env-0123456789")
    assert credentials.resolve_token(url) == "so_eeeeeeeeeeee_from-the-env-0123456789"
    token_file = tmp_path / "token"
    token_file.write_text("so_ffffffffffff_from-the-file-0123456789")
    token_file.chmod(0o600)
    assert credentials.resolve_token(url, token_file) == "so_ffffffffffff_from-the-file-0123456789"
    # the keyring entry is per server URL
    monkeypatch.delenv("SIGNOFF_TOKEN")
    with pytest.raises(AuthError) as err:
        credentials.resolve_token("https://other.example")
    assert "signoff login https://other.example" in str(err.value)
    assert credentials.delete_token(url) is True
    assert credentials.delete_token(url) is False


def test_without_keyring_saving_says_so_and_offers_alternatives(monkeypatch, no_keyring):
    monkeypatch.delenv("SIGNOFF_TOKEN", raising=False)
    with pytest.raises(UsageError) as err:
        credentials.save_token("https://signoff.example", "so_xxxxxxxxxxxx_secret-secret-secret-1234")
    message = str(err.value)
    assert "no OS keyring" in message and "SIGNOFF_TOKEN" in message and "--token-file" in message
    assert "secret-secret" not in message
    with pytest.raises(AuthError) as missing:
        credentials.resolve_token("https://signoff.example")
    assert "no OS keyring" in str(missing.value) and "signoff login https://signoff.example" in str(missing.value)
    monkeypatch.setenv("SIGNOFF_TOKEN", "so_eeeeeeeeeeee_from-the-env-0123456789")
    assert credentials.resolve_token("https://signoff.example") == "so_eeeeeeeeeeee_from-the-env-0123456789"


def test_login_without_keyring_backend_cli(tmp_path, server):
    env = cli_env(tmp_path, PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring")
    done = run_cli("login", server.url, env=env, input=server.tokens["alice"] + "\n")
    assert done.returncode == 2, done.stderr
    assert "no OS keyring is available" in done.stderr
    assert "SIGNOFF_TOKEN" in done.stderr and "--token-file" in done.stderr
    assert server.tokens["alice"] not in done.stdout + done.stderr


# -- login / logout ------------------------------------------------------------------------------


def test_login_checks_the_token_and_keeps_it_in_the_keyring(tmp_path, server, file_keyring):
    env = cli_env(tmp_path, PYTHON_KEYRING_BACKEND=FAKE_KEYRING, SIGNOFF_TEST_KEYRING=str(file_keyring))
    token = server.tokens["alice"]
    done = run_cli("login", server.url + "/", env=env, input=token + "\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"logged in to {server.url} as alice"
    assert token not in done.stdout + done.stderr
    assert json.loads(file_keyring.read_text()) == {f"signoff\0{server.url}": token}
    # the CLI's stored token is what the client resolves
    assert credentials.resolve_token(server.url) == token
    with RemoteBackend(server.url, credentials.resolve_token(server.url)) as backend:
        assert backend.identity == "alice"
        assert backend.location == server.url
    # logout, twice
    done = run_cli("logout", server.url, env=env)
    assert (done.returncode, done.stdout.strip()) == (0, f"logged out of {server.url}")
    done = run_cli("logout", server.url, env=env)
    assert (done.returncode, done.stdout.strip()) == (0, f"no token was stored for {server.url}")
    # logout without URL uses SIGNOFF_SERVER, and asks when there is none
    assert run_cli("logout", env={**env, "SIGNOFF_SERVER": server.url}).returncode == 0
    nothing = run_cli("logout", env=env)
    assert nothing.returncode == 2 and "signoff logout URL" in nothing.stderr


def test_login_refuses_a_bad_token_and_stores_nothing(tmp_path, server, file_keyring):
    env = cli_env(tmp_path, PYTHON_KEYRING_BACKEND=FAKE_KEYRING, SIGNOFF_TEST_KEYRING=str(file_keyring))
    bad = "so_aaaaaaaaaaaa_notarealsecretnotarealsecret00"
    done = run_cli("login", server.url, env=env, input=bad + "\n")
    assert done.returncode == 1
    assert f"signoff login {server.url}" in done.stderr and "did not accept the token" in done.stderr
    assert bad not in done.stdout + done.stderr
    assert not file_keyring.exists()
    empty = run_cli("login", server.url, env=env, input="\n")
    assert empty.returncode == 2 and "no token given" in empty.stderr


def test_login_never_takes_the_token_as_an_argument(tmp_path, server):
    env = cli_env(tmp_path, PYTHON_KEYRING_BACKEND=FAKE_KEYRING)
    done = run_cli("login", server.url, server.tokens["alice"], env=env, input="")
    assert done.returncode == 2  # click: unexpected extra argument
    assert server.tokens["alice"] not in done.stdout


# -- errors over HTTP --------------------------------------------------------------------------------


def test_errors_map_to_the_engine_errors(server):
    with pytest.raises(AuthError) as err:
        RemoteBackend(server.url, "so_aaaaaaaaaaaa_wrongwrongwrongwrongwrong00")
    assert f"signoff login {server.url}" in str(err.value)
    assert "wrongwrong" not in str(err.value)
    with RemoteBackend(server.url, server.tokens["alice"]) as alice:
        with pytest.raises(NotFound, match="no execution `e-nope`"):
            alice.get_execution("e-nope")
        with pytest.raises(UsageError):
            alice.history("since:notadate")
        assert "so_" not in repr(alice)
        with pytest.raises(UsageError, match="larger than"):  # 413
            alice.validate("r-any", {"blob": "x" * 1_200_000})
        me = alice.me()
        assert me["name"] == "alice" and "groups" in me and "roles" in me


def test_unreachable_server_is_connection_lost():
    url = f"http://127.0.0.1:{free_port()}"
    start = time.monotonic()
    with pytest.raises(ConnectionLost) as err:
        RemoteBackend(url, "so_aaaaaaaaaaaa_whatever-whatever-whatever", timeout=2)
    assert f"cannot reach the signoff server at {url}" in str(err.value)
    assert time.monotonic() - start < 10
    with pytest.raises(UsageError, match="must look like"):
        RemoteBackend("ftp://example.com", "x")


def test_extra_calls_list_executions_and_kv(server):
    with RemoteBackend(server.url, server.tokens["bob"]) as bob:
        execution = bob.start_execution(NS, "no_gate", {"greeting": "kv"})
        assert execution["id"] in [e["id"] for e in bob.list_executions(limit=50)]
        bob.kv_set(NS, "TARGET", {"endpoint": "https://x"})
        with pytest.raises(UsageError):
            bob.list_executions(state="SLEEPING")
        flow = bob.get_flow(NS, "no_gate")
        assert flow["id"] == "no_gate" and "source" in flow


def test_list_pending_follows_cursors(server, monkeypatch):
    import signoff.console.remote as remote

    with RemoteBackend(server.url, server.tokens["bob"]) as bob, \
            RemoteBackend(server.url, server.tokens["alice"]) as alice:
        made = [start_gate(bob)[1] for _ in range(5)]
        everything = [r["id"] for r in alice.list_pending()]
        monkeypatch.setattr(remote, "PAGE", 2)
        paged = [r["id"] for r in alice.list_pending()]
        assert paged == everything and set(made) <= set(paged)


def test_history_and_export_follow_audit_cursors(server, monkeypatch):
    import signoff.console.remote as remote

    with RemoteBackend(server.url, server.tokens["bob"]) as bob, \
            RemoteBackend(server.url, server.tokens["alice"]) as alice:
        for _ in range(6):  # >= 12 events of its own: the other tests may run on another worker
            start_gate(bob)
        head = alice.history("", limit=1)[0]["seq"]
        whole = alice.history("", limit=1000, before_seq=head + 1)
        exported = [e["seq"] for e in alice.export_audit("") if e["seq"] <= head]
        monkeypatch.setattr(remote, "AUDIT_PAGE", 4)
        assert alice.history("", limit=1000, before_seq=head + 1) == whole
        assert alice.history("", limit=10, before_seq=head + 1) == whole[:10]
        assert [e["seq"] for e in alice.export_audit("") if e["seq"] <= head] == exported
        assert exported == sorted(e["seq"] for e in whole) and len(exported) > 10


def test_decide_retries_a_lost_slice_once_with_the_same_key(server):
    """The server decided, the answer was lost: the retry gets the stored outcomes."""
    with RemoteBackend(server.url, server.tokens["bob"]) as bob, \
            RemoteBackend(server.url, server.tokens["alice"]) as alice:
        e1, r1 = start_gate(bob)
        real = alice._http_once
        sent: list[dict] = []

        class LoseFirstAnswer:
            def request(self, method, path, **kw):
                response = real.request(method, path, **kw)
                sent.append(kw.get("json"))
                if len(sent) == 1:
                    raise httpx.ReadError("connection reset while reading the answer")
                return response

            def close(self):
                real.close()

        alice._http_once = LoseFirstAnswer()
        outcomes = alice.decide([r1], "approve", reason="once")
        assert [(o.outcome, o.state) for o in outcomes] == [("decided", "APPROVED")]
        assert len(sent) == 2 and sent[0] == sent[1]
        assert sent[0]["idempotency_key"].endswith(":0")
        request = alice.get_request(r1)
        assert [d["by"] for d in request["decisions"]] == ["alice"]

        class AlwaysLost:
            def request(self, method, path, **kw):
                raise httpx.ConnectError("connection refused")

            def close(self):
                real.close()

        alice._http_once = AlwaysLost()
        with pytest.raises(ConnectionLost):
            alice.decide([r1], "approve")
        alice._http_once = real


def test_decide_uses_slices_with_sub_keys(server, monkeypatch):
    import signoff.console.remote as remote

    monkeypatch.setattr(remote, "DECIDE_SLICE", 2)
    with RemoteBackend(server.url, server.tokens["bob"]) as bob, \
            RemoteBackend(server.url, server.tokens["alice"]) as alice:
        ids = [start_gate(bob)[1] for _ in range(3)]
        keys: list[str] = []
        real = alice._http_once.request

        def spy(method, path, **kw):
            keys.append(kw["json"]["idempotency_key"])
            return real(method, path, **kw)

        monkeypatch.setattr(alice._http_once, "request", spy)
        progress: list[tuple[int, int]] = []
        outcomes = alice.decide(ids, "deny", reason="sliced", idempotency_key="k1",
                                progress=lambda done, total: progress.append((done, total)) or True)
        assert [o.outcome for o in outcomes] == ["decided"] * 3
        assert keys == ["k1:0", "k1:1"] and progress == [(2, 3), (3, 3)]
        # the same call again answers the stored outcomes
        assert alice.decide(ids, "deny", reason="sliced", idempotency_key="k1") == outcomes


# -- TLS ---------------------------------------------------------------------------------------------


def test_tls_is_verified(tmp_path):
    ca, cert, key = make_certs(tmp_path / "certs")
    srv = ServerProcess(tmp_path / "tls", tls=(cert, key), ca_cert=ca)
    token = srv.issue_token("alice")
    with srv:
        assert srv.url.startswith("https://")
        with pytest.raises(ConnectionLost) as err:
            RemoteBackend(srv.url, token)
        assert "certificate" in str(err.value) and "--ca-cert" in str(err.value)
        with RemoteBackend(srv.url, token, ca_cert=str(ca)) as alice:
            assert alice.identity == "alice"
            assert alice.list_flows()
            # the change feed the console polls works over TLS
            assert alice.changes(alice.last_change()) == []
        with pytest.raises(UsageError, match="cannot use CA certificate"):
            RemoteBackend(srv.url, token, ca_cert=str(tmp_path / "nope.pem"))
        # the CLI: refused without the CA, accepted with --ca-cert
        env = cli_env(tmp_path, PYTHON_KEYRING_BACKEND=FAKE_KEYRING, SIGNOFF_TEST_KEYRING=str(tmp_path / "kr.json"))
        refused = run_cli("login", srv.url, env=env, input=token + "\n")
        assert refused.returncode == 1 and "--ca-cert" in refused.stderr
        done = run_cli("login", srv.url, "--ca-cert", str(ca), env=env, input=token + "\n")
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == f"logged in to {srv.url} as alice"
        assert os.stat(tmp_path / "kr.json").st_mode & 0o077 == 0
