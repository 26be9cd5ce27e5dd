"""The shared ops box (issue 12): several real OS accounts decide in one queue through
`signoff serve --socket`, which runs as a service account that alone can touch the database.

Real parts only: accounts and groups made with useradd/groupadd for this module (removed
afterwards), the server run as the service account with setpriv, every client the real
`signoff` program (or the real RemoteBackend / httpx) run as another account, the kernel
telling the server who connects (SO_PEERCRED).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

from signoff.engine.inputs import show_value
from tests.accounts import Accounts, interpreter_paths, python_as, reachable, root_available, run_as, user_env
from tests.socket_server import SocketServer

NS = "box.ops"
FLOWS = {
    "gate.yaml": f"""
        id: gate
        namespace: {NS}
        inputs:
          - id: what
            type: STRING
            required: false
            defaults: change
        tasks:
          - id: approve
            type: io.kestra.plugin.core.flow.Approval
            context:
              summary: "Apply {{{{ inputs.what }}}}?"
    """,
    "quorum.yaml": f"""
        id: quorum
        namespace: {NS}
        tasks:
          - id: approve
            type: io.kestra.plugin.core.flow.Approval
            required: 2
    """,
    "upload.yaml": f"""
        id: upload
        namespace: {NS}
        inputs:
          - id: doc
            type: FILE
        tasks:
          - id: approve
            type: io.kestra.plugin.core.flow.Approval
    """,
    "grouped.yaml": f"""
        id: grouped
        namespace: {NS}
        tasks:
          - id: approve
            type: io.kestra.plugin.core.flow.Approval
            assignment:
              groups: [unix:GROUP]
    """,
}


class Box:
    """The machine: accounts, the service's data directory, the server on its socket."""

    def __init__(self, base: Path, accounts: Accounts) -> None:
        self.base = base
        self.accounts = accounts
        self.approvers = accounts.group("appr")   # an OS group named by a task's assignment
        self.users_group = accounts.group("users")  # who may connect to the socket
        self.svc = accounts.user("svc", groups=(self.users_group,))
        self.alice = accounts.user("a", groups=(self.users_group,))
        self.bob = accounts.user("b", groups=(self.users_group,))
        self.carol = accounts.user("c", groups=(self.users_group, self.approvers))
        self.nobody = accounts.user("n", groups=(self.users_group,))  # may connect, has no role
        self.outsider = accounts.user("x")  # not in the socket's group
        self.etc = base / "etc"
        self.flows = self.etc / "flows"
        self.flows.mkdir(parents=True)
        for name, text in FLOWS.items():
            (self.flows / name).write_text(textwrap.dedent(text).replace("GROUP", self.approvers).lstrip())
        self.policy = self.etc / "policy.yaml"
        people = ", ".join(f"user:{a.name}" for a in (self.alice, self.bob, self.carol))
        self.policy.write_text(textwrap.dedent(f"""
            fourEyes: true
            bindings:
              - role: requester
                subjects: [{people}]
                namespaces: ["{NS}"]
              - role: approver
                subjects: [{people}]
                namespaces: ["{NS}"]
        """))
        for path in (self.etc, self.flows, self.policy, *self.flows.iterdir()):
            path.chmod(0o755 if path.is_dir() else 0o644)
        self.data = base / "lib"
        self.data.mkdir(mode=0o700)
        os.chown(self.data, self.svc.uid, self.svc.gid)
        self.run_dir = base / "run"
        self.run_dir.mkdir(mode=0o755)
        os.chown(self.run_dir, self.svc.uid, self.svc.gid)
        self.socket = self.run_dir / "signoff.sock"
        from tests.accounts import as_user

        self.server = SocketServer(self.socket, self.data, flows=self.flows, policy=self.policy,
                                   log_path=base / "server.log", prefix=as_user(self.svc, []),
                                   env=user_env(self.svc), extra_args=("--socket-group", self.users_group))

    def env(self, account, **extra: str) -> dict[str, str]:
        return user_env(account, SIGNOFF_SOCKET=str(self.socket), **extra)

    def cli(self, account, *args: str, env: dict[str, str] | None = None):
        return run_as(account, *args, env=env or self.env(account))

    def start(self, account, flow: str = "gate") -> tuple[str, str]:
        """Start ``flow`` as ``account`` and wait for its request: (execution id, request id)."""
        done = self.cli(account, "run", NS, flow, "--json")
        assert done.returncode == 0, done.stderr
        execution_id = json.loads(done.stdout)["id"]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # the server's runner reaches the approval task
            shown = self.cli(account, "executions", "show", execution_id, "--json")
            assert shown.returncode == 0, shown.stderr
            pending = [r["id"] for r in json.loads(shown.stdout)["requests"] if r["state"] == "PENDING"]
            if pending:
                return execution_id, pending[0]
            time.sleep(0.1)
        raise AssertionError(f"execution {execution_id} never reached its approval")

    def show(self, request_id: str) -> dict:
        done = self.cli(self.alice, "show", request_id, "--json")
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def audit(self, query: str, actor: str | None = None, limit: int = 200) -> list[dict]:
        """The audit trail, read by the service account from its own database (``actor``:
        only that account's events)."""
        done = run_as(self.svc, "--data-dir", str(self.data), "history", query, "--json", "--limit", str(limit),
                      env=user_env(self.svc, SIGNOFF_CONFIG_DIR=str(self.svc.home / "config")))
        assert done.returncode == 0, done.stderr
        return [e for e in json.loads(done.stdout) if actor is None or e["actor"] == actor]


