"""A real `signoff serve` subprocess on 127.0.0.1 for the server tests.

The session fixture ``server`` starts one server (policy + flows from tests/server/data, a
fresh data dir) after issuing tokens with the real CLI:

    root-admin  admin everywhere            alice  approver of company.finance
    bob         approver of company.ops     victor viewer everywhere
    rita        requester of company.finance (starts the executions, so four-eyes lets
                                              alice and root-admin approve them)
    revoked     alice's token, revoked      expired alice's token, expired (PT1S)

Failed authentications are slowed down per client address, so tests that send bad tokens
do it from their own loopback address (``fresh_address()``: 127.x.y.z), never from
127.0.0.1 which the rest of the suite shares.
"""
from __future__ import annotations

import re
import shutil
import signal
import sqlite3
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import SIGNOFF, clean_env, fresh_address, wait_listening

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parent / "data"
POLICY = DATA / "policy.yaml"
FLOWS = DATA / "flows"
USERS = ("root-admin", "alice", "bob", "victor", "rita")

#: what the server tests import from here (fresh_address lives in tests/support.py)
__all__ = ["Server", "both_stores", "cli_env", "fresh_address", "issue_token", "make_server", "signoff"]


def cli_env(data_dir: Path, config_dir: Path) -> dict[str, str]:
    return clean_env(SIGNOFF_DATA_DIR=str(data_dir), SIGNOFF_CONFIG_DIR=str(config_dir), PYTHONUNBUFFERED="1")


