"""Crash (c) of issue 6: SIGKILL `signoff serve` while a client bulk-approves over HTTP.

The client sends the ids in batches (POST /api/v1/approvals/bulk, 100 ids each, one after the
other); a batch is acknowledged when its response arrived. The server is killed at a random
moment: while batches are being decided (even seeds) or while its runner continues the
approved executions (odd seeds). Then `signoff worker --once` (the restart) and the same checks
as crash (a): every acknowledged decision is there exactly once, no post-approval task ran
twice, `signoff audit verify` passes. Finally the server is started again and the client
retries everything: it completes with nothing doubled.

The same runs with the server on PostgreSQL (300 requests; in CI one kill point, in the
continue phase, 10 with ``--long``).
"""
from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.torture.conftest import long_mode
from tests.torture.crash_support import Store, build_template, check, kill_delay, pg_copy
from tests.torture.server_support import Serve, issue_token
from tests.torture.support import no_traceback, signoff

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


def _all_finished(store: Store, count: int) -> bool:
    return store.query("SELECT count(*) FROM executions WHERE state='SUCCESS'")[0][0] == count


def calibrate(root: Path, store: Store, flows: Path, ids: list[str], token: str) -> tuple[float, float]:
    """An uninterrupted run, checked like the others: (end of the decide phase, duration)."""
    server = Serve(store.data, flows, root, database=store.database).start()
    try:
        client = BulkClient(server.url, token, ids)
        started = time.monotonic()
        client.start()
        client.join(600)
        assert client.error is None and len(client.acked) == len(ids), client.error
        decided = client.finished_at - started
        deadline = time.monotonic() + 300
        while not _all_finished(store, len(ids)) and time.monotonic() < deadline:
            time.sleep(0.02)
        finished = time.monotonic() - started
    finally:
        server.stop()
    check(store, flows, acked=set(ids), ids=ids, after_worker=True)
    return decided, max(finished, decided + 0.05)


@pytest.fixture(scope="session")
def server_world(tmp_path_factory):
    root = tmp_path_factory.mktemp("crash-server")
    flows, template, ids = build_template(root, COUNT)
    token = issue_token(template, "alice")["token"]
    data = root / "calibration"
    shutil.copytree(template, data)
    decided, duration = calibrate(root, Store(data), flows, ids, token)
    return {"template": template, "flows": flows, "ids": ids, "token": token, "decide": decided,
            "duration": duration}


@pytest.fixture(scope="session")
def pg_server_world(tmp_path_factory, pg_cluster, pg_crash_template):
    """The same on PostgreSQL: the template database of the crash tests, copied per test (the
    token issued here is in every copy)."""
    root = tmp_path_factory.mktemp("crash-server-pg")
    flows, template, ids = pg_crash_template
    issued = signoff("--database", pg_cluster.url(template), "token", "issue", "alice", "--json",
                     data_dir=root / "issuer")
    assert issued.returncode == 0, issued.stderr
    token = json.loads(issued.stdout)["token"]
    store = Store(root / "calibration", pg_copy(pg_cluster, template))
    decided, duration = calibrate(root, store, flows, ids, token)
    return {"template": template, "flows": flows, "ids": ids, "token": token, "decide": decided,
            "duration": duration}


def test_sigkill_server_during_http_bulk_approve(server_world, tmp_path: Path, kill_point: int) -> None:
    data = tmp_path / "data"
    shutil.copytree(server_world["template"], data)
    killed_server(server_world, tmp_path, Store(data), kill_point, "crash-server")


def test_sigkill_server_during_http_bulk_approve_on_postgresql(pg_server_world, pg_cluster, tmp_path: Path,
                                                               pg_kill_point: int,
                                                               request: pytest.FixtureRequest) -> None:
    """The same with the server on PostgreSQL: acknowledged means committed there. Odd kill
    points only (the continue phase; test_crash_bulk.py kills its decide phase on PostgreSQL)
    in CI; ``--long`` takes both."""
    store = Store(tmp_path / "data", pg_copy(pg_cluster, pg_server_world["template"]))
    kill_point = pg_kill_point if long_mode(request.config) else 2 * pg_kill_point + 1
    killed_server(pg_server_world, tmp_path, store, kill_point, "crash-server-pg")


def killed_server(world: dict, tmp_path: Path, store: Store, kill_point: int, seed: str) -> None:
    flows, ids = world["flows"], world["ids"]
    delay = kill_delay(f"{seed}-{kill_point}", kill_point, world["decide"], world["duration"])

    server = Serve(store.data, flows, tmp_path, database=store.database).start()
    try:
        client = BulkClient(server.url, world["token"], ids)
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
    print(f"kill after {delay:.3f}s (decide {world['decide']:.3f}s, all {world['duration']:.3f}s):"
          f" {len(acked)} acknowledged")

    check(store, flows, acked=acked, ids=ids, after_worker=False, verify=False)
    restart = signoff(*store.args, "worker", "--once", data_dir=store.data, flows=flows, timeout=600)
    no_traceback(restart)
    assert restart.returncode == 0, restart.stderr
    decided = check(store, flows, acked=acked, ids=ids, after_worker=True)

    # the server comes back and the client retries everything
    server = Serve(store.data, flows, tmp_path, database=store.database).start()
    try:
        retry = BulkClient(server.url, world["token"], ids)
        retry.start()
        retry.join(600)
        assert retry.error is None, retry.error
        for request_id, outcome in retry.acked.items():
            assert outcome == ("already_decided" if request_id in decided else "decided"), (request_id, outcome)
    finally:
        server.stop()
    assert "Traceback" not in server.log, server.log[-4000:]
    restart = signoff(*store.args, "worker", "--once", data_dir=store.data, flows=flows, timeout=600)
    assert restart.returncode == 0, restart.stderr
    final = check(store, flows, acked=set(ids), ids=ids, after_worker=True)
    assert set(final) == set(ids) and set(final.values()) == {1}
