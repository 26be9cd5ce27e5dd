"""State that lived in one process or on one host, shared by the replicas of one PostgreSQL
database (README "High availability"): the failed-authentication throttle, counted across two
real `signoff serve` replicas; FILE inputs, read by a replica that never saw the upload.
"""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from signoff.engine.core import Engine
from signoff.engine.identity import Identity
from signoff.engine.service import ApprovalService
from signoff.engine.store import open_database
from tests.server.conftest import fresh_address, issue_token, make_server
from tests.support import write_flows


@pytest.fixture
def two_replicas(tmp_path: Path, pg_url: str):
    """Two `signoff serve` processes, each with its own data directory, on one database."""
    servers = []
    for name in ("a", "b"):
        srv = make_server(tmp_path / name, tokens=False, args=["--database", pg_url])
        srv.env["SIGNOFF_DATABASE_URL"] = pg_url
        servers.append(srv)
    servers[0].tokens["root-admin"] = issue_token("root-admin", servers[0].env)
    servers[0].tokens["alice"] = issue_token("alice", servers[0].env)
    for srv in servers:
        srv.start()
    try:
        yield servers
    finally:
        for srv in servers:
            srv.stop()


def test_failed_authentications_are_counted_across_replicas(two_replicas) -> None:
    a, b = two_replicas
    address = fresh_address()
    bad = "so_" + "e" * 12 + "_" + "f" * 43
    timings = []
    for n in range(8):  # alternating: each replica alone sees at most four failures
        with (a if n % 2 == 0 else b).client(token=bad, address=address) as c:
            t = time.monotonic()
            assert c.get("/api/v1/me").status_code == 401
            timings.append(time.monotonic() - t)
    # the sixth failure overall is slowed down, although each replica has seen only three
    assert all(t >= 0.2 for t in timings[5:]), timings
    assert max(timings[:5]) < min(timings[5:]), timings
    assert timings[7] > timings[5], timings
    # a good token from the same address, through either replica, is not slowed down
    for srv in (a, b):
        with srv.client(token=a.tokens["alice"], address=address) as c:
            t = time.monotonic()
            assert c.get("/api/v1/me").status_code == 200
            assert time.monotonic() - t < min(timings[5:]), timings

    def failures() -> list[dict]:
        with b.client(token=a.tokens["root-admin"]) as c:
            items = c.get("/api/v1/audit", params={"q": "action:auth.failed", "limit": 200}).json()["items"]
        return [e for e in items if e["data"]["client"] == address]

    first = failures()
    assert [e["data"]["count"] for e in first] == [1], first  # one event, not one per replica
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and sum(e["data"]["count"] for e in failures()) < 8:
        time.sleep(0.5)
    events = sorted(failures(), key=lambda e: e["seq"])
    # every failure audited exactly once, by whichever replica flushed it
    assert [e["data"]["count"] for e in events] == [1, 7], events


FILE_FLOW = """
id: upload
namespace: ha.files
inputs:
  - id: doc
    type: FILE
tasks:
  - id: gate
    type: io.kestra.plugin.core.flow.Pause
  - id: show
    type: io.kestra.plugin.scripts.shell.Commands
    commands:
      - cat "$(printf %s '{{ inputs.doc }}' | sed 's|^file://||')"
"""


@pytest.mark.parametrize("same_path", [True, False])
def test_a_file_input_is_read_by_a_replica_that_did_not_receive_it(tmp_path: Path, pg_url: str,
                                                                   same_path: bool) -> None:
    """Started through one replica; that replica's disk is gone; another replica (the same data
    directory path on its own disk, or another path) approves and runs the task that reads it."""
    flows = write_flows(tmp_path / "flows", {"upload.yaml": FILE_FLOW})
    upload = tmp_path / "change-list.txt"
    content = b"delete host-17\x00\xff binary tail\n"
    upload.write_bytes(content)
    data_dir = tmp_path / "data"
    first = ApprovalService(Engine(data_dir, [flows], database=pg_url))
    me = Identity("ops", ())
    execution = first.start_execution(me, "ha.files", "upload", {"doc": str(upload)})
    uri = execution["inputs"]["doc"]
    assert uri.startswith("file://") and "/files/" in uri
    request_id = execution["requests"][0]["id"]
    first.engine.close()
    for path in sorted(data_dir.rglob("*"), reverse=True):  # the first replica's disk is gone
        if path.is_file():
            path.unlink()
    upload.unlink()
    other_dir = data_dir if same_path else tmp_path / "replica-b"
    second = ApprovalService(Engine(other_dir, [flows], database=pg_url))
    try:
        second.approve(me, [request_id])
        second.tick()
        done = second.get_execution(me, execution["id"])
        assert done["state"] == "SUCCESS", done
        logs = [entry["message"] for entry in done["logs"]]
        assert any("delete host-17" in line for line in logs), logs
        assert done["inputs"]["doc"] == uri  # the stored input is unchanged
        assert [r[0] for r in second.db.query("SELECT size FROM input_files")] == [len(content)]
        copies = list((other_dir / "files").rglob("change-list.txt"))
        assert len(copies) == 1 and copies[0].read_bytes() == content
    finally:
        second.engine.close()


def test_file_inputs_are_stored_once_by_content_on_sqlite_too(tmp_path: Path) -> None:
    flows = write_flows(tmp_path / "flows", {"upload.yaml": FILE_FLOW})
    doc = tmp_path / "doc.txt"
    doc.write_text("same bytes\n")
    svc = ApprovalService(Engine(tmp_path / "data", [flows]))
    try:
        uris = {svc.start_execution(Identity("ops", ()), "ha.files", "upload", {"doc": str(doc)})["inputs"]["doc"]
                for _ in range(2)}
        assert len(uris) == 1
        db = open_database(tmp_path / "data")
        assert db.query_one("SELECT count(*), min(content) FROM input_files")[0] == 1
        db.close()
    finally:
        svc.engine.close()


def test_a_replica_makes_its_own_data_directory(tmp_path: Path, pg_url: str) -> None:
    """On PostgreSQL the data directory holds only this replica's files (the engine key that
    signs checkpoints, FILE input copies); a new one is made, private, as for SQLite."""
    from signoff.engine.signing.checkpoints import write_checkpoint

    flows = write_flows(tmp_path / "flows", {"upload.yaml": FILE_FLOW})
    data_dir = tmp_path / "new" / "data"
    engine = Engine(data_dir, [flows], database=pg_url)
    try:
        assert data_dir.is_dir() and data_dir.stat().st_mode & 0o777 == 0o700
        doc = tmp_path / "doc.txt"
        doc.write_text("x\n")
        ApprovalService(engine).start_execution(Identity("ops", ()), "ha.files", "upload", {"doc": str(doc)})
        record = write_checkpoint(engine, force=True)
        assert record is not None and (data_dir / "engine-key").is_file()
    finally:
        engine.close()
