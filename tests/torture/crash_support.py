"""What crashes (a) and (c) share: the flow whose executions are bulk-approved, the template
data directory of paused executions, the choice of the kill moment, and the invariants checked
after a kill and a restart."""
from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from signoff.engine.core import Engine
from signoff.engine.identity import Identity
from signoff.engine.service import ApprovalService
from tests.support import write_flows
from tests.torture.support import connect, no_traceback, signoff

BULK_FLOW = """
id: bulk
namespace: torture.crash
inputs:
  - id: n
    type: INT
tasks:
  - id: gate
    type: io.kestra.plugin.core.flow.Pause
  - id: after
    type: io.kestra.plugin.core.log.Log
    message: "approved {{ inputs.n }}"
"""


def build_template(root: Path, count: int) -> tuple[Path, Path, list[str]]:
    """``count`` executions of BULK_FLOW paused at their gate, in a closed data directory kept as
    a template: (flows dir, template dir, pending request ids)."""
    flows = write_flows(root / "flows", {"bulk.yaml": BULK_FLOW})
    template = root / "template"
    engine = Engine(template, [flows])
    # building the template needs no durability (it is closed cleanly below): skip the fsyncs
    engine.db.connection().execute("PRAGMA synchronous=OFF")
    svc = ApprovalService(engine, run_inline=False)
    for n in range(count):
        svc.start_execution(Identity("bob"), "torture.crash", "bulk", {"n": n})
    svc.tick()  # run them all to their gate, in chunks
    ids = [r["id"] for r in svc.list_pending(Identity("bob"))]
    assert len(ids) == count
    engine.close()
    return flows, template, ids


def kill_delay(seed: str, kill_point: int, decide: float, duration: float) -> float:
    """Seconds to wait before the kill, from ``random.Random(seed)``: even kill points kill while
    decisions are being committed (within ``decide``), odd ones while the approved executions
    are being continued (between ``decide`` and ``duration``): the two phases of a bulk approve."""
    rng = random.Random(seed)
    if kill_point % 2 == 0:
        return rng.uniform(0.0, decide)
    return rng.uniform(decide, duration)


class Store:
    """Where a crash test keeps its data: the SQLite file in ``data`` or, with ``database``, a
    PostgreSQL database (``data`` then holds only the engine's local state)."""

    def __init__(self, data: Path, database: str | None = None) -> None:
        self.data = data
        self.database = database

    @property
    def args(self) -> tuple[str, ...]:
        """The global options that put a `signoff` command on this store."""
        return ("--database", self.database) if self.database else ()

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        if self.database:
            import psycopg

            with psycopg.connect(self.database) as conn:
                return [tuple(r) for r in conn.execute(sql).fetchall()]
        conn = connect(self.data)
        try:
            return [tuple(r) for r in conn.execute(sql).fetchall()]
        finally:
            conn.close()


def pg_template(cluster: Any, root: Path, count: int) -> tuple[Path, str, list[str]]:
    """:func:`build_template` on PostgreSQL: a database of ``count`` paused executions, kept as
    a template (``CREATE DATABASE ... TEMPLATE``, see :func:`pg_copy`): (flows dir, its name, ids)."""
    flows = write_flows(root / "flows", {"bulk.yaml": BULK_FLOW})
    url = cluster.new_database("crashtpl")
    engine = Engine(root / "pg-template", [flows], database=url)
    svc = ApprovalService(engine, run_inline=False)
    for n in range(count):
        svc.start_execution(Identity("bob"), "torture.crash", "bulk", {"n": n})
    svc.tick()
    ids = [r["id"] for r in svc.list_pending(Identity("bob"))]
    assert len(ids) == count
    engine.close()
    return flows, database_name(url), ids


def database_name(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url).path.lstrip("/")


def pg_copy(cluster: Any, template: str) -> str:
    """A fresh database copied from ``template`` (nobody may be connected to it); its URL."""
    url = cluster.new_database("crash")
    name = database_name(url)
    cluster.psql(f'DROP DATABASE "{name}"')
    cluster.psql(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    return url


def check(data: Path | Store, flows: Path, *, acked: set[str], ids: list[str], after_worker: bool,
          verify: bool = True) -> dict[str, int]:
    """The invariants after a crash and a restart; returns the decision count per request."""
    store = data if isinstance(data, Store) else Store(data)
    q = store.query
    decisions = dict(q("SELECT request_id, count(*) AS n FROM decisions GROUP BY request_id"))
    doubled = {k: v for k, v in decisions.items() if v > 1}
    assert not doubled, f"requests decided more than once: {list(doubled.items())[:5]}"
    lost = acked - set(decisions)
    assert not lost, f"{len(lost)} acknowledged decisions are missing, e.g. {sorted(lost)[:3]}"
    assert set(decisions) <= set(ids)
    actors = set(q("SELECT DISTINCT actor, verdict FROM decisions"))
    assert actors <= {("alice", "approve")}, actors
    approved_events = dict(q("SELECT request_id, count(*) FROM audit WHERE action='request.approved'"
                             " GROUP BY request_id"))
    assert approved_events == dict.fromkeys(decisions, 1), "a decision and its audit event disagree"
    states = dict(q("SELECT id, state FROM requests"))
    for request_id in ids:
        expected = "APPROVED" if request_id in decisions else "PENDING"
        assert states[request_id] == expected, (request_id, states[request_id], expected)
    logs = dict(q("SELECT execution_id, count(*) AS n FROM logs WHERE path='after' GROUP BY execution_id"))
    twice = {k: v for k, v in logs.items() if v > 1}
    assert not twice, f"post-approval task ran more than once: {list(twice.items())[:5]}"
    if after_worker:
        rows = q("SELECT r.id, r.execution_id, e.state FROM requests r JOIN executions e ON e.id = r.execution_id")
        for request_id, execution_id, state in rows:
            if request_id in decisions:
                assert state == "SUCCESS", (request_id, state)
                assert logs.get(execution_id) == 1, (request_id, "approved but `after` never ran")
            else:
                assert state == "PAUSED", (request_id, state)
                assert execution_id not in logs
        assert q("SELECT count(*) FROM work")[0][0] == 0, "work left in the queue"
    if not verify:
        return decisions
    result = signoff(*store.args, "audit", "verify", data_dir=store.data, flows=flows, timeout=300)
    no_traceback(result)
    assert result.returncode == 0, result.stdout + result.stderr
    return decisions
