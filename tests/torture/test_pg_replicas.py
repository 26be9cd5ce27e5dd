"""Three real `signoff serve` replicas on one PostgreSQL (issue 14).

Every execution continues into an HTTP task against a local listener (tests/fakes) that records
each ``Idempotency-Key``: a continuation that ran twice shows up there. Each test ends with
`signoff audit verify` on the database.

- clients spread over the replicas, CLI and HTTP mixed, decide the same requests at once;
- a 2-of-2 quorum approved through two replicas behind a barrier ends APPROVED every round;
- a replica SIGKILLed mid-bulk: acknowledged decisions once, its leases taken over within the
  heartbeat bound (short bounds set for the test), nothing run twice, the bulk retried with the
  same idempotency key through the others answers what the dead replica had decided as decided
  and records nothing twice (one decision, one audit event, one remembered answer a request);
- PostgreSQL stopped (immediate) and restarted under load: no acknowledged decision lost, a
  console's event stream on one replica sees every change made through the others, in order,
  without a gap or a repeat, before and after the restart; and the feeds answer from memory
  (the audit table is not read once per console); every bulk answered before or during the
  stop, replayed with its idempotency key after the restart, gets the same answer and writes
  nothing; no replica logs a traceback (a lost database is one line);
- due timers and the notification outbox fire exactly once across the replicas.

Decide, cancel, expiry and the end of the execution racing on one request through the three:
tests/torture/test_pg_replica_races.py.

CI sizes (2 cores): 300 requests in the mixed race, 50 quorum rounds, 200 killed-bulk requests,
200 timers; ``--long`` runs the issue's 1,000 requests, 200 rounds, 1,000 killed-bulk requests
and 1,000 timers.
"""
from __future__ import annotations

import collections
import json
import os
import pwd
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from signoff.engine.audit.actions import CHANGE_ACTIONS
from signoff.engine.core import Engine
from signoff.engine.identity import Identity
from signoff.engine.service import ApprovalService
from tests.support import write_flows
from tests.torture.conftest import long_mode
from tests.torture.server_support import Serve
from tests.torture.support import REPO, SIGNOFF, clean_env, no_traceback, signoff
from tests.torture.test_mixed_race import CliWorker, HttpWorker, Worker

NS = "pg.replicas"
#: short heartbeats for the tests, so a killed replica's leases are taken over in seconds
BEAT = {"SIGNOFF_HEARTBEAT_EVERY": "0.5", "SIGNOFF_HEARTBEAT_DEAD_AFTER": "3"}
DEAD_AFTER = 3.0


def sizes(request: pytest.FixtureRequest, short: int, long: int) -> int:
    return long if long_mode(request.config) else short


def flows_for(listener_url: str) -> dict[str, str]:
    after = f"""
  - id: after
    type: io.kestra.plugin.core.http.Request
    uri: "{listener_url}/continued"
    method: POST
    body: "{{{{ execution.id }}}}"
"""
    return {
        "single.yaml": f"id: single\nnamespace: {NS}\ntasks:\n  - id: gate\n"
                       f"    type: io.kestra.plugin.core.flow.Pause\n{after}",
        "quorum.yaml": f"id: quorum\nnamespace: {NS}\ntasks:\n  - id: gate\n"
                       f"    type: io.kestra.plugin.core.flow.Pause\n    required: 2\n{after}",
        "expiring.yaml": f"id: expiring\nnamespace: {NS}\ntasks:\n  - id: gate\n"
                         f"    type: io.kestra.plugin.core.flow.Pause\n    timeout: PT2S\n"
                         f"    behavior: RESUME\n{after}",
        # tests/torture/test_pg_replica_races.py: `gate` is contested; denying `ender`, its
        # parallel sibling, ends the execution (KILLED) and so closes `gate` too
        "contested.yaml": f"id: contested\nnamespace: {NS}\ntasks:\n  - id: both\n"
                          f"    type: io.kestra.plugin.core.flow.Parallel\n    tasks:\n"
                          f"      - id: gate\n        type: io.kestra.plugin.core.flow.Pause\n"
                          f"        timeout: PT1H\n        behavior: RESUME\n"
                          f"      - id: ender\n        type: io.kestra.plugin.core.flow.Pause\n{after}",
    }


