"""A server's start (run_inline=False) runs its first steps in the request that made it, up to
its first pause, but never a task with an outside effect: that is undone and left to the runner,
which runs it exactly once (engine.runtime.runner.LeftToRunner)."""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from signoff.engine.core import Engine
from signoff.engine.identity import Identity
from signoff.engine.service import ApprovalService
from tests.fakes.http_listener import HttpListener
from tests.support import write_flows

BOB = Identity("bob")

GATE = """
id: gate
namespace: ops
tasks:
  - id: note
    type: io.kestra.plugin.core.log.Log
    message: "before the gate"
  - id: approve
    type: io.kestra.plugin.core.flow.Pause
  - id: after
    type: io.kestra.plugin.core.log.Log
    message: approved
"""

HOOK_FIRST = """
id: hook
namespace: ops
tasks:
  - id: note
    type: io.kestra.plugin.core.log.Log
    message: "before the call"
  - id: call
    type: io.kestra.plugin.core.http.Request
    uri: "{url}/hook"
    method: POST
    body: "ping"
  - id: approve
    type: io.kestra.plugin.core.flow.Pause
"""


@pytest.fixture(params=["sqlite", "pg"])
def database(request: pytest.FixtureRequest) -> str | None:
    return request.getfixturevalue("pg_url") if request.param == "pg" else None


def _counts(engine: Engine, execution_id: str) -> dict[str, Any]:
    db = engine.db
    return {
        "work": db.query_one("SELECT count(*) FROM work WHERE execution_id=?", (execution_id,))[0],
        "runs": db.query_one("SELECT count(*) FROM task_runs WHERE execution_id=?", (execution_id,))[0],
        "logs": db.query_one("SELECT count(*) FROM logs WHERE execution_id=?", (execution_id,))[0],
        "requests": db.query_one("SELECT count(*) FROM requests WHERE execution_id=?", (execution_id,))[0],
        "state": db.query_one("SELECT state FROM executions WHERE id=?", (execution_id,))[0],
    }


def test_a_server_start_answers_with_its_pause_and_leaves_no_work(tmp_path: Path, database: str | None) -> None:
    engine = Engine(tmp_path / "data", [write_flows(tmp_path / "flows", {"gate.yaml": GATE})], database=database)
    try:
        svc = ApprovalService(engine, run_inline=False)
        started = svc.start_execution(BOB, "ops", "gate", {})
        assert started["state"] == "PAUSED"
        assert [r["state"] for r in started["requests"]] == ["PENDING"]
        assert started == svc.get_execution(BOB, started["id"])
        assert _counts(engine, started["id"]) == {"work": 0, "runs": 2, "logs": 1, "requests": 1, "state": "PAUSED"}
        assert svc.tick() == 0  # nothing left for the runner
    finally:
        engine.close()


def test_an_outside_effect_is_left_to_the_runner_and_runs_once(tmp_path: Path, database: str | None) -> None:
    with HttpListener() as listener:
        listener.respond("/hook", 200, "ok")
        flows = write_flows(tmp_path / "flows", {"hook.yaml": HOOK_FIRST.format(url=listener.url)})
        engine = Engine(tmp_path / "data", [flows], database=database)
        try:
            svc = ApprovalService(engine, run_inline=False)
            started = svc.start_execution(BOB, "ops", "hook", {})
            # the start's own run is undone, the Log's step too: nothing ran, all is queued
            assert started["state"] == "CREATED" and started["requests"] == [] and started["task_runs"] == []
            assert listener.requests_to("/hook") == []
            assert _counts(engine, started["id"]) == {"work": 1, "runs": 0, "logs": 0, "requests": 0,
                                                      "state": "CREATED"}
            svc.tick()
            after = svc.get_execution(BOB, started["id"])
            assert after["state"] == "PAUSED" and len(listener.requests_to("/hook")) == 1
            assert _counts(engine, started["id"]) == {"work": 0, "runs": 3, "logs": 1, "requests": 1, "state": "PAUSED"}
            svc.tick()
            assert len(listener.requests_to("/hook")) == 1
        finally:
            engine.close()


def test_the_embedded_start_still_runs_the_effect_at_once(tmp_path: Path) -> None:
    with HttpListener() as listener:
        listener.respond("/hook", 200, "ok")
        flows = write_flows(tmp_path / "flows", {"hook.yaml": HOOK_FIRST.format(url=listener.url)})
        engine = Engine(tmp_path / "data", [flows])
        try:
            started = ApprovalService(engine).start_execution(BOB, "ops", "hook", {})
            assert started["state"] == "PAUSED" and len(listener.requests_to("/hook")) == 1
        finally:
            engine.close()


CHAINED = {
    "first.yaml": """
id: first
namespace: ops
tasks:
  - id: note
    type: io.kestra.plugin.core.log.Log
    message: done
""",
    "second.yaml": """
id: second
namespace: ops
tasks:
  - id: note
    type: io.kestra.plugin.core.log.Log
    message: "after {{ trigger.flowId }}"
triggers:
  - id: after_first
    type: io.kestra.plugin.core.trigger.Flow
    conditions:
      - type: io.kestra.plugin.core.condition.ExecutionFlow
        namespace: ops
        flowId: first
""",
}


def test_a_server_keeps_no_list_of_triggered_starts(tmp_path: Path, database: str | None) -> None:
    """What a trigger starts is queued work for the runner; a server's start (which ends the
    first flow at once here) and the runner's tick drop its id instead of keeping it for the
    life of the process, and the runner still runs it, once."""
    engine = Engine(tmp_path / "data", [write_flows(tmp_path / "flows", CHAINED)], database=database)
    try:
        svc = ApprovalService(engine, run_inline=False)
        for _ in range(3):
            assert svc.start_execution(BOB, "ops", "first", {})["state"] == "SUCCESS"
        assert engine.take_triggered() == []
        assert engine.db.query_one("SELECT count(*) FROM work")[0] == 3
        svc.tick()
        assert engine.take_triggered() == []
        states = [r[0] for r in engine.db.query("SELECT state FROM executions WHERE flow_id='second'")]
        assert states == ["SUCCESS"] * 3
        assert engine.db.query_one("SELECT count(*) FROM work")[0] == 0
    finally:
        engine.close()


def test_triggered_starts_are_taken_by_the_thread_that_made_them(tmp_path: Path) -> None:
    engine = Engine(tmp_path / "data", [write_flows(tmp_path / "flows", CHAINED)])
    try:
        engine.note_triggered("mine")
        seen: list[list[str]] = []
        other = threading.Thread(target=lambda: seen.append(engine.take_triggered()))
        other.start()
        other.join()
        assert seen == [[]] and engine.take_triggered() == ["mine"] and engine.take_triggered() == []
    finally:
        engine.close()
