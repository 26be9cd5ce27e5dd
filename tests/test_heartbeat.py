"""Process heartbeats (engine.runtime.heartbeat): a lease held by a process on another host is
taken over once that process stops beating for longer than its bound, and never while it beats.

The "other host" is real: a `signoff worker` started in its own UTS namespace (``unshare
--uts``) with another host name, so its lease owner names a host where this process cannot
look up the pid. It advances an execution whose HTTP call hangs at a local listener, holding
the lease; it is then SIGKILLed. Both stores: the SQLite file (shared on one file system) and
the tests' PostgreSQL.
"""
from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from signoff.engine.core import Engine
from signoff.engine.identity import Identity
from signoff.engine.runtime import heartbeat, work
from signoff.engine.service import ApprovalService
from tests.fakes.http_listener import HttpListener
from tests.support import REPO, SIGNOFF, clean_env, write_flows

EVERY, DEAD_AFTER = 0.3, 2.0

FLOW = """
id: call
namespace: hb
tasks:
  - id: hook
    type: io.kestra.plugin.core.http.Request
    uri: "{url}/slow"
    method: POST
    body: "ping"
    timeout: PT60S
"""


def on_another_host(name: str, argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """``argv`` in a new UTS namespace whose host name is ``name`` (root: `unshare --uts`;
    otherwise in a user namespace as well)."""
    unshare = ["unshare", "--uts"] if os.geteuid() == 0 else ["unshare", "--user", "--map-root-user", "--uts"]
    script = 'hostname "$0" && exec "$@"'
    return subprocess.Popen([*unshare, "sh", "-c", script, name, *argv], env=env, cwd=REPO,
                            stdout=log.open("wb"), stderr=subprocess.STDOUT)


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request) -> str | None:
    return None if request.param == "sqlite" else request.getfixturevalue("pg_url")


def lease_owner(svc: ApprovalService, execution_id: str) -> str | None:
    row = svc.engine.db.query_one("SELECT lease_owner FROM work WHERE execution_id=?", (execution_id,))
    return None if row is None else row[0]


def test_a_silent_process_on_another_host_loses_its_lease_within_the_bound(tmp_path, database, monkeypatch) -> None:
    monkeypatch.setenv("SIGNOFF_HEARTBEAT_EVERY", str(EVERY))
    monkeypatch.setenv("SIGNOFF_HEARTBEAT_DEAD_AFTER", str(DEAD_AFTER))
    release = threading.Event()
    answered: list[str] = []

    def first_hangs(req) -> tuple[int, str]:
        answered.append(req.headers["Idempotency-Key"])
        if len(answered) == 1:  # the far worker's call: hangs until the end of the test
            release.wait(60)
        return 200, "done"

    with HttpListener() as listener:
        listener.respond("/slow", first_hangs)
        flows = write_flows(tmp_path / "flows", {"call.yaml": FLOW.format(url=listener.url)})
        data = tmp_path / "data"
        engine = Engine(data, [flows], database=database)
        svc = ApprovalService(engine, run_inline=False)
        execution_id = svc.start_execution(Identity("bob"), "hb", "call", {})["id"]

        store = ["--database", database] if database else []
        argv = [*SIGNOFF, "--data-dir", str(data), "--flows", str(flows), *store, "worker", "--interval", "0.05"]
        env = clean_env(SIGNOFF_HEARTBEAT_EVERY=str(EVERY), SIGNOFF_HEARTBEAT_DEAD_AFTER=str(DEAD_AFTER))
        far = on_another_host(f"far-{os.getpid()}", argv, env, tmp_path / "far.log")
        try:
            listener.wait_for(1, path="/slow", timeout=60)  # the far worker holds the lease, in its HTTP call
            owner = lease_owner(svc, execution_id)
            assert owner is not None and owner.startswith(f"far-{os.getpid()}:")
            assert not work.owner_is_dead(owner)  # another host: its pid means nothing here

            # while it beats, nobody takes it over, even long past the bound
            deadline = time.monotonic() + 2 * DEAD_AFTER
            while time.monotonic() < deadline:
                svc.tick()
                time.sleep(0.1)
            assert lease_owner(svc, execution_id) == owner
            assert len(listener.requests_to("/slow")) == 1

            far.send_signal(signal.SIGKILL)
            far.wait(30)
            killed_at = time.monotonic()
            while lease_owner(svc, execution_id) == owner and time.monotonic() - killed_at < DEAD_AFTER + 10:
                svc.tick()
                time.sleep(0.05)
            taken_after = time.monotonic() - killed_at
        finally:
            if far.poll() is None:
                far.kill()
                far.wait(30)
        release.set()
        calls = listener.requests_to("/slow")
    # taken over once the bound had passed, long before the 5-minute lease would have run out
    assert DEAD_AFTER - 2 * EVERY <= taken_after < DEAD_AFTER + 10, taken_after
    assert svc.get_execution(Identity("bob"), execution_id)["state"] == "SUCCESS"
    # the call cut by the kill was made again once, under the same key: the receiver can tell
    assert len(calls) == 2
    assert calls[0].headers["Idempotency-Key"] == calls[1].headers["Idempotency-Key"]
    engine.close()


def test_a_clean_stop_removes_the_beat_and_a_killed_one_ages_out(tmp_path, database, monkeypatch) -> None:
    monkeypatch.setenv("SIGNOFF_HEARTBEAT_EVERY", str(EVERY))
    monkeypatch.setenv("SIGNOFF_HEARTBEAT_DEAD_AFTER", str(DEAD_AFTER))
    engine = Engine(tmp_path / "data", database=database)
    heartbeat.ensure(engine.db)
    me = heartbeat.process_id()
    for _ in range(100):
        if engine.db.query_one("SELECT 1 FROM heartbeats WHERE process=?", (me,)):
            break
        time.sleep(0.05)
    conn = engine.db.connection()
    assert heartbeat.silent(conn, {me}) == set()
    # a process that beat long ago (killed): silent, wherever it ran
    with engine.db.write() as tx:
        tx.execute("INSERT INTO heartbeats(process, beat_at, dead_after) VALUES ('elsewhere:7:ab', 1000.0, 45.0)")
    assert heartbeat.silent(engine.db.connection(), {me, "elsewhere:7:ab", "never:1:00"}) == {"elsewhere:7:ab"}
    heartbeat.stop(engine.db)
    assert engine.db.query_one("SELECT 1 FROM heartbeats WHERE process=?", (me,)) is None
    engine.close()


@pytest.mark.parametrize(("every", "dead_after", "message"), [
    ("x", "45", "must be a number of seconds"),
    ("15", "20", "at least twice"),
    ("0", "45", "between 0.05 and 3600"),
])
def test_bad_heartbeat_settings_are_named(monkeypatch, every, dead_after, message) -> None:
    monkeypatch.setenv("SIGNOFF_HEARTBEAT_EVERY", every)
    monkeypatch.setenv("SIGNOFF_HEARTBEAT_DEAD_AFTER", dead_after)
    with pytest.raises(ValueError, match=message):
        heartbeat.settings()


def test_lease_owner_ids_name_their_process() -> None:
    with work.lease_holder() as owner:
        assert heartbeat.process_of(owner) == heartbeat.process_id()
    assert heartbeat.process_of("host:12:abcdef") is None  # an owner id of an older signoff
