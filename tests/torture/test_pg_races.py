"""Read-then-write races that PostgreSQL's READ COMMITTED exposes (SQLite's single writer hides
them), each run for real: two or three engines on one database, each with its own connection
pool (as replicas have), their threads released together by a barrier.

Short counts in CI; ``--long`` runs the issue's full counts.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from signoff.engine.audit.verify import verify_chain
from signoff.engine.clock import format_time
from signoff.engine.core import Engine
from signoff.engine.identity import Identity
from signoff.engine.policy import load_policy
from signoff.engine.service import ApprovalService
from tests.support import write_flows
from tests.torture.conftest import long_mode

NS = "pg.race"
FLOWS = {
    "single.yaml": f"""
id: single
namespace: {NS}
tasks:
  - id: gate
    type: io.kestra.plugin.core.flow.Pause
  - id: after
    type: io.kestra.plugin.core.log.Log
    message: "single done"
""",
    "quorum.yaml": f"""
id: quorum
namespace: {NS}
tasks:
  - id: gate
    type: io.kestra.plugin.core.flow.Pause
    required: 2
  - id: after
    type: io.kestra.plugin.core.log.Log
    message: "quorum done"
""",
    "expiring.yaml": f"""
id: expiring
namespace: {NS}
tasks:
  - id: gate
    type: io.kestra.plugin.core.flow.Pause
    timeout: PT1S
    behavior: CANCEL
  - id: after
    type: io.kestra.plugin.core.log.Log
    message: "expiring done"
""",
    # denying `ender` ends the execution (KILLED), which closes `gate` if it is still pending
    "contested.yaml": f"""
id: contested
namespace: {NS}
tasks:
  - id: both
    type: io.kestra.plugin.core.flow.Parallel
    tasks:
      - id: gate
        type: io.kestra.plugin.core.flow.Pause
      - id: ender
        type: io.kestra.plugin.core.flow.Pause
  - id: after
    type: io.kestra.plugin.core.log.Log
    message: "contested done"
""",
}
POLICY = """
fourEyes: true
bindings:
  - role: admin
    subjects: [user:alice, user:bob, user:carol, user:starter]
    namespaces: ["*"]
"""
ALICE, BOB, CAROL, STARTER = (Identity(n, (), source="token") for n in ("alice", "bob", "carol", "starter"))


@pytest.fixture
def replicas(tmp_path: Path, pg_url: str):
    """Three engines ("replicas") on one fresh database; executions are advanced inline by
    whichever engine made the change, as `signoff serve` replicas do in their runners."""
    flows = write_flows(tmp_path / "flows", FLOWS)
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(POLICY)
    engines = [Engine(tmp_path / f"data{i}", [flows], policy=load_policy(policy_file), database=pg_url)
               for i in range(3)]
    yield [ApprovalService(e) for e in engines]
    for e in engines:
        e.close()


def together(*calls: Callable[[], Any]) -> list[Any]:
    """Run the calls in threads released at once; their results (an exception is re-raised)."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(i: int, call: Callable[[], Any]) -> None:
        barrier.wait()
        try:
            results[i] = call()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test thread
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for r in results:
        if isinstance(r, BaseException):
            raise r
    return results


def gate(svc: ApprovalService, flow: str) -> tuple[str, str]:
    execution = svc.start_execution(STARTER, NS, flow, {})
    return execution["id"], execution["requests"][0]["id"]


def task_paths(svc: ApprovalService, execution_id: str) -> list[str]:
    return [r["path"] for r in svc.db.query("SELECT path FROM task_runs WHERE execution_id=?", (execution_id,))]


def test_quorum_write_skew_ends_approved_every_time(replicas, request) -> None:
    """Two replicas approve the same 2-of-2 request at the same moment: without a row lock each
    counts one approval and the request stays pending forever."""
    a, b = replicas[0], replicas[1]
    rounds = 200 if long_mode(request.config) else 30
    for _ in range(rounds):
        execution_id, request_id = gate(a, "quorum")
        together(lambda r=request_id: a.approve(ALICE, [r], origin="a"),
                 lambda r=request_id: b.approve(BOB, [r], origin="b"))
        shown = a.show_request(ALICE, request_id) if hasattr(a, "show_request") else None
        row = a.db.query_one("SELECT state FROM requests WHERE id=?", (request_id,))
        assert row["state"] == "APPROVED", (request_id, shown)
        assert len(a.db.query("SELECT 1 FROM decisions WHERE request_id=?", (request_id,))) == 2
        a.tick()
        assert task_paths(a, execution_id).count("after") == 1
    assert verify_chain(a.db).ok