@pytest.fixture(scope="module")
def box():
    assert root_available(), "the shared-box tests create OS accounts: run them as root (CI does)"
    # not under pytest's basetemp: pytest keeps that 0700, and every account must reach this
    base = Path(tempfile.mkdtemp(prefix="signoff-box-"))
    base.chmod(0o755)
    accounts = Accounts(base)
    try:
        with reachable(*interpreter_paths(), base):
            machine = Box(base, accounts)
            machine.server.start()
            try:
                yield machine
            finally:
                machine.server.stop()
    finally:
        try:
            accounts.remove()
        finally:
            shutil.rmtree(base, ignore_errors=True)


def test_files_socket_and_modes(box):
    st = box.socket.stat()
    assert oct(st.st_mode & 0o777) == oct(0o660) and st.st_gid == __import__("grp").getgrnam(box.users_group).gr_gid
    assert (box.data.stat().st_mode & 0o777) == 0o700
    for name in ("signoff.db", "signoff.db-wal", "signoff.db-shm"):
        info = (box.data / name).stat()
        assert (info.st_mode & 0o777, info.st_uid) == (0o600, box.svc.uid), name


def test_accounts_cannot_open_the_database(box):
    db = box.data / "signoff.db"
    probe = python_as(box.alice, textwrap.dedent(f"""
        import sqlite3
        for attempt in (lambda: open({str(db)!r}, "rb"), lambda: sqlite3.connect({str(db)!r}).execute("select 1")):
            try:
                attempt()
                print("OPENED")
            except (PermissionError, sqlite3.OperationalError) as exc:
                print("refused", type(exc).__name__)
    """))
    assert probe.returncode == 0, probe.stderr
    assert "OPENED" not in probe.stdout and probe.stdout.count("refused") == 2, probe.stdout
    # embedded mode on that directory: exit 2, a clear message naming the fix, no traceback
    done = box.cli(box.alice, "--data-dir", str(box.data), "pending", env=user_env(box.alice))
    assert done.returncode == 2, done.stderr
    assert "permission denied" in done.stderr and "signoff serve --socket" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_embedded_refuses_a_database_it_cannot_write(box):
    """The issue's reproduction: a 0777 directory holding another account's 0644 database."""
    shared = box.base / "shared-0777"
    shared.mkdir()
    shared.chmod(0o777)
    made = run_as(box.alice, "--data-dir", str(shared), "--flows", str(box.flows), "pending",
                  env=user_env(box.alice))
    assert made.returncode == 0, made.stderr
    (shared / "signoff.db").chmod(0o644)  # as an older signoff (or a umask) would have left it
    before = (shared / "signoff.db").read_bytes()
    done = run_as(box.bob, "--data-dir", str(shared), "--flows", str(box.flows), "pending", env=user_env(box.bob))
    assert done.returncode == 2
    assert "is not writable by this account" in done.stderr and "signoff serve --socket" in done.stderr, done.stderr
    assert (shared / "signoff.db").read_bytes() == before


def test_four_eyes_across_accounts(box):
    execution_id, request_id = box.start(box.alice)
    refused = box.cli(box.alice, "approve", request_id)
    assert refused.returncode == 1 and "four-eyes" in refused.stderr + refused.stdout
    done = box.cli(box.bob, "approve", request_id, "--json")
    assert done.returncode == 0, done.stderr
    [outcome] = json.loads(done.stdout)
    assert outcome["outcome"] == "decided"
    shown = box.show(request_id)
    assert shown["requested_by"] == box.alice.name
    assert [(d["by"], d["origin"]) for d in shown["decisions"]] == [(box.bob.name, f"socket uid={box.bob.uid}")]


