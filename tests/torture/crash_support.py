"""What crashes (a) and (c) share: the flow whose executions are bulk-approved, the template
data directory of paused executions, the choice of the kill moment, and the invariants checked
after a kill and a restart."""
from __future__ import annotations

import random
from pathlib import Path

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


def check(data: Path, flows: Path, *, acked: set[str], ids: list[str], after_worker: bool,
          verify: bool = True) -> dict[str, int]:
    """The invariants after a crash and a restart; returns the decision count per request."""
    conn = connect(data)
    try:
        decisions = {r["request_id"]: r["n"] for r in conn.execute(
            "SELECT request_id, count(*) AS n FROM decisions GROUP BY request_id")}
        doubled = {k: v for k, v in decisions.items() if v > 1}
        assert not doubled, f"requests decided more than once: {list(doubled.items())[:5]}"
        lost = acked - set(decisions)
        assert not lost, f"{len(lost)} acknowledged decisions are missing, e.g. {sorted(lost)[:3]}"
        assert set(decisions) <= set(ids)
        actors = {tuple(r) for r in conn.execute("SELECT DISTINCT actor, verdict FROM decisions")}
        assert actors <= {("alice", "approve")}, actors
        states = {r["id"]: r["state"] for r in conn.execute("SELECT id, state FROM requests")}
        for request_id in ids:
            expected = "APPROVED" if request_id in decisions else "PENDING"
            assert states[request_id] == expected, (request_id, states[request_id], expected)
        logs = {r["execution_id"]: r["n"] for r in conn.execute(
            "SELECT execution_id, count(*) AS n FROM logs WHERE path='after' GROUP BY execution_id")}
        twice = {k: v for k, v in logs.items() if v > 1}
        assert not twice, f"post-approval task ran more than once: {list(twice.items())[:5]}"
        if after_worker:
            rows = conn.execute("SELECT r.id, r.execution_id, e.state FROM requests r"
                                " JOIN executions e ON e.id = r.execution_id").fetchall()
            for r in rows:
                if r["id"] in decisions:
                    assert r["state"] == "SUCCESS", (r["id"], r["state"])
                    assert logs.get(r["execution_id"]) == 1, (r["id"], "approved but `after` never ran")
                else:
                    assert r["state"] == "PAUSED", (r["id"], r["state"])
                    assert r["execution_id"] not in logs
            assert conn.execute("SELECT count(*) FROM work").fetchone()[0] == 0, "work left in the queue"
    finally:
        conn.close()
    if not verify:
        return decisions
    verify = signoff("audit", "verify", data_dir=data, flows=flows, timeout=300)
    no_traceback(verify)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    return decisions
