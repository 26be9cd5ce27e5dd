"""A worker killed with SIGKILL while continuing approved executions loses nothing and doubles
nothing: after a restart every execution has finished exactly once."""
from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from signoff.engine.core import Engine
from signoff.engine.service import ApprovalService
from tests.support import ALICE, BOB, SIGNOFF, clean_env, write_flows

FLOW = """
id: crashy
namespace: t.crash
inputs:
  - id: n
    type: INT
tasks:
  - id: gate
    type: io.kestra.plugin.core.flow.Pause
  - id: work
    type: io.kestra.plugin.scripts.shell.Commands
    commands:
      - echo "working on {{ inputs.n }}"
  - id: after
    type: io.kestra.plugin.core.log.Log
    message: "finished {{ inputs.n }}"
"""

COUNT = 60


def signoff(*args: str) -> list[str]:
    return [*SIGNOFF, *args]


def finished(data_dir: Path) -> int:
    import sqlite3

    conn = sqlite3.connect(data_dir / "signoff.db", timeout=30)
    try:
        return conn.execute("SELECT count(*) FROM executions WHERE state='SUCCESS'").fetchone()[0]
    finally:
        conn.close()


@pytest.mark.parametrize("kill_after", [5, 25, 45])
def test_worker_killed_mid_continuation_finishes_each_execution_once(tmp_path, kill_after):
    flows = write_flows(tmp_path / "flows", {"crashy.yaml": FLOW})
    data = tmp_path / "data"
    engine = Engine(data, [flows])
    svc = ApprovalService(engine)
    ids = [svc.start_execution(BOB, "t.crash", "crashy", {"n": i})["requests"][0]["id"] for i in range(COUNT)]
    # decide without continuing, as a server would: the executions wait in the durable queue
    svc.run_inline = False
    outcomes = svc.approve(ALICE, ids)
    assert all(o.state == "APPROVED" for o in outcomes)

    env = clean_env()
    worker = subprocess.Popen(signoff("worker", "--data-dir", str(data), "--flows", str(flows), "--interval", "0.05"),
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while finished(data) < kill_after and time.monotonic() < deadline:
        time.sleep(0.005)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    done_at_kill = finished(data)
    assert done_at_kill < COUNT, "the worker finished everything before it could be killed"

    restart = subprocess.run(signoff("worker", "--once", "--data-dir", str(data), "--flows", str(flows)),
                             env=env, capture_output=True, text=True, timeout=120)
    assert restart.returncode == 0, restart.stderr

    rows = engine.db.query("SELECT state, count(*) AS n FROM executions GROUP BY state")
    assert {r["state"]: r["n"] for r in rows} == {"SUCCESS": COUNT}
    ended = engine.db.query("SELECT execution_id, count(*) AS n FROM audit WHERE action='execution.ended'"
                            " GROUP BY execution_id")
    assert len(ended) == COUNT and all(r["n"] == 1 for r in ended)
    logs = engine.db.query("SELECT execution_id, count(*) AS n FROM logs WHERE path='after' GROUP BY execution_id")
    assert len(logs) == COUNT and all(r["n"] == 1 for r in logs)
    assert engine.db.query_one("SELECT count(*) FROM work")[0] == 0
    decisions = engine.db.query_one("SELECT count(*) FROM decisions")[0]
    assert decisions == COUNT