def test_quorum_counts_distinct_accounts(box):
    _, request_id = box.start(box.alice, "quorum")
    first = box.cli(box.bob, "approve", request_id, "--json")
    assert first.returncode == 0, first.stderr
    assert box.show(request_id)["state"] == "PENDING"
    again = box.cli(box.bob, "approve", request_id, "--json")  # the same account twice counts once
    assert box.show(request_id)["state"] == "PENDING", again.stdout
    assert box.show(request_id)["approvals"] == 1
    done = box.cli(box.carol, "approve", request_id, "--json")
    assert done.returncode == 0, done.stderr
    shown = box.show(request_id)
    assert shown["state"] == "APPROVED"
    assert sorted(d["by"] for d in shown["decisions"]) == sorted([box.bob.name, box.carol.name])


def test_assignment_by_os_group(box):
    _, request_id = box.start(box.alice, "grouped")
    refused = box.cli(box.bob, "approve", request_id, "--json")
    assert refused.returncode == 1
    assert json.loads(refused.stdout)[0]["outcome"] == "not_eligible"
    done = box.cli(box.carol, "approve", request_id, "--json")  # carol is in the OS group
    assert done.returncode == 0, done.stderr
    assert box.show(request_id)["result"]["by"] == box.carol.name


def test_environment_variables_change_nobody(box):
    """bob claims to be carol every way the environment allows: he still acts as bob."""
    _, request_id = box.start(box.alice, "grouped")  # only carol's group may decide it
    env = box.env(box.bob, USER=box.carol.name, LOGNAME=box.carol.name, SIGNOFF_USER=box.carol.name,
                  SUDO_USER=box.carol.name)
    done = box.cli(box.bob, "approve", request_id, "--json", env=env)
    assert done.returncode == 1 and json.loads(done.stdout)[0]["outcome"] == "not_eligible"
    assert box.show(request_id)["state"] == "PENDING"


def test_headers_change_nobody(box):
    probe = python_as(box.bob, textwrap.dedent(f"""
        import httpx, json
        client = httpx.Client(transport=httpx.HTTPTransport(uds={str(box.socket)!r}), base_url="http://localhost")
        headers = {{"X-Forwarded-User": {box.carol.name!r}, "X-Remote-User": {box.carol.name!r},
                   "Remote-User": {box.carol.name!r}, "X-Forwarded-For": "10.0.0.9", "From": {box.carol.name!r}}}
        print(json.dumps(client.get("/api/v1/me", headers=headers).json()))
    """))
    assert probe.returncode == 0, probe.stderr
    me = json.loads(probe.stdout)
    assert me["name"] == box.bob.name and box.approvers not in me["groups"]


def test_anothers_token_on_the_socket_is_refused_and_audited(box):
    issued = run_as(box.svc, "--data-dir", str(box.data), "token", "issue", box.carol.name, "--json",
                    env=user_env(box.svc))
    assert issued.returncode == 0, issued.stderr
    token = json.loads(issued.stdout)
    _, request_id = box.start(box.alice, "grouped")
    probe = python_as(box.bob, textwrap.dedent(f"""
        import httpx
        client = httpx.Client(transport=httpx.HTTPTransport(uds={str(box.socket)!r}), base_url="http://localhost")
        r = client.post("/api/v1/approvals/{request_id}/approve", json={{}},
                        headers={{"Authorization": "Bearer {token['token']}"}})
        print(r.status_code, r.json()["detail"])
    """))
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.startswith("401 ") and "do not send a token" in probe.stdout
    assert box.show(request_id)["state"] == "PENDING"
    events = [e for e in box.audit("action:auth.refused", actor=box.bob.name)
              if e["data"].get("reason") == "token_on_socket"]
    assert events and events[0]["data"]["token_id"] == token["id"]
    assert events[0]["data"]["uid"] == box.bob.uid
    assert token["token"] not in json.dumps(box.audit("action:auth.refused"))
    # the client never sends one on the socket: SIGNOFF_TOKEN of another person changes nothing
    done = box.cli(box.bob, "approve", request_id, "--json", env=box.env(box.bob, SIGNOFF_TOKEN=token["token"]))
    assert done.returncode == 1 and json.loads(done.stdout)[0]["outcome"] == "not_eligible"