def test_one_decision_per_single_approver_request(replicas) -> None:
    a, b, c = replicas
    ids = [gate(a, "single") for _ in range(20)]
    for _execution_id, request_id in ids:
        outcomes = together(lambda r=request_id: a.approve(ALICE, [r]), lambda r=request_id: b.approve(BOB, [r]),
                            lambda r=request_id: c.deny(CAROL, [r], reason="no"))
        kinds = sorted(o[0].outcome for o in outcomes)
        assert kinds == ["already_decided", "already_decided", "decided"], outcomes
        assert len(a.db.query("SELECT 1 FROM decisions WHERE request_id=?", (request_id,))) == 1
    for svc in replicas:
        svc.tick()
    for execution_id, _ in ids:
        assert task_paths(a, execution_id).count("after") <= 1
    assert verify_chain(a.db).ok


def test_bulk_decides_over_overlapping_requests_never_deadlock(replicas) -> None:
    """Three bulk approvals of the same 150 requests in three different orders: every request
    decided once, no deadlock or other database error reaches an outcome."""
    a, b, c = replicas
    ids = [gate(a, "single")[1] for _ in range(150)]
    orders = [ids, list(reversed(ids)), ids[75:] + ids[:75]]
    results = together(lambda: a.approve(ALICE, orders[0]), lambda: b.approve(BOB, orders[1]),
                       lambda: c.approve(CAROL, orders[2]))
    for outcomes in results:
        assert {o.outcome for o in outcomes} <= {"decided", "already_decided"}, \
            [o.message for o in outcomes if o.outcome not in ("decided", "already_decided")]
    decided = [o.id for outcomes in results for o in outcomes if o.outcome == "decided"]
    assert sorted(decided) == sorted(ids)
    assert a.db.query_one("SELECT count(*) FROM decisions")[0] == 150
    assert verify_chain(a.db).ok


def test_same_idempotency_key_through_two_replicas(replicas) -> None:
    a, b = replicas[0], replicas[1]
    for _ in range(10):
        _, request_id = gate(a, "single")
        first, second = together(lambda r=request_id: a.approve(ALICE, [r], idempotency_key="k-" + r),
                                 lambda r=request_id: b.approve(ALICE, [r], idempotency_key="k-" + r))
        assert first[0].outcome == second[0].outcome == "decided", (first, second)
        assert len(a.db.query("SELECT 1 FROM decisions WHERE request_id=?", (request_id,))) == 1


def test_decide_cancel_expiry_and_execution_end_race_to_one_state(replicas) -> None:
    """An approval, a cancel, the expiry timer and the end of the execution (killed by the
    cancel) on one request at once: the request is closed exactly once, by one of them, and the
    audit trail says the same."""
    a, b, c = replicas
    for _ in range(15):
        execution_id, request_id = gate(a, "expiring")
        # make the expiry due now, so the timer fires in the race
        past = format_time(a.engine.clock.now())
        a.db.query("UPDATE timers SET due_at=? WHERE request_id=?", (past, request_id))
        together(lambda r=request_id: a.approve(ALICE, [r]), lambda r=request_id: b.cancel(BOB, [r], reason="race"),
                 lambda: c.tick())
        for svc in replicas:
            svc.tick()
        row = a.db.query_one("SELECT state FROM requests WHERE id=?", (request_id,))
        closing = [r[0] for r in a.db.query(
            "SELECT action FROM audit WHERE request_id=? AND action IN ('request.approved', 'request.cancelled',"
            " 'request.expired') ORDER BY seq", (request_id,))]
        assert len(closing) == 1, closing
        assert row["state"] == {"request.approved": "APPROVED", "request.cancelled": "CANCELLED",
                                "request.expired": "EXPIRED"}[closing[0]] or closing[0] == "request.expired"
        execution = a.get_execution(STARTER, execution_id)
        assert execution["state"] in ("SUCCESS", "KILLED", "CANCELLED", "FAILED", "WARNING"), execution
        assert task_paths(a, execution_id).count("after") <= 1
    assert verify_chain(a.db).ok