class World:
    """One database, its flows, tokens, and the replicas."""

    def __init__(self, tmp_path: Path, url: str, listener: Any) -> None:
        listener.respond("/continued", 200, "ok")
        listener.respond("/slack", 200, "ok")
        self.tmp = tmp_path
        self.url = url
        self.listener = listener
        self.flows = write_flows(tmp_path / "flows", flows_for(listener.url))
        self.notifications = tmp_path / "notifications.yaml"
        self.notifications.write_text(f'targets:\n  - namespaces: ["*"]\n    events: [expired]\n'
                                      f'    slack: "{listener.url}/slack"\n')
        self.data = tmp_path / "data"
        self.replicas: list[Serve] = []

    def start_executions(self, count: int, flow: str | None = None) -> tuple[set[str], set[str]]:
        engine = Engine(self.tmp / "starter", [self.flows], database=self.url)
        try:
            svc = ApprovalService(engine)
            starter = Identity("carol")
            before = {r["id"] for r in svc.list_pending(starter)}
            for i in range(count):
                svc.start_execution(starter, NS, flow or ("single" if i % 2 == 0 else "quorum"), {})
            pending = [r for r in svc.list_pending(starter) if r["id"] not in before]
        finally:
            engine.close()
        assert len(pending) == count
        return ({r["id"] for r in pending if r["flow_id"] != "quorum"},
                {r["id"] for r in pending if r["flow_id"] == "quorum"})

    def token(self, user: str) -> str:
        r = signoff("--database", self.url, "token", "issue", user, "--json", data_dir=self.data)
        assert r.returncode == 0, r.stderr
        return str(json.loads(r.stdout)["token"])

    def start_replicas(self, n: int = 3, *, notify: bool = False, far: bool = False) -> list[Serve]:
        """``far``: the first runs under another host name (its own UTS namespace), so the
        others cannot see its pid: only its heartbeat tells them it died."""
        extra = ("--notifications", str(self.notifications)) if notify else ()
        for i in range(len(self.replicas), len(self.replicas) + n):
            prefix = other_host(f"far-{os.getpid()}-{i}") if far and i == 0 else ()
            self.replicas.append(Serve(self.tmp / f"replica{i}", self.flows, self.tmp, database=self.url,
                                       extra=extra, env=BEAT, prefix=prefix).start())
        return self.replicas[-n:]

    def stop(self) -> None:
        for r in self.replicas:
            r.stop()

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        with psycopg.connect(self.url) as conn:
            return conn.execute(sql, params).fetchall()

    def wait_all_ended(self, count: int, timeout: float) -> float:
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            ended = self.query("SELECT count(*) FROM executions WHERE state IN ('SUCCESS', 'WARNING', 'FAILED',"
                               " 'KILLED', 'CANCELLED')")[0][0]
            if ended >= count:
                return time.monotonic() - start
            time.sleep(0.2)
        states = self.query("SELECT state, count(*) FROM executions GROUP BY state")
        raise AssertionError(f"executions still running after {timeout} s: {states}")

    def continuations(self) -> collections.Counter[str]:
        return collections.Counter(r.headers["Idempotency-Key"] for r in self.listener.requests
                                   if r.path == "/continued")

    def check_continued_once(self, count: int) -> None:
        states = dict(self.query("SELECT state, count(*) FROM executions GROUP BY state"))
        assert states == {"SUCCESS": count}, states
        keys = self.continuations()
        assert len(keys) == count, f"{len(keys)} distinct continuations for {count} executions"
        twice = {k: n for k, n in keys.items() if n > 1}
        assert not twice, f"continued more than once: {list(twice.items())[:5]}"

    def check_logs(self, replicas: list[Serve] | None = None) -> None:
        for replica in replicas if replicas is not None else self.replicas:
            log = replica.log
            assert "Traceback" not in log and "deadlock" not in log.lower(), log[-4000:]

    def verify(self) -> None:
        r = signoff("--database", self.url, "audit", "verify", "--json", data_dir=self.data, timeout=300)
        no_traceback(r)
        assert r.returncode == 0 and json.loads(r.stdout)["ok"], r.stdout + r.stderr