def test_a_body_naming_someone_is_refused_and_audited(box):
    _, request_id = box.start(box.alice, "grouped")
    probe = python_as(box.bob, textwrap.dedent(f"""
        import httpx
        client = httpx.Client(transport=httpx.HTTPTransport(uds={str(box.socket)!r}), base_url="http://localhost")
        r = client.post("/api/v1/approvals/{request_id}/approve", json={{"by": {box.carol.name!r}}})
        print(r.status_code)
    """))
    assert probe.stdout.strip() == "422", probe.stdout + probe.stderr
    assert box.show(request_id)["state"] == "PENDING"
    events = [e for e in box.audit("action:auth.refused", actor=box.bob.name)
              if e["data"].get("reason") == "identity_field"]
    assert events and events[0]["data"]["fields"] == ["by"]


def test_file_inputs_are_read_as_the_caller_never_as_the_service(box):
    """The service account can read its own database; an account that names that path (or
    any other) in a FILE input gets a 422 - the server never reads a path a caller names.
    The CLI reads the caller's own file, as the caller, and uploads it."""
    from urllib.parse import unquote, urlsplit

    probe = python_as(box.alice, textwrap.dedent(f"""
        import httpx
        client = httpx.Client(transport=httpx.HTTPTransport(uds={str(box.socket)!r}), base_url="http://localhost")
        r = client.post("/api/v1/executions", json={{"namespace": {NS!r}, "flow_id": "upload",
                                                     "inputs": {{"doc": {str(box.data / "signoff.db")!r}}}}})
        print(r.status_code, r.json()["errors"]["doc"])
    """))
    assert probe.stdout.startswith("422 Invalid input for `doc`, a path on the server cannot be given here"), (
        probe.stdout + probe.stderr)
    private = box.etc / "root-only.txt"  # alice can see it, not read it
    private.write_text("root's secret\n")
    private.chmod(0o600)
    done = box.cli(box.alice, "run", NS, "upload", "-i", f"doc={private}")
    assert done.returncode == 2, done.stderr
    shown = show_value(str(private))
    assert f"Invalid input for `doc`, the file is not readable, but received `{shown}`" in done.stderr
    own = box.alice.home / "change-list.txt"
    own.write_bytes(b"rotate keys on host-17\n")
    os.chown(own, box.alice.uid, box.alice.gid)
    own.chmod(0o600)
    done = box.cli(box.alice, "run", NS, "upload", "-i", f"doc={own}", "--json")
    assert done.returncode == 0, done.stderr
    uri = json.loads(done.stdout)["inputs"]["doc"]
    stored = Path(unquote(urlsplit(uri).path))
    assert stored.is_relative_to(box.data) and stored.read_bytes() == b"rotate keys on host-17\n"
    assert stored.stat().st_uid == box.svc.uid


def test_an_account_without_a_role_is_refused(box):
    done = box.cli(box.nobody, "pending")
    assert done.returncode == 1
    assert f"{box.nobody.name} (uid {box.nobody.uid}) has no role" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    events = box.audit("action:policy.denied", actor=box.nobody.name)
    assert events and events[0]["data"]["reason"] == "no_role"


def test_an_account_outside_the_socket_group_cannot_connect(box):
    done = box.cli(box.outsider, "pending")
    assert done.returncode == 1
    assert "Permission denied" in done.stderr and "group" in done.stderr, done.stderr


def test_the_local_server_is_found_by_config_and_flag(box):
    """$SIGNOFF_SOCKET was used above; `socket` in config.toml and --socket work the same."""
    config = box.bob.home / "config"
    config.mkdir(exist_ok=True)
    os.chown(config, box.bob.uid, box.bob.gid)
    (config / "config.toml").write_text(f'socket = "{box.socket}"\n')
    os.chown(config / "config.toml", box.bob.uid, box.bob.gid)
    try:
        for env, extra in ((user_env(box.bob), ()), (user_env(box.bob, SIGNOFF_CONFIG_DIR=str(box.base)),
                                                      ("--socket", str(box.socket)))):
            code = ("from signoff.console.cli import cli, backend\nimport click\n"
                    "@cli.command('whoami-test')\ndef w():\n    b = backend(check_token=True)\n"
                    "    print(b.identity, b.location)\n"
                    f"cli.main(args={[*extra, 'whoami-test']!r}, standalone_mode=False)\n")
            done = python_as(box.bob, code, env=env)
            assert done.returncode == 0, done.stderr
            assert done.stdout.strip() == f"{box.bob.name} local server ({box.socket})"
    finally:
        (config / "config.toml").unlink()


# -- a crash in the middle of a bulk approval over the socket -------------------------------------

