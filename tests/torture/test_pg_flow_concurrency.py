"""Flow ``concurrency`` on PostgreSQL with several processes ("replicas") starting executions of
one flow at the same moment: the limit holds (engine.runtime.concurrency takes a per-flow lock;
without it READ COMMITTED lets every process count the same free slot).

Each worker is a separate Python process with its own engine and connection pool, as `signoff
serve` replicas are; a multiprocessing barrier releases their starts together. Short counts in
CI; ``--long`` runs more rounds.
"""
from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import Any

import pytest

from signoff.engine.audit.verify import verify_chain
from signoff.engine.core import Engine
from signoff.engine.identity import Identity
from signoff.engine.policy import load_policy
from signoff.engine.service import ApprovalService
from tests.support import write_flows
from tests.torture.conftest import long_mode

NS = "pg.limit"
LIMIT = 2
WORKERS = 4
STARTS_PER_WORKER = 2
POLICY = """
bindings:
  - role: admin
    subjects: [user:starter, user:alice]
    namespaces: ["*"]
"""
STARTER = Identity("starter", (), source="token")
ALICE = Identity("alice", (), source="token")


def limited_flow(flow_id: str, behavior: str) -> str:
    return f"""
id: {flow_id}
namespace: {NS}
concurrency:
  limit: {LIMIT}
  behavior: {behavior}
tasks:
  - id: gate
    type: io.kestra.plugin.core.flow.Pause
  - id: after
    type: io.kestra.plugin.core.log.Log
    message: done
"""


def _worker(index: int, base: str, url: str, flow_ids: list[str], barrier: Any, errors: Any) -> None:
    """One replica: for each round, wait for the others, then start its executions at once."""
    engine = Engine(Path(base) / f"data{index}", [Path(base) / "flows"],
                    policy=load_policy(Path(base) / "policy.yaml"), database=url)
    svc = ApprovalService(engine)
    try:
        for flow_id in flow_ids:
            barrier.wait(60)
            for _ in range(STARTS_PER_WORKER):
                svc.start_execution(STARTER, NS, flow_id, {})
    except BaseException as exc:  # noqa: BLE001 - reported to the test process
        errors.put(f"worker {index}: {type(exc).__name__}: {exc}")
        barrier.abort()
    finally:
        engine.close()


def _race(tmp_path: Path, url: str, flow_ids: list[str]) -> None:
    ctx = multiprocessing.get_context("spawn")  # no pool or socket inherited across fork
    barrier = ctx.Barrier(WORKERS)
    errors = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(i, str(tmp_path), url, flow_ids, barrier, errors))
             for i in range(WORKERS)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(300)
    problems = []
    while not errors.empty():
        problems.append(errors.get())
    assert not problems, problems
    assert [p.exitcode for p in procs] == [0] * WORKERS


@pytest.mark.parametrize("behavior", ["CANCEL", "QUEUE"])
def test_replicas_starting_one_flow_at_once_never_exceed_its_limit(tmp_path: Path, pg_url: str, behavior: str,
                                                                   request: pytest.FixtureRequest) -> None:
    rounds = 25 if long_mode(request.config) else 6
    flow_ids = [f"limited{n}" for n in range(rounds)]
    write_flows(tmp_path / "flows", {f"{f}.yaml": limited_flow(f, behavior) for f in flow_ids})
    (tmp_path / "policy.yaml").write_text(POLICY)
    _race(tmp_path, pg_url, flow_ids)

    engine = Engine(tmp_path / "check", [tmp_path / "flows"], policy=load_policy(tmp_path / "policy.yaml"),
                    database=pg_url)
    svc = ApprovalService(engine)
    try:
        held = "CANCELLED" if behavior == "CANCEL" else "QUEUED"
        for flow_id in flow_ids:
            rows = svc.db.query("SELECT id, state FROM executions WHERE namespace=? AND flow_id=?", (NS, flow_id))
            states = sorted(r["state"] for r in rows)
            # every start was counted: exactly LIMIT run, the rest were held back by the limit
            assert len(rows) == WORKERS * STARTS_PER_WORKER, (flow_id, states)
            assert states.count("PAUSED") == LIMIT, (flow_id, states)
            assert states.count(held) == len(rows) - LIMIT, (flow_id, states)
        if behavior == "QUEUE":
            # ending one frees one slot: the oldest queued execution takes it, and only one
            flow_id = flow_ids[0]
            paused = svc.db.query("SELECT id FROM executions WHERE flow_id=? AND state='PAUSED'", (flow_id,))
            request_id = svc.get_execution(ALICE, paused[0]["id"])["requests"][0]["id"]
            svc.approve(ALICE, [request_id])
            svc.tick()
            states = sorted(r[0] for r in svc.db.query("SELECT state FROM executions WHERE flow_id=?", (flow_id,)))
            assert states.count("SUCCESS") == 1 and states.count("PAUSED") == LIMIT, states
        assert verify_chain(svc.db).ok
    finally:
        engine.close()