def test_due_timers_fire_exactly_once_across_replicas(replicas, request) -> None:
    a = replicas[0]
    count = 1000 if long_mode(request.config) else 150
    ids = [gate(a, "expiring")[1] for _ in range(count)]
    past = format_time(a.engine.clock.now())
    a.db.query("UPDATE timers SET due_at=?", (past,))
    fired = together(*[lambda svc=svc: svc.tick() for svc in replicas])
    while sum(svc.tick() for svc in replicas):
        pass
    expired = a.db.query("SELECT request_id, count(*) FROM audit WHERE action='request.expired' GROUP BY request_id")
    assert {r[0]: r[1] for r in expired} == dict.fromkeys(ids, 1)
    assert sum(fired) >= 1
    assert verify_chain(a.db).ok


def test_a_new_flow_text_started_through_several_replicas_gets_one_revision(replicas) -> None:
    results = together(*[lambda svc=svc: svc.start_execution(STARTER, NS, "single", {}) for svc in replicas])
    revisions = {r["revision"] if "revision" in r else None for r in results}
    rows = replicas[0].db.query("SELECT revision FROM flow_revisions WHERE flow_id='single'")
    assert [r[0] for r in rows] == [1], (rows, revisions)


def test_a_runner_ending_executions_and_a_bulk_decision_never_deadlock(replicas, pg_cluster, request) -> None:
    """A runner holds an execution's work row while it walks it, and when the execution ends it
    locks the pending requests to close them; a decision locks its requests and then queues
    their executions (the same work rows). Taken in opposite orders the two deadlocked, and
    PostgreSQL aborted one of them: a bulk decision was retried, or the runner's tick failed
    ("database conflict ... deadlock detected" in a replica's log; the replica paused). Here a
    runner ends executions (their `ender` was denied) while another replica bulk-approves their
    `gate` requests, a little later or earlier each round: each gate is closed once, by one of
    the two, and no deadlock happens."""
    import random
    import time

    a, b, c = replicas
    rounds, size = (24, 25) if long_mode(request.config) else (6, 25)
    rng = random.Random(6)
    c.run_inline = b.run_inline = False  # queued only: replica A's runner ends them, B decides
    mark = pg_cluster.log_mark()  # PostgreSQL logs each deadlock it breaks, also one a retry hid
    gates: list[str] = []
    approved: set[str] = set()
    ticked = 0
    for _ in range(rounds):
        started = [a.start_execution(STARTER, NS, "contested", {}) for _ in range(size)]
        by_task = [{r["task_id"]: r["id"] for r in e["requests"]} for e in started]
        mine, enders = [t["gate"] for t in by_task], [t["ender"] for t in by_task]
        assert {o.outcome for o in c.deny(CAROL, enders, reason="end it")} == {"decided"}
        pause = rng.uniform(0, 0.03)
        advanced, outcomes = together(lambda: a.tick(),
                                      lambda mine=mine, pause=pause: time.sleep(pause) or b.approve(ALICE, mine))
        ticked += advanced
        kinds = {o.outcome for o in outcomes}
        assert kinds <= {"decided", "already_decided"}, kinds
        approved |= {o.id for o in outcomes if o.outcome == "decided"}
        gates += mine
    while sum(svc.tick() for svc in replicas):
        pass
    logged = pg_cluster.log_since(mark)
    assert "deadlock detected" not in logged, logged[-3000:]
    rows = {r[0]: (r[1], r[2]) for r in a.db.query("SELECT r.id, r.state, e.state FROM requests r"
                                                   " JOIN executions e ON e.id = r.execution_id")}
    for gate in gates:
        state, execution_state = rows[gate]
        assert state == ("APPROVED" if gate in approved else "CANCELLED"), (gate, state)
        assert execution_state == "KILLED", (gate, execution_state)
    print(f"{ticked} advance(s) by the runner in the races; {len(approved)} of {len(gates)} gates approved before"
          " their execution ended")
    assert verify_chain(a.db).ok
