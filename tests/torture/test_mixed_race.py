"""Races of issue 6: four processes, CLI and server clients mixed, decide the same requests at
once.

- two `signoff approve --json` loops (the CLI: identity is the OS account, so both are the
  same person, root);
- two HTTP clients of one `signoff serve`, with tokens for alice and bob.

Each walks all the requests in its own random order, in batches of 50. Half the requests need
one approver, half need two (``required: 2``). Afterwards: one decision per single-approver
request, exactly two by two distinct people per quorum request (root's second process must not
count twice), every outcome either `decided` or `already_decided`, every execution finished
once, `signoff audit verify` passes, and "database is locked" reached nobody (CLI output,
HTTP bodies, server log). 300 requests in CI, 1,000 with ``--long``.
"""
from __future__ import annotations

import json
import os
import pwd
import random
import subprocess
import threading
from pathlib import Path

import httpx

from signoff.engine.core import Engine
from signoff.engine.identity import Identity
from signoff.engine.service import ApprovalService
from tests.support import write_flows
from tests.torture.server_support import Serve, issue_token
from tests.torture.support import REPO, SIGNOFF, clean_env, connect, no_traceback, signoff

BATCH = 50
SINGLE = """
id: single
namespace: torture.race
tasks:
  - id: gate
    type: io.kestra.plugin.core.flow.Pause
  - id: after
    type: io.kestra.plugin.core.log.Log
    message: "single done"
"""
QUORUM = """
id: quorum
namespace: torture.race
tasks:
  - id: gate
    type: io.kestra.plugin.core.flow.Pause
    required: 2
  - id: after
    type: io.kestra.plugin.core.log.Log
    message: "quorum done"
"""


class Worker(threading.Thread):
    def __init__(self, name: str, ids: list[str], seed: int) -> None:
        super().__init__(daemon=True)
        self.name_ = name
        self.ids = list(ids)
        random.Random(seed).shuffle(self.ids)
        self.outcomes: list[dict] = []
        self.texts: list[str] = []
        self.errors: list[str] = []

    def batches(self):
        for start in range(0, len(self.ids), BATCH):
            yield self.ids[start:start + BATCH]


class CliWorker(Worker):
    def __init__(self, name: str, ids: list[str], seed: int, data: Path, flows: Path) -> None:
        super().__init__(name, ids, seed)
        self.data, self.flows = data, flows

    def run(self) -> None:
        for batch in self.batches():
            proc = subprocess.run([*SIGNOFF, "--data-dir", str(self.data), "--flows", str(self.flows), "approve",
                                   *batch, "--json"], capture_output=True, text=True, env=clean_env(), cwd=REPO,
                                  timeout=600, stdin=subprocess.DEVNULL)
            self.texts += [proc.stdout, proc.stderr]
            if proc.returncode not in (0, 1):
                self.errors.append(f"exit {proc.returncode}: {proc.stderr[-2000:]}")
                continue
            try:
                self.outcomes += [dict(o, by_worker=self.name_) for o in json.loads(proc.stdout)]
            except ValueError:
                self.errors.append(f"not JSON: {proc.stdout[-500:]} {proc.stderr[-2000:]}")


class HttpWorker(Worker):
    def __init__(self, name: str, ids: list[str], seed: int, url: str, token: str) -> None:
        super().__init__(name, ids, seed)
        self.url, self.token = url, token

    def run(self) -> None:
        with httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.token}"}, timeout=600) as c:
            for batch in self.batches():
                try:
                    r = c.post("/api/v1/approvals/bulk", json={"ids": batch, "verdict": "approve"})
                except httpx.HTTPError as exc:
                    self.errors.append(repr(exc))
                    continue
                self.texts.append(r.text)
                if r.status_code != 200:
                    self.errors.append(f"{r.status_code}: {r.text[:2000]}")
                    continue
                self.outcomes += [dict(o, by_worker=self.name_) for o in r.json()["outcomes"]]