def other_host(name: str) -> tuple[str, ...]:
    """A command prefix running the rest under the host name ``name`` (a new UTS namespace)."""
    unshare = ("unshare", "--uts") if os.geteuid() == 0 else ("unshare", "--user", "--map-root-user", "--uts")
    return (*unshare, "sh", "-c", 'hostname "$0" && exec "$@"', name)


class PgCliWorker(CliWorker):
    """`signoff --database URL approve ...`: the CLI as one more engine on the database."""

    def __init__(self, name: str, ids: list[str], seed: int, data: Path, flows: Path, url: str) -> None:
        super().__init__(name, ids, seed, data, flows)
        self.url = url

    def run(self) -> None:
        import subprocess

        for batch in self.batches():
            proc = subprocess.run([*SIGNOFF, "--data-dir", str(self.data), "--flows", str(self.flows), "--database",
                                   self.url, "approve", *batch, "--json"], capture_output=True, text=True,
                                  env=clean_env(**BEAT), cwd=REPO, timeout=600, stdin=subprocess.DEVNULL)
            self.texts += [proc.stdout, proc.stderr]
            if proc.returncode not in (0, 1):
                self.errors.append(f"exit {proc.returncode}: {proc.stderr[-2000:]}")
                continue
            self.outcomes += [dict(o, by_worker=self.name_) for o in json.loads(proc.stdout)]


@pytest.fixture
def world(tmp_path: Path, pg_cluster: Any, http_listener: Any):
    w = World(tmp_path, pg_cluster.new_database("replicas"), http_listener)
    yield w
    w.stop()


def test_three_replicas_decide_at_once(world: World, request: pytest.FixtureRequest) -> None:
    size = sizes(request, 300, 1000)
    single, quorum = world.start_executions(size)
    ids = sorted(single | quorum)
    tokens = {who: world.token(who) for who in ("alice", "bob", "dave")}
    a, b, c = world.start_replicas(3)
    workers: list[Worker] = [
        PgCliWorker("cli", ids, 1, world.data, world.flows, world.url),
        HttpWorker("alice", ids, 2, a.url, tokens["alice"]),
        HttpWorker("bob", ids, 3, b.url, tokens["bob"]),
        HttpWorker("dave", ids, 4, c.url, tokens["dave"]),
    ]
    # the CLI first: a Python process per batch starts slower than an HTTP call, so without a
    # head start the three replicas would have decided everything before its first batch
    workers[0].start()
    deadline = time.monotonic() + 120
    while not workers[0].outcomes and not workers[0].errors and time.monotonic() < deadline:
        time.sleep(0.01)
    for w in workers[1:]:
        w.start()
    for w in workers:
        w.join(900)
        assert not w.is_alive(), f"{w.name_} did not finish"
    world.wait_all_ended(size, timeout=300)
    for w in workers:
        assert not w.errors, (w.name_, w.errors[:3])  # HttpWorker records every non-200 answer: no 5xx
        for text in w.texts:
            assert "deadlock" not in text.lower() and "Traceback" not in text, (w.name_, text[-2000:])
            assert "could not serialize" not in text and "database conflict" not in text, (w.name_, text[-2000:])
        assert {o["outcome"] for o in w.outcomes} <= {"decided", "already_decided"}, w.name_
    rows = world.query("SELECT request_id, count(*), count(DISTINCT actor) FROM decisions GROUP BY request_id")
    per_request = {r[0]: (r[1], r[2]) for r in rows}
    assert set(per_request) == set(ids)
    assert all(per_request[i] == (1, 1) for i in single), [per_request[i] for i in single if per_request[i] != (1, 1)]
    assert all(per_request[i] == (2, 2) for i in quorum), [per_request[i] for i in quorum if per_request[i] != (2, 2)]
    me = pwd.getpwuid(os.getuid()).pw_name
    assert {r[0] for r in world.query("SELECT DISTINCT actor FROM decisions")} <= {"alice", "bob", "dave", me}
    decided_by = {w.name_: sum(1 for o in w.outcomes if o["outcome"] == "decided") for w in workers}
    assert decided_by["cli"] > 0 and sum(1 for n in decided_by.values() if n) >= 3, decided_by
    world.check_continued_once(size)
    world.check_logs()
    world.verify()
    print(decided_by)