def signoff(args: list[str], env: dict[str, str], *, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([*SIGNOFF, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def issue_token(user: str, env: dict[str, str], *extra: str) -> str:
    done = signoff(["token", "issue", user, *extra], env)
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    assert re.fullmatch(r"so_[0-9a-z]{12}_[A-Za-z0-9_-]{43}", token), token
    return token


@dataclass
class Server:
    """One `signoff serve` process."""

    base: Path
    args: list[str]
    env: dict[str, str]
    verify: Any = True
    proc: subprocess.Popen | None = None
    url: str = ""
    tokens: dict[str, str] = field(default_factory=dict)
    log_path: Path | None = None

    @property
    def data_dir(self) -> Path:
        return Path(self.env["SIGNOFF_DATA_DIR"])

    def start(self, timeout: float = 30) -> Server:
        self.log_path = self.base / f"serve-{int(time.time() * 1000)}.log"
        log = open(self.log_path, "w")
        self.proc = subprocess.Popen([*SIGNOFF, "serve", "--port", "0", *self.args],
                                     env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        self.url = wait_listening(self.proc, self.log_path, timeout=timeout, verify=self.verify)
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 40) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"signoff serve did not stop after SIGTERM:\n{self.log}") from None

    @property
    def log(self) -> str:
        return self.log_path.read_text() if self.log_path else ""

    # -- clients -------------------------------------------------------------------------
    def client(self, who: str | None = None, *, token: str | None = None, address: str | None = None,
               timeout: float = 30, **kw: Any) -> httpx.Client:
        headers = dict(kw.pop("headers", {}))
        value = token if token is not None else (self.tokens[who] if who else None)
        if value is not None:
            headers["Authorization"] = f"Bearer {value}"
        if address:
            kw["transport"] = httpx.HTTPTransport(local_address=address, verify=self.verify)
        else:
            kw["verify"] = self.verify
        return httpx.Client(base_url=self.url, headers=headers, timeout=timeout, **kw)

    def db(self) -> Any:
        """A connection of its own to the server's database: the SQLite file, or the
        PostgreSQL database (``$SIGNOFF_DATABASE_URL``) with the same ``?`` placeholders and rows."""
        url = self.env.get("SIGNOFF_DATABASE_URL")
        if url:
            return PgConnection(url)
        conn = sqlite3.connect(self.data_dir / "signoff.db", timeout=30)
        conn.row_factory = sqlite3.Row
        return conn

    # -- data ----------------------------------------------------------------------------
    def start_payment(self, amount: int = 10, *, who: str = "rita") -> str:
        with self.client(who) as c:
            r = c.post("/api/v1/executions", json={"namespace": "company.finance", "flow_id": "payment",
                                                   "inputs": {"amount": amount}})
            assert r.status_code == 201, r.text
            return r.json()["id"]

    def wait_request(self, execution_id: str, *, who: str = "root-admin", timeout: float = 20) -> str:
        """The id of the approval request the background runner opens for an execution."""
        deadline = time.monotonic() + timeout
        with self.client(who) as c:
            while time.monotonic() < deadline:
                r = c.get(f"/api/v1/executions/{execution_id}")
                assert r.status_code == 200, r.text
                pending = [q["id"] for q in r.json()["requests"] if q["state"] == "PENDING"]
                if pending:
                    return pending[0]
                time.sleep(0.05)
        raise AssertionError(f"execution {execution_id} opened no request")

    def pending_payments(self, count: int, amount: int = 10) -> list[str]:
        executions = [self.start_payment(amount) for _ in range(count)]
        return [self.wait_request(e) for e in executions]

    def start_restart(self) -> str:
        """A pending request in company.ops (started by root-admin)."""
        with self.client("root-admin") as c:
            r = c.post("/api/v1/executions", json={"namespace": "company.ops", "flow_id": "restart", "inputs": {}})
            assert r.status_code == 201, r.text
            return self.wait_request(r.json()["id"])


class PgConnection:
    """sqlite3's ``execute``/context-manager surface over a PostgreSQL connection (tests only)."""

    def __init__(self, url: str) -> None:
        import psycopg

        from signoff.engine.store.pg import _row_factory

        self.conn = psycopg.connect(url, autocommit=True, row_factory=_row_factory)

    def execute(self, sql: str, params: Any = ()) -> Any:
        from signoff.engine.store.sqltext import to_psycopg

        return self.conn.execute(to_psycopg(sql), params)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> PgConnection:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def make_server(base: Path, *, args: list[str] | None = None, policy: bool = True, tokens: bool = True,
                verify: Any = True) -> Server:
    """A server (not started) with its own data dir, the test flows and policy, and tokens."""
    data_dir = base / "data"
    config_dir = base / "config"
    config_dir.mkdir(parents=True, exist_ok=True)
    flows = base / "flows"
    if not flows.exists():
        shutil.copytree(FLOWS, flows)
    env = cli_env(data_dir, config_dir)
    server_args = ["--flows", str(flows)]
    if policy:
        server_args += ["--policy", str(POLICY)]
    server = Server(base=base, args=server_args + list(args or []), env=env, verify=verify)
    if tokens:
        for user in USERS:
            server.tokens[user] = issue_token(user, env, "--name", f"{user} (tests)")
    return server


def add_bad_tokens(srv: Server) -> None:
    """alice's token revoked, alice's token expired, a well-formed token nobody issued."""
    srv.tokens["revoked"] = issue_token("alice", srv.env, "--name", "to revoke")
    token_id = srv.tokens["revoked"].split("_")[1]
    done = signoff(["token", "revoke", token_id], srv.env)
    assert done.returncode == 0 and "revoked" in done.stdout, done.stderr
    srv.tokens["expired"] = issue_token("alice", srv.env, "--expires", "PT1S")
    time.sleep(1.1)
    srv.tokens["wrong"] = "so_" + "a" * 12 + "_" + "b" * 43


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory, pg_cluster) -> Server:
    """The same server on the tests' PostgreSQL (``$SIGNOFF_DATABASE_URL``, so the CLI's
    tokens go there too). Modules that run on both stores override ``server`` with
    :func:`both_stores`."""
    base = tmp_path_factory.mktemp("pgserver")
    srv = make_server(base, tokens=False)
    srv.env["SIGNOFF_DATABASE_URL"] = pg_cluster.new_database("server")
    for user in USERS:
        srv.tokens[user] = issue_token(user, srv.env, "--name", f"{user} (tests)")
    add_bad_tokens(srv)
    srv.start()
    yield srv
    code = srv.stop()
    assert code == 0, srv.log


def both_stores(request: pytest.FixtureRequest, sqlite_server: Server) -> Server:
    """For a module-level ``server`` fixture parametrized ``["sqlite", "postgresql"]``."""
    return sqlite_server if request.param == "sqlite" else request.getfixturevalue("pg_server")


@pytest.fixture(scope="session")
def server(tmp_path_factory) -> Server:
    base = tmp_path_factory.mktemp("server")
    srv = make_server(base)
    add_bad_tokens(srv)
    srv.start()
    yield srv
    code = srv.stop()
    assert code == 0, srv.log