def test_cli_and_server_clients_race_on_the_same_requests(tmp_path: Path, race_size: int) -> None:
    flows = write_flows(tmp_path / "flows", {"single.yaml": SINGLE, "quorum.yaml": QUORUM})
    data = tmp_path / "data"
    engine = Engine(data, [flows])
    svc = ApprovalService(engine, run_inline=False)
    starter = Identity("carol")
    for i in range(race_size):
        svc.start_execution(starter, "torture.race", "single" if i % 2 == 0 else "quorum", {})
    svc.tick()
    pending = svc.list_pending(starter)
    engine.close()
    assert len(pending) == race_size
    single = {r["id"] for r in pending if r["flow_id"] == "single"}
    quorum = {r["id"] for r in pending if r["flow_id"] == "quorum"}
    ids = sorted(single | quorum)
    tokens = {who: issue_token(data, who)["token"] for who in ("alice", "bob")}

    server = Serve(data, flows, tmp_path).start()
    try:
        workers: list[Worker] = [
            CliWorker("cli-1", ids, 1, data, flows),
            CliWorker("cli-2", ids, 2, data, flows),
            HttpWorker("alice", ids, 3, server.url, tokens["alice"]),
            HttpWorker("bob", ids, 4, server.url, tokens["bob"]),
        ]
        for w in workers:
            w.start()
        for w in workers:
            w.join(900)
            assert not w.is_alive(), f"{w.name_} did not finish"
    finally:
        server.stop()

    for w in workers:
        assert not w.errors, (w.name_, w.errors[:3])
        for text in w.texts:
            assert "database is locked" not in text.lower(), (w.name_, text[-2000:])
            assert "Traceback" not in text, (w.name_, text[-4000:])
        assert len(w.outcomes) == race_size
        kinds = {o["outcome"] for o in w.outcomes}
        assert kinds <= {"decided", "already_decided"}, (w.name_, kinds)
    log = server.log
    assert "database is locked" not in log.lower() and "Traceback" not in log, log[-4000:]

    # executions the server's runner had not reached yet are continued by a worker
    done = signoff("worker", "--once", data_dir=data, flows=flows, timeout=600)
    no_traceback(done)
    assert done.returncode == 0, done.stderr

    conn = connect(data)
    try:
        rows = conn.execute("SELECT request_id, count(*) AS n, count(DISTINCT actor) AS people,"
                            " group_concat(actor) AS actors FROM decisions GROUP BY request_id").fetchall()
        per_request = {r["request_id"]: r for r in rows}
        assert set(per_request) == set(ids), "a request got no decision"
        for request_id in single:
            r = per_request[request_id]
            assert r["n"] == 1, (request_id, r["actors"])
        for request_id in quorum:
            r = per_request[request_id]
            assert r["n"] == 2 and r["people"] == 2, (request_id, r["actors"])
        actors = {r[0] for r in conn.execute("SELECT DISTINCT actor FROM decisions")}
        states = {r[0]: r[1] for r in conn.execute("SELECT state, count(*) FROM executions GROUP BY state")}
        assert states == {"SUCCESS": race_size}, states
        logs = conn.execute("SELECT execution_id, count(*) FROM logs WHERE path='after' GROUP BY execution_id"
                            " HAVING count(*) != 1").fetchall()
        assert not logs, "an execution ran its post-approval task twice"
    finally:
        conn.close()
    me = pwd.getpwuid(os.getuid()).pw_name  # the CLI's identity: the OS account
    assert actors <= {"alice", "bob", me}, actors
    # every "decided" answer corresponds to a stored decision by that worker's person
    decided = {}
    for w in workers:
        for o in w.outcomes:
            if o["outcome"] == "decided":
                decided.setdefault(o["id"], []).append(w.name_)
    print({w.name_: sum(1 for o in w.outcomes if o["outcome"] == "decided") for w in workers})
    for request_id in single:
        assert len(decided.get(request_id, [])) == 1, (request_id, decided.get(request_id))
    for request_id in quorum:
        names = decided.get(request_id, [])
        people = {me if n.startswith("cli") else n for n in names}
        assert len(names) == 2 and len(people) == 2, (request_id, names)

    verify = signoff("audit", "verify", data_dir=data, flows=flows, timeout=300)
    no_traceback(verify)
    assert verify.returncode == 0, verify.stdout + verify.stderr