def test_quorum_write_skew_through_two_replicas(world: World, request: pytest.FixtureRequest) -> None:
    rounds = sizes(request, 50, 200)
    _, quorum = world.start_executions(rounds, "quorum")
    ids = sorted(quorum)
    tokens = {who: world.token(who) for who in ("alice", "bob")}
    a, b = world.start_replicas(2)
    clients = [httpx.Client(base_url=s.url, headers={"Authorization": f"Bearer {tokens[who]}"}, timeout=60)
               for s, who in ((a, "alice"), (b, "bob"))]
    try:
        for request_id in ids:
            barrier = threading.Barrier(2)
            answers: list[httpx.Response | None] = [None, None]

            def approve(i: int, request_id: str = request_id, barrier: threading.Barrier = barrier,
                        answers: list[httpx.Response | None] = answers) -> None:
                barrier.wait()
                answers[i] = clients[i].post(f"/api/v1/approvals/{request_id}/approve",
                                             json={"inputs": {}})

            threads = [threading.Thread(target=approve, args=(i,)) for i in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            assert all(r is not None and r.status_code == 200 for r in answers), \
                [(r.status_code, r.text[:300]) if r is not None else None for r in answers]
            state = world.query("SELECT state FROM requests WHERE id=%s", (request_id,))[0][0]
            assert state == "APPROVED", request_id
    finally:
        for client in clients:
            client.close()
    world.wait_all_ended(rounds, timeout=120)
    world.check_continued_once(rounds)
    world.check_logs()
    world.verify()


def test_sigkill_of_a_replica_mid_bulk(world: World, request: pytest.FixtureRequest) -> None:
    """Replica A (under another host name) is killed while it decides a bulk and continues its executions (each
    continuation's HTTP call is slow, so A holds leases when it dies); the client retries the
    same bulk (same idempotency key) through B, then once more through C. Every request ends
    decided once, A's leases are taken over within the heartbeat bound, and every execution
    continues exactly once - except a call A had already sent when it died, which is repeated
    once with the same Idempotency-Key."""
    size = sizes(request, 200, 1000)
    world.listener.respond("/continued", 200, "ok", delay=0.05)
    single, _ = world.start_executions(size, "single")
    ids = sorted(single)
    token = world.token("alice")
    a, b, c = world.start_replicas(3, far=True)  # A on "another host": its pid means nothing to B and C
    headers = {"Authorization": f"Bearer {token}"}
    body = {"ids": ids, "verdict": "approve", "idempotency_key": "bulk-1"}
    answer: list[httpx.Response] = []

    def doomed() -> None:
        try:
            answer.append(httpx.post(a.url + "/api/v1/approvals/bulk", json=body, headers=headers, timeout=300))
        except httpx.HTTPError:
            pass  # the replica died under it: no answer, so nothing was acknowledged to this client

    thread = threading.Thread(target=doomed)
    thread.start()
    # kill A once it has started continuing executions (it holds leases then)
    deadline = time.monotonic() + 120
    while not world.listener.requests_to("/continued") and time.monotonic() < deadline:
        time.sleep(0.01)
    assert world.listener.requests_to("/continued"), "replica A never continued an execution"
    assert a.proc is not None
    mine = f"%:{a.proc.pid}:%"  # lease owner ids name their process: host:pid:nonce:advance
    a.kill()
    killed_at = time.monotonic()
    thread.join(60)
    held = world.query("SELECT count(*) FROM work WHERE lease_owner LIKE %s", (mine,))[0][0]
    # B and C take A's leases over once its heartbeat is older than the bound, long before
    # the leases themselves (5 minutes) would run out
    while world.query("SELECT count(*) FROM work WHERE lease_owner LIKE %s", (mine,))[0][0] \
            and time.monotonic() - killed_at < 120:
        time.sleep(0.1)
    leases_free_after = time.monotonic() - killed_at
    assert DEAD_AFTER - 1.5 <= leases_free_after < 60 or not held, (held, leases_free_after)
    acknowledged = {o["id"] for r in answer for o in r.json()["outcomes"] if o["outcome"] == "decided"}
    r = httpx.post(b.url + "/api/v1/approvals/bulk", json=body, headers=headers, timeout=300)
    assert r.status_code == 200, r.text
    # what A committed before it died is remembered under the key: B answers it as A would have
    # ("decided", the original answer), and decides the rest
    assert [o["id"] for o in r.json()["outcomes"]] == ids
    assert {o["outcome"] for o in r.json()["outcomes"]} == {"decided"}, r.json()["outcomes"][:3]
    events = world.query("SELECT max(seq) FROM audit")[0][0]
    again = httpx.post(c.url + "/api/v1/approvals/bulk", json=body, headers=headers, timeout=300)
    assert again.status_code == 200
    assert again.json()["outcomes"] == r.json()["outcomes"]  # the same answer once more
    approved = dict(world.query("SELECT request_id, count(*) FROM audit WHERE action='request.approved'"
                                " GROUP BY request_id"))
    assert approved == dict.fromkeys(ids, 1), "a retried bulk recorded a decision twice"
    remembered = world.query("SELECT count(*), count(DISTINCT request_id) FROM idempotency WHERE key='bulk-1'")
    assert remembered == [(size, size)], remembered
    assert world.query("SELECT count(*) FROM audit WHERE action LIKE 'request.%%' AND seq > %s",
                       (events,))[0][0] == 0, "the replayed bulk wrote to the audit"
    world.wait_all_ended(size, timeout=DEAD_AFTER + 180)
    taken_over_after = time.monotonic() - killed_at
    decided = dict(world.query("SELECT request_id, count(*) FROM decisions GROUP BY request_id"))
    assert set(decided) == set(ids) and set(decided.values()) == {1}
    assert acknowledged <= set(ids)
    keys = world.continuations()
    assert len(keys) == size
    assert max(keys.values()) <= 2, keys.most_common(3)
    states = dict(world.query("SELECT state, count(*) FROM executions GROUP BY state"))
    assert states == {"SUCCESS": size}, states
    print(f"{held} lease(s) held by the killed replica, all taken over {leases_free_after:.1f} s after the kill; "
          f"all {size} executions ended {taken_over_after:.1f} s after it (heartbeat bound {DEAD_AFTER} s, "
          f"lease 300 s)")
    world.check_logs([b, c])
    world.verify()


def test_events_follow_every_replica_through_a_postgresql_restart(world: World, pg_cluster: Any) -> None:
    """A console's event stream on replica C while changes are made through A and B (and a CLI
    engine starts executions): every change, in order, no gap, no repeat; then PostgreSQL is
    stopped immediately under the streams and the load and restarted: no acknowledged decision
    is lost and the stream resumes where it was. Twenty more consoles polling C meanwhile do
    not make C read the audit table once per console."""
    tokens = {who: world.token(who) for who in ("alice", "bob", "carol")}
    a, b, c = world.start_replicas(3)
    seen: list[int] = []
    done = threading.Event()

    def follow() -> None:
        after = 0
        while not done.is_set():
            try:
                with httpx.stream("GET", c.url + "/api/v1/events", params={"after": after}, timeout=30,
                                  headers={"Authorization": f"Bearer {tokens['carol']}"}) as r:
                    for line in r.iter_lines():
                        if line.startswith("id: "):
                            after = int(line[4:])
                            seen.append(after)
                        if done.is_set():
                            return
            except httpx.HTTPError:
                time.sleep(0.2)  # the replica lost its database for a moment: reconnect from `after`

    pollers_done = threading.Event()
    polls = [0]

    def poll_like_a_console() -> None:
        with httpx.Client(base_url=c.url, headers={"Authorization": f"Bearer {tokens['carol']}",
                                                   "Accept": "application/json"}, timeout=30) as client:
            while not pollers_done.is_set():
                try:
                    client.get("/api/v1/events", params={"after": 2**62, "limit": 1})
                    polls[0] += 1
                except httpx.HTTPError:
                    pass
                time.sleep(0.1)

    follower = threading.Thread(target=follow)
    follower.start()
    acknowledged: list[str] = []
    #: idempotency key -> the outcomes of its first acknowledged answer
    answers: dict[str, list[dict[str, Any]]] = {}

    def decide_all(ids: list[str]) -> None:
        """Each chunk with its own idempotency key: called again for the same ids (after the
        restart), a chunk answered before is replayed and must get the same answer."""
        for server, who in ((a, "alice"), (b, "bob")):
            for start in range(0, len(ids), 10):
                chunk = ids[start:start + 10]
                key = f"{who}-{chunk[0]}"
                try:
                    r = httpx.post(server.url + "/api/v1/approvals/bulk", timeout=120,
                                   headers={"Authorization": f"Bearer {tokens[who]}"},
                                   json={"ids": chunk, "verdict": "approve", "idempotency_key": key})
                except httpx.HTTPError:
                    continue  # no answer: nothing acknowledged
                if r.status_code == 200:
                    outcomes = r.json()["outcomes"]
                    acknowledged.extend(o["id"] for o in outcomes if o["outcome"] == "decided")
                    assert answers.setdefault(key, outcomes) == outcomes, (key, answers[key], outcomes)
                else:  # the database is away: refused cleanly, nothing acknowledged
                    assert r.status_code == 503, (r.status_code, r.text)

    try:
        # idle consoles: count C's reads of the audit table with 1 poller, then with 20
        reads: list[int] = []
        for n in (1, 20):
            pollers_done.clear()
            threads = [threading.Thread(target=poll_like_a_console) for _ in range(n)]
            for t in threads:
                t.start()
            time.sleep(1.0)
            before = audit_reads(world)
            time.sleep(4.0)
            reads.append(audit_reads(world) - before)
            pollers_done.set()
            for t in threads:
                t.join(30)
        print(f"audit reads by replica C in 4 s: {reads} with 1 and 20 polling consoles ({polls[0]} polls)")
        assert polls[0] > 100
        # twenty consoles cost what one does (the feeds answer from the replica's memory)
        assert reads[1] <= reads[0] * 2 + 20, reads

        single, quorum = world.start_executions(30)
        decide_all(sorted(single | quorum))
        world.wait_all_ended(30, timeout=120)
        before = sorted(single | quorum)
        single, quorum = world.start_executions(30)
        load = threading.Thread(target=decide_all, args=(sorted(single | quorum),))
        load.start()
        time.sleep(0.3)
        pg_cluster.kill()  # immediate stop, under open streams and decisions in flight
        time.sleep(1.0)
        pg_cluster.restart_server()
        load.join(300)
        for server in (a, b, c):  # the replicas work again without a restart of their own
            deadline = time.monotonic() + 60
            while httpx.get(server.url + "/healthz", timeout=10).status_code != 200:
                assert time.monotonic() < deadline, "a replica did not recover from the restart"
                time.sleep(0.2)
        first_answers = dict(answers)
        before_events = world.query("SELECT count(*) FROM audit WHERE request_id = ANY(%s)", (before,))[0][0]
        # what the restart cut off is decided again, with the same keys; every chunk answered
        # before (also before the stop) is replayed: the same answer, nothing done twice
        decide_all(before)
        decide_all(sorted(single | quorum))
        for key, outcomes in first_answers.items():
            assert answers[key] == outcomes, key
        # the first 30, answered before the stop: 3 chunks each for alice and bob
        assert sum(1 for k in first_answers if k.split("-", 1)[1] in before) == 6, sorted(first_answers)
        assert world.query("SELECT count(*) FROM audit WHERE request_id = ANY(%s)", (before,))[0][0] \
            == before_events, "a replayed key wrote to the audit again"
        world.wait_all_ended(60, timeout=180)
        expected = [r[0] for r in world.query("SELECT seq FROM audit WHERE action = ANY(%s) ORDER BY seq",
                                              (list(CHANGE_ACTIONS),))]
        deadline = time.monotonic() + 60
        while (not seen or seen[-1] < expected[-1]) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        done.set()
        pollers_done.set()
        follower.join(60)
    assert seen == expected, (len(seen), len(expected), sorted(set(expected) - set(seen))[:5])
    decided = {r[0] for r in world.query("SELECT request_id FROM decisions")}
    assert set(acknowledged) <= decided  # nothing acknowledged was lost in the restart
    # an HTTP call made just before the database went away, whose result could not be committed,
    # is made again once (README: an interrupted effect re-runs with the same Idempotency-Key)
    states = dict(world.query("SELECT state, count(*) FROM executions GROUP BY state"))
    assert states == {"SUCCESS": 60}, states
    keys = world.continuations()
    assert len(keys) == 60 and max(keys.values()) <= 2, keys.most_common(3)
    repeated = sum(1 for n in keys.values() if n > 1)
    world.check_logs()
    world.verify()
    print(f"audit reads by replica C in 4 s: {reads[0]} with one polling console, {reads[1]} with twenty; "
          f"{len(seen)} events followed across the restart; {repeated} continuation(s) cut by the stop made again")


def audit_reads(world: World) -> int:
    """Scans of the audit table so far (PostgreSQL's statistics, flushed within a second)."""
    time.sleep(1.1)
    row = world.query("SELECT coalesce(seq_scan, 0) + coalesce(idx_scan, 0) FROM pg_stat_user_tables"
                      " WHERE relname = 'audit'")
    return int(row[0][0]) if row else 0


def test_due_timers_and_the_outbox_fire_once_across_replicas(world: World, request: pytest.FixtureRequest) -> None:
    """Requests that expire 2 s after they are created (resumed with defaults), with a Slack
    notification for each expiry: three replicas race for the timers and the outbox; each
    request expires once, each execution continues once, each notification is delivered once."""
    size = sizes(request, 200, 1000)
    world.start_replicas(3, notify=True)
    engine = Engine(world.tmp / "starter", [world.flows], database=world.url)
    try:
        svc = ApprovalService(engine)
        for _ in range(size):  # some expire while the rest are started
            svc.start_execution(Identity("carol"), NS, "expiring", {})
    finally:
        engine.close()
    world.wait_all_ended(size, timeout=300)
    expiring = {r[0] for r in world.query("SELECT id FROM requests")}
    assert len(expiring) == size
    deadline = time.monotonic() + 60
    while len(world.listener.requests_to("/slack")) < size and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(2.0)  # a duplicate would arrive now
    world.check_continued_once(size)
    expired = dict(world.query("SELECT request_id, count(*) FROM audit WHERE action='request.expired'"
                               " GROUP BY request_id"))
    assert set(expired) == expiring and set(expired.values()) == {1}
    slack = collections.Counter(r.headers["Idempotency-Key"] for r in world.listener.requests_to("/slack"))
    assert len(slack) == size and set(slack.values()) == {1}, slack.most_common(3)
    world.check_logs()
    world.verify()


def test_a_replica_with_bad_heartbeat_settings_says_so(tmp_path: Path, pg_url: str) -> None:
    flows = write_flows(tmp_path / "flows", {})
    serve = Serve(tmp_path / "data", flows, tmp_path, database=pg_url,
                  env={"SIGNOFF_HEARTBEAT_EVERY": "30", "SIGNOFF_HEARTBEAT_DEAD_AFTER": "40"})
    with pytest.raises(AssertionError):
        serve.start(timeout=30)
    serve.stop()
    assert "SIGNOFF_HEARTBEAT_DEAD_AFTER" in serve.log and "Traceback" not in serve.log, serve.log[-2000:]

