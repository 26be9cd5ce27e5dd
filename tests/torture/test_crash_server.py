"""Crash (c) of issue 6: SIGKILL `signoff serve` while a client bulk-approves over HTTP.

The client sends the ids in batches (POST /api/v1/approvals/bulk, 100 ids each, one after the
other); a batch is acknowledged when its response arrived. The server is killed at a random
moment: while batches are being decided (even seeds) or while its runner continues the
approved executions (odd seeds). Then `signoff worker --once` (the restart) and the same checks
as crash (a): every acknowledged decision is there exactly once, no post-approval task ran
twice, `signoff audit verify` passes. Finally the server is started again and the client
retries everything: it completes with nothing doubled.
"""
from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.torture.crash_support import build_template, check, kill_delay
from tests.torture.server_support import Serve, issue_token
from tests.torture.support import connect, no_traceback, signoff

COUNT = 1000
BATCH = 100


class BulkClient(threading.Thread):
    """Approves ``ids`` batch by batch; ``acked`` holds the outcomes of every batch whose
    response arrived. Stops at the first connection error (the server died)."""

    def __init__(self, url: str, token: str, ids: list[str]) -> None:
        super().__init__(daemon=True)
        self.url, self.token, self.ids = url, token, ids
        self.acked: dict[str, str] = {}
        self.error: str | None = None
        self.bodies: list[str] = []
        self.finished_at: float | None = None

    def run(self) -> None:
        with httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.token}"},
                          timeout=120) as client:
            for start in range(0, len(self.ids), BATCH):
                try:
                    r = client.post("/api/v1/approvals/bulk",
                                    json={"ids": self.ids[start:start + BATCH], "verdict": "approve"})
                except httpx.HTTPError as exc:
                    self.error = repr(exc)
                    return
                self.bodies.append(r.text)
                if r.status_code != 200:
                    self.error = f"{r.status_code} {r.text[:500]}"
                    return
                for o in r.json()["outcomes"]:
                    self.acked[o["id"]] = o["outcome"]
        self.finished_at = time.monotonic()


def _all_finished(data: Path) -> bool:
    conn = connect(data)
    try:
        return conn.execute("SELECT count(*) FROM executions WHERE state='SUCCESS'").fetchone()[0] == COUNT
    finally:
        conn.close()


@pytest.fixture(scope="session")
def server_world(tmp_path_factory):
    root = tmp_path_factory.mktemp("crash-server")
    flows, template, ids = build_template(root, COUNT)
    token = issue_token(template, "alice")["token"]

    # calibration: an uninterrupted run, checked like the others
    data = root / "calibration"
    shutil.copytree(template, data)
    server = Serve(data, flows, root).start()
    try:
        client = BulkClient(server.url, token, ids)
        started = time.monotonic()
        client.start()
        client.join(600)
        assert client.error is None and len(client.acked) == COUNT, client.error
        decided = client.finished_at - started
        deadline = time.monotonic() + 300
        while not _all_finished(data) and time.monotonic() < deadline:
            time.sleep(0.02)
        finished = time.monotonic() - started
    finally:
        server.stop()
    check(data, flows, acked=set(ids), ids=ids, after_worker=True)
    return {"template": template, "flows": flows, "ids": ids, "token": token, "decide": decided,
            "duration": max(finished, decided + 0.05)}


def test_sigkill_server_during_http_bulk_approve(server_world, tmp_path: Path, kill_point: int) -> None:
    flows, ids = server_world["flows"], server_world["ids"]
    data = tmp_path / "data"
    shutil.copytree(server_world["template"], data)
    delay = kill_delay(f"crash-server-{kill_point}", kill_point, server_world["decide"], server_world["duration"])

    server = Serve(data, flows, tmp_path).start()
    try:
        client = BulkClient(server.url, server_world["token"], ids)
        client.start()
        time.sleep(delay)
        server.kill()
        client.join(120)
        assert not client.is_alive()
    finally:
        server.kill()
    log = server.log
    assert "Traceback" not in log and "database is locked" not in log, log[-4000:]
    for body in client.bodies:
        assert "database is locked" not in body
    acked = {i for i, outcome in client.acked.items() if outcome == "decided"}
    assert set(client.acked.values()) <= {"decided"}, set(client.acked.values())
    print(f"kill after {delay:.3f}s (decide {server_world['decide']:.3f}s, all {server_world['duration']:.3f}s):"
          f" {len(acked)} acknowledged")

    check(data, flows, acked=acked, ids=ids, after_worker=False, verify=False)
    restart = signoff("worker", "--once", data_dir=data, flows=flows, timeout=600)
    no_traceback(restart)
    assert restart.returncode == 0, restart.stderr
    decided = check(data, flows, acked=acked, ids=ids, after_worker=True)

    # the server comes back and the client retries everything
    server = Serve(data, flows, tmp_path).start()
    try:
        retry = BulkClient(server.url, server_world["token"], ids)
        retry.start()
        retry.join(600)
        assert retry.error is None, retry.error
        for request_id, outcome in retry.acked.items():
            assert outcome == ("already_decided" if request_id in decided else "decided"), (request_id, outcome)
    finally:
        server.stop()
    assert "Traceback" not in server.log, server.log[-4000:]
    restart = signoff("worker", "--once", data_dir=data, flows=flows, timeout=600)
    assert restart.returncode == 0, restart.stderr
    final = check(data, flows, acked=set(ids), ids=ids, after_worker=True)
    assert set(final) == set(ids) and set(final.values()) == {1}
