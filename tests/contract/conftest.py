"""Fixtures of the contract suite: the same world behind both backends.

A *world* is one engine with the flows of ``tests/contract/flows`` and the policy
``tests/contract/policy.yaml`` (alice and bob admins, carol viewer, four-eyes on), seen
through three backends, one per person:

* ``local``: an in-process `ApprovalService` on a temp data dir, through `LocalBackend`;
* ``remote``: a real `signoff serve` subprocess on 127.0.0.1 with tokens issued by
  `signoff token issue`, through `RemoteBackend`;
* ``local_pg`` and ``remote_pg``: the same two on PostgreSQL (the tests' throwaway cluster,
  tests/pgcluster.py, one database per world) instead of the SQLite file;
* ``socket``: a real `signoff serve --socket` subprocess, alice, bob and carol three real OS
  accounts whose identity the server gets from the kernel, through `RemoteBackend` on Unix
  sockets (tests/socket_world.py).

Worlds live for the whole session (a server start is not free); each test works only with
the executions and requests it creates itself, so tests stay independent.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.contract.server import FLOWS, NS, POLICY, ServerProcess

ENDED = {"SUCCESS", "WARNING", "FAILED", "KILLED", "CANCELLED"}


@dataclass
class World:
    kind: str
    alice: Any
    bob: Any
    carol: Any
    server: ServerProcess | None = None
    closers: list = field(default_factory=list)
    #: the accounts' uids (socket world): the audit's origin is "socket uid=N"
    uids: dict[str, int] = field(default_factory=dict)

    def origin(self, person: str) -> str:
        """How a decision by ``person`` through this world is recorded in the audit."""
        if self.kind == "socket":
            return f"socket uid={self.uids[person]}"
        return "console" if self.kind.startswith("local") else "http 127.0.0.1"

    def wait_execution(self, execution_id: str, states: set[str] = ENDED, timeout: float = 15.0) -> dict[str, Any]:
        """Poll until the execution is in one of ``states`` (the server's runner is asynchronous)."""
        end = time.monotonic() + timeout
        while True:
            execution = self.bob.get_execution(execution_id)
            if execution["state"] in states:
                return execution
            if time.monotonic() > end:
                raise AssertionError(f"{self.kind}: execution {execution_id} stayed {execution['state']}")
            time.sleep(0.05)

    def wait_request(self, execution_id: str, timeout: float = 15.0) -> str:
        """The id of the pending request the execution is waiting on."""
        end = time.monotonic() + timeout
        while True:
            execution = self.bob.get_execution(execution_id)
            pending = [r["id"] for r in execution["requests"] if r["state"] == "PENDING"]
            if pending:
                return pending[0]
            if time.monotonic() > end or execution["state"] in ENDED:
                raise AssertionError(f"{self.kind}: execution {execution_id} has no pending request "
                                     f"(state {execution['state']})")
            time.sleep(0.05)

    def gate(self, flow: str = "form_gate", inputs: dict[str, Any] | None = None, by: str = "bob") -> tuple[str, str]:
        """Start ``flow`` as ``by`` and wait for its approval request: (execution id, request id)."""
        backend = getattr(self, by)
        if inputs is None:
            inputs = {"who": "x"} if flow == "form_gate" else {}
        execution = backend.start_execution(NS, flow, inputs)
        return execution["id"], self.wait_request(execution["id"])

    def close(self) -> None:
        for close in reversed(self.closers):
            close()


def _local_world(tmp_path_factory, database: str | None = None) -> World:
    from signoff.console.backend import LocalBackend
    from signoff.engine.core import Engine
    from signoff.engine.identity import Identity
    from signoff.engine.policy import load_policy
    from signoff.engine.service import ApprovalService

    root = tmp_path_factory.mktemp("local-world")
    engine = Engine(root / "data", [FLOWS], policy=load_policy(POLICY), database=database)
    service = ApprovalService(engine)
    people = {name: LocalBackend(service, Identity(name, (), source="token")) for name in ("alice", "bob", "carol")}
    world = World("local" if database is None else "local_pg", **people)
    world.closers.append(engine.close)
    return world


def _remote_world(tmp_path_factory, database: str | None = None) -> World:
    from signoff.console.remote import RemoteBackend

    server = ServerProcess(tmp_path_factory.mktemp("remote-world"), database=database)
    tokens = {name: server.issue_token(name) for name in ("alice", "bob", "carol")}
    server.start()
    people = {name: RemoteBackend(server.url, token, timeout=30.0) for name, token in tokens.items()}
    world = World("remote" if database is None else "remote_pg", **people, server=server)
    world.closers.append(server.stop)
    world.closers.extend(b.close for b in people.values())
    return world


def _socket_world() -> World:
    import shutil
    import tempfile
    from pathlib import Path

    from signoff.console.remote import RemoteBackend
    from tests.accounts import Accounts, interpreter_paths, reachable
    from tests.socket_server import SocketServer
    from tests.socket_world import Relay, Renamed, renamer

    base = Path(tempfile.mkdtemp(prefix="signoff-socket-world-"))  # not pytest's 0700 basetemp
    base.chmod(0o755)
    accounts = Accounts(base)
    world = World("socket", None, None, None)
    world.closers.append(lambda: shutil.rmtree(base, ignore_errors=True))
    world.closers.append(accounts.remove)
    try:
        people = {name: accounts.user(name[0]) for name in ("alice", "bob", "carol")}
        text = POLICY.read_text()
        for name, account in people.items():
            text = text.replace(f"user:{name}", f"user:{account.name}")
        policy = base / "policy.yaml"
        policy.write_text(text)
        server = SocketServer(base / "signoff.sock", base / "data", flows=FLOWS, policy=policy,
                              log_path=base / "server.log")
        server.start()
        world.closers.append(server.stop)
        unreach = reachable(*interpreter_paths())
        unreach.__enter__()
        world.closers.append(lambda: unreach.__exit__(None, None, None))
        names = {a.name: name for name, a in people.items()}
        rename = renamer(names)
        for name, account in people.items():
            relay = Relay(account, base / f"relay-{name}", server.socket_path)
            world.closers.append(relay.stop)
            backend = RemoteBackend.local(str(relay.path), timeout=30.0)
            world.closers.append(backend.close)
            setattr(world, name, Renamed(backend, rename, names))
            world.uids[name] = account.uid
    except BaseException:
        world.close()
        raise
    return world


@pytest.fixture(scope="session")
def socket_world():
    world = _socket_world()
    yield world
    world.close()


@pytest.fixture(scope="session")
def local_world(tmp_path_factory):
    world = _local_world(tmp_path_factory)
    yield world
    world.close()


@pytest.fixture(scope="session")
def remote_world(tmp_path_factory):
    world = _remote_world(tmp_path_factory)
    yield world
    world.close()


@pytest.fixture(scope="session")
def local_pg_world(tmp_path_factory, pg_cluster):
    world = _local_world(tmp_path_factory, pg_cluster.new_database("contract_local"))
    yield world
    world.close()


@pytest.fixture(scope="session")
def remote_pg_world(tmp_path_factory, pg_cluster):
    world = _remote_world(tmp_path_factory, pg_cluster.new_database("contract_remote"))
    yield world
    world.close()


@pytest.fixture(params=["local", "remote", "local_pg", "remote_pg", "socket"])
def world(request) -> World:
    return request.getfixturevalue(f"{request.param}_world")