BULK = 1200  # three slices of the client's DECIDE_SLICE (500)


def test_sigkill_mid_bulk_approve_loses_and_doubles_nothing(box):
    """bob bulk-approves 1,200 requests over the socket; the server is SIGKILLed once the first
    slice is acknowledged. Every acknowledged decision survives, nothing is decided twice,
    and the same bulk call (same idempotency key) afterwards finishes the rest exactly once."""
    started = python_as(box.alice, textwrap.dedent(f"""
        from signoff.console.remote import RemoteBackend
        b = RemoteBackend.local({str(box.socket)!r}, timeout=60)
        for i in range({BULK}):
            b.start_execution({NS!r}, "gate", {{"what": f"bulk-{{i}}"}})
    """), env=box.env(box.alice), timeout=300)
    assert started.returncode == 0, started.stderr
    ids = _wait_pending(box, BULK)
    key = "bulk-crash-" + box.accounts.tag
    script = textwrap.dedent(f"""
        import json, sys
        from signoff.console.remote import RemoteBackend
        ids = json.loads(sys.stdin.readline())
        b = RemoteBackend.local({str(box.socket)!r}, timeout=60)
        def progress(done, total):
            print("acked", done, flush=True)
        try:
            outcomes = b.decide(ids, "approve", reason="bulk", idempotency_key={key!r}, progress=progress)
        except Exception as exc:
            print("lost", exc, flush=True)
            sys.exit(3)
        print("outcomes", json.dumps([o.outcome for o in outcomes]), flush=True)
    """)
    from tests.accounts import as_user

    proc = subprocess.Popen(as_user(box.bob, [sys.executable, "-c", script]), env=box.env(box.bob),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd="/")
    assert proc.stdin and proc.stdout
    proc.stdin.write(json.dumps(ids) + "\n")
    proc.stdin.close()
    first = proc.stdout.readline()
    assert first.startswith("acked "), first + proc.stderr.read() if proc.stderr else first
    acked = int(first.split()[1])
    box.server.kill()  # SIGKILL while the next slice is on its way
    rest = proc.stdout.read()
    proc.wait(120)
    for line in rest.splitlines():  # a slice acknowledged just before the kill counts too
        if line.startswith("acked "):
            acked = int(line.split()[1])
    assert acked < BULK, f"the kill came too late to test anything: {rest}"
    box.server.start()
    states = _states(box, ids)
    assert all(states[i] == ("APPROVED", 1) for i in ids[:acked]), "an acknowledged decision was lost"
    assert all(s in (("APPROVED", 1), ("PENDING", 0)) for s in states.values())
    # the same call again: the stored outcomes for what was done, the rest decided once
    again = python_as(box.bob, script.replace("ids = json.loads(sys.stdin.readline())",
                                              f"ids = {json.dumps(ids)}"), env=box.env(box.bob), timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    states = _states(box, ids)
    assert set(states.values()) == {("APPROVED", 1)}
    approved = [e["request_id"] for e in box.audit("action:request.approved", limit=5000) if e["request_id"] in ids]
    assert sorted(approved) == sorted(ids), "a request was approved twice or not at all"


def _wait_pending(box, count: int, timeout: float = 120) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        done = python_as(box.bob, textwrap.dedent(f"""
            import json
            from signoff.console.remote import RemoteBackend
            b = RemoteBackend.local({str(box.socket)!r}, timeout=60)
            print(json.dumps([r["id"] for r in b.list_pending() if r["flow_id"] == "gate"
                              and r["summary"].startswith("Apply bulk-")]))
        """), env=box.env(box.bob))
        assert done.returncode == 0, done.stderr
        ids = json.loads(done.stdout)
        if len(ids) >= count or time.monotonic() > deadline:
            assert len(ids) == count, f"{len(ids)} of {count} requests pending"
            return ids
        time.sleep(0.5)


def _states(box, ids: list[str]) -> dict[str, tuple[str, int]]:
    done = python_as(box.bob, textwrap.dedent(f"""
        import json, sys
        from signoff.console.remote import RemoteBackend
        b = RemoteBackend.local({str(box.socket)!r}, timeout=60)
        ids = json.loads(sys.stdin.read())
        print(json.dumps({{s["id"]: [s["state"], s["approvals"]] for s in b.pending_summaries(ids)}}))
    """), env=box.env(box.bob), input=json.dumps(ids))
    assert done.returncode == 0, done.stderr
    return {k: tuple(v) for k, v in json.loads(done.stdout).items()}
