"""The end of an execution and the keys that shape it: `finally`, `afterExecution`, flow
`outputs`, task `retry` (durable due rows, no sleeps) and flow `concurrency` - Kestra's rules,
on a real SQLite file with a real HTTP listener."""
from __future__ import annotations

import json
import subprocess
import textwrap
from datetime import timedelta

import pytest

from signoff.engine.clock import FakeClock, parse_time
from signoff.engine.errors import FlowLoadError
from signoff.engine.flows.loader import load_flow_text
from tests.support import ALICE, BOB, SIGNOFF, clean_env, make_service, runs, write_flows


def logs(execution: dict) -> list[str]:
    return [log["message"] for log in execution["logs"]]


def problems(text: str) -> list[str]:
    with pytest.raises(FlowLoadError) as info:
        load_flow_text(textwrap.dedent(text), "f.yml")
    return [str(p) for p in info.value.problems]


# -- finally / afterExecution ------------------------------------------------------------------

END_FLOW = """
id: ends
namespace: t.ns
inputs:
  - id: mode
    type: SELECT
    values: [ok, fail, gate]
tasks:
  - id: work
    type: io.kestra.plugin.core.execution.Fail
    condition: "{{ inputs.mode == 'fail' }}"
    errorMessage: "work broke"
  - id: gate
    type: io.kestra.plugin.core.flow.Approval
    runIf: "{{ inputs.mode == 'gate' }}"
errors:
  - id: on_error
    type: io.kestra.plugin.core.log.Log
    message: "errors ran"
finally:
  - id: cleanup
    type: io.kestra.plugin.core.log.Log
    message: "finally ran while {{ execution.state }}"
afterExecution:
  - id: report
    type: io.kestra.plugin.core.log.Log
    message: "ended {{ execution.state }}"
"""


@pytest.mark.parametrize("mode, state, expected", [
    ("ok", "SUCCESS", ["finally ran while RUNNING", "ended SUCCESS"]),
    ("fail", "FAILED", ["work broke", "errors ran", "finally ran while RUNNING", "ended FAILED"]),
])
def test_finally_then_after_execution_in_kestra_order(tmp_path, mode, state, expected):
    svc = make_service(tmp_path, {"e.yaml": END_FLOW})
    ex = svc.start_execution(BOB, "t.ns", "ends", {"mode": mode})
    assert ex["state"] == state
    assert logs(ex) == expected
    if mode == "fail":
        assert ex["error"] == "work broke"


def test_finally_and_after_execution_run_after_a_deny(tmp_path):
    svc = make_service(tmp_path, {"e.yaml": END_FLOW})
    ex = svc.start_execution(BOB, "t.ns", "ends", {"mode": "gate"})
    assert ex["state"] == "PAUSED" and logs(ex) == []  # nothing of the end runs while waiting
    svc.deny(ALICE, [ex["requests"][0]["id"]], reason="no")
    ex = svc.get_execution(ALICE, ex["id"])
    assert ex["state"] == "KILLED" and ex["error"] == "denied by alice: no"
    assert logs(ex) == ["finally ran while RUNNING", "ended KILLED"]


def test_failing_finally_fails_a_success_and_after_execution_never_changes_the_state(tmp_path):
    svc = make_service(tmp_path, {"e.yaml": """
        id: e
        namespace: t.ns
        tasks:
          - id: work
            type: io.kestra.plugin.core.log.Log
            message: fine
        finally:
          - id: cleanup
            type: io.kestra.plugin.core.execution.Fail
            errorMessage: "cleanup broke"
        afterExecution:
          - id: report
            type: io.kestra.plugin.core.execution.Fail
            errorMessage: "report broke"
          - id: never
            type: io.kestra.plugin.core.log.Log
            message: never
        """})
    ex = svc.start_execution(BOB, "t.ns", "e", {})
    assert ex["state"] == "FAILED" and ex["error"] == "cleanup broke"
    assert runs(ex) == {"work": "SUCCESS", "cleanup": "FAILED", "report": "FAILED"}

    svc = make_service(tmp_path / "2", {"e.yaml": """
        id: e
        namespace: t.ns
        tasks:
          - id: work
            type: io.kestra.plugin.core.log.Log
            message: fine
        afterExecution:
          - id: report
            type: io.kestra.plugin.core.execution.Fail
            errorMessage: "report broke"
        """})
    ex = svc.start_execution(BOB, "t.ns", "e", {})
    assert ex["state"] == "SUCCESS" and ex["error"] is None
    assert runs(ex) == {"work": "SUCCESS", "report": "FAILED"}


def test_end_blocks_cannot_wait_for_decisions():
    assert problems("""\
        id: f
        namespace: t
        tasks:
          - id: a
            type: io.kestra.plugin.core.log.Log
            message: x
        finally:
          - id: gate
            type: io.kestra.plugin.core.flow.Pause
        afterExecution:
          - id: seq
            type: io.kestra.plugin.core.flow.Sequential
            tasks:
              - id: ok
                type: io.kestra.plugin.core.flow.Approval
        """) == [
        "f.yml:8:5: task `gate`: a Pause cannot be in `finally`; the end of an execution does not wait for "
        "decisions, put it in `tasks`",
        "f.yml:14:9: task `ok`: a Approval cannot be in `afterExecution`; the end of an execution does not "
        "wait for decisions, put it in `tasks`",
    ]


# -- retry -------------------------------------------------------------------------------------

RETRY_FLOW = """
id: pay
namespace: t.ns
tasks:
  - id: submit
    type: io.kestra.plugin.core.http.Request
    uri: "BASE/pay"
    method: POST
    retry:
      RETRY
"""


def flaky(failures: int):
    """A responder that answers 503 ``failures`` times, then 200."""
    calls = {"n": 0}

    def answer(_request):
        calls["n"] += 1
        return (503, "busy") if calls["n"] <= failures else (200, "paid")
    return answer


def retry_service(tmp_path, http_listener, retry: str, clock: FakeClock):
    text = RETRY_FLOW.replace("BASE", http_listener.url).replace("RETRY", retry.replace("\n", "\n      "))
    return make_service(tmp_path, {"p.yaml": text}, clock=clock)


def retry_at(svc, execution_id: str) -> str:
    row = svc.db.query_one("SELECT value FROM task_runs WHERE execution_id=? AND path='submit'", (execution_id,))
    return json.loads(row["value"])["retryAt"]


def test_constant_retry_is_a_durable_due_row_with_the_attempt_in_the_key(tmp_path, http_listener):
    clock = FakeClock()
    http_listener.respond("/pay", flaky(2))
    svc = retry_service(tmp_path, http_listener, "type: constant\ninterval: PT5M\nmaxAttempts: 3", clock)
    ex = svc.start_execution(BOB, "t.ns", "pay", {})
    assert ex["state"] == "RUNNING" and runs(ex) == {"submit": "RETRYING"}
    assert retry_at(svc, ex["id"]) == "2026-01-05T09:05:00.000000Z"
    work = svc.db.query_one("SELECT ready_at, lease_owner FROM work WHERE execution_id=?", (ex["id"],))
    assert (work["ready_at"], work["lease_owner"]) == ("2026-01-05T09:05:00.000000Z", None)
    svc.tick()  # not due yet: nothing is sent
    assert len(http_listener.requests_to("/pay")) == 1
    clock.advance(timedelta(minutes=5))
    # another process (a new engine on the same data directory) makes the next attempt
    other = make_service(tmp_path, clock=clock, flow_dirs=[tmp_path / "flows"])
    other.tick()
    assert len(http_listener.requests_to("/pay")) == 2
    assert retry_at(svc, ex["id"]) == "2026-01-05T09:10:00.000000Z"
    clock.advance(timedelta(minutes=5))
    svc.tick()
    ex = svc.get_execution(ALICE, ex["id"])
    assert ex["state"] == "SUCCESS"
    [run] = ex["task_runs"]
    assert run["attempt"] == 3 and ex["outputs"]["submit"]["body"] == "paid"
    keys = [r.headers["Idempotency-Key"] for r in http_listener.requests_to("/pay")]
    assert keys == [f"{ex['id']}:submit:{n}" for n in (1, 2, 3)]
    assert [m for m in logs(ex) if m.startswith("attempt")] == [
        "attempt 1 failed: HTTP 503 from " + http_listener.url + "/pay: busy; attempt 2 at 2026-01-05T09:05:00.000000Z",
        "attempt 2 failed: HTTP 503 from " + http_listener.url + "/pay: busy; attempt 3 at 2026-01-05T09:10:00.000000Z",
    ]


def test_exponential_retry_ends_failed_with_the_real_error_and_warning_on_retry(tmp_path, http_listener):
    clock = FakeClock()
    http_listener.respond("/pay", 503, "busy")
    svc = retry_service(tmp_path, http_listener,
                        "type: exponential\ninterval: PT1M\ndelayFactor: 3\nmaxInterval: PT5M\nmaxAttempts: 4", clock)
    ex = svc.start_execution(BOB, "t.ns", "pay", {})
    waits = []
    for _ in range(3):
        due = retry_at(svc, ex["id"])
        waits.append(due)
        clock.advance(parse_time(due) - clock.now())
        svc.tick()
    # 1 min, then 3 min, then 9 min capped at maxInterval 5 min
    assert waits == ["2026-01-05T09:01:00.000000Z", "2026-01-05T09:04:00.000000Z", "2026-01-05T09:09:00.000000Z"]
    ex = svc.get_execution(ALICE, ex["id"])
    assert ex["state"] == "FAILED" and ex["task_runs"][0]["attempt"] == 4
    assert ex["error"] == f"HTTP 503 from {http_listener.url}/pay: busy"
    assert len(http_listener.requests_to("/pay")) == 4

    http_listener.respond("/pay", flaky(1))
    svc = retry_service(tmp_path / "w", http_listener,
                        "type: constant\ninterval: PT1S\nmaxDuration: PT1M\nwarningOnRetry: true", clock)
    ex = svc.start_execution(BOB, "t.ns", "pay", {})
    clock.advance(timedelta(seconds=1))
    svc.tick()
    ex = svc.get_execution(ALICE, ex["id"])
    assert ex["state"] == "WARNING" and runs(ex) == {"submit": "WARNING"}


def test_max_duration_bounds_the_retries(tmp_path, http_listener):
    clock = FakeClock()
    http_listener.respond("/pay", 503, "busy")
    svc = retry_service(tmp_path, http_listener, "type: constant\ninterval: PT40S\nmaxDuration: PT1M", clock)
    ex = svc.start_execution(BOB, "t.ns", "pay", {})
    clock.advance(timedelta(seconds=40))
    svc.tick()  # attempt 2 at +40 s; attempt 3 would start at +80 s, beyond one minute
    ex = svc.get_execution(ALICE, ex["id"])
    assert ex["state"] == "FAILED" and ex["task_runs"][0]["attempt"] == 2


def test_retry_inside_finally_after_a_deny_keeps_the_deny(tmp_path, http_listener):
    clock = FakeClock()
    http_listener.respond("/release", flaky(1))
    svc = make_service(tmp_path, {"f.yaml": f"""
        id: f
        namespace: t.ns
        tasks:
          - id: gate
            type: io.kestra.plugin.core.flow.Approval
        finally:
          - id: release
            type: io.kestra.plugin.core.http.Request
            uri: "{http_listener.url}/release"
            retry: {{type: constant, interval: PT1M, maxAttempts: 2}}
        """}, clock=clock)
    ex = svc.start_execution(BOB, "t.ns", "f", {})
    svc.deny(ALICE, [ex["requests"][0]["id"]], reason="stop")
    ex = svc.get_execution(ALICE, ex["id"])
    assert ex["state"] == "RUNNING" and runs(ex)["release"] == "RETRYING"
    clock.advance(timedelta(minutes=1))
    svc.tick()
    ex = svc.get_execution(ALICE, ex["id"])
    assert ex["state"] == "KILLED" and ex["error"] == "denied by alice: stop"
    assert runs(ex) == {"gate": "KILLED", "release": "SUCCESS"}


def test_retry_is_checked_at_load():
    assert problems("""\
        id: f
        namespace: t
        tasks:
          - id: a
            type: io.kestra.plugin.core.log.Log
            message: x
            retry: {type: exponential, interval: PT1S}
          - id: b
            type: io.kestra.plugin.core.flow.Sequential
            retry: {type: constant, interval: PT1S, maxAttempts: 2}
            tasks:
              - id: c
                type: io.kestra.plugin.core.log.Log
                message: x
                retry: {type: constant, interval: soon, maxAttempts: 0, behavior: CREATE_NEW_EXECUTION}
        """) == [
        "f.yml:7:5: `retry` of type exponential needs `maxInterval`",
        "f.yml:7:5: `retry` needs `maxAttempts` or `maxDuration` (or both), so that it ends",
        "f.yml:10:5: `retry` is not supported on Sequential: only tasks that do work themselves (HTTP, shell, "
        "notifications, Log, ...) are retried; put `retry` on those inside it",
        "f.yml:15:43: `retry.interval`: invalid duration `soon`: write an ISO-8601 duration such as PT1H, PT30M "
        "or P1D",
        "f.yml:15:62: `retry.maxAttempts` must be at least 1, found 0",
        "f.yml:15:75: `retry.behavior` must be one of RETRY_FAILED_TASK; found `CREATE_NEW_EXECUTION`",
    ]


# -- flow outputs ------------------------------------------------------------------------------

OUTPUTS_FLOW = """
id: out
namespace: t.ns
inputs:
  - id: amount
    type: STRING
tasks:
  - id: gate
    type: io.kestra.plugin.core.flow.Approval
  - id: calc
    type: io.kestra.plugin.core.output.OutputValues
    values:
      total: "{{ inputs.amount }}"
outputs:
  - id: total
    type: INT
    value: "{{ outputs.calc.values.total }}"
  - id: approver
    type: STRING
    value: "{{ outputs.gate.by }}"
"""


def test_flow_outputs_are_typed_and_shown(tmp_path):
    flows = write_flows(tmp_path / "flows", {"o.yaml": OUTPUTS_FLOW})
    svc = make_service(tmp_path, flow_dirs=[flows])
    ex = svc.start_execution(BOB, "t.ns", "out", {"amount": "42"})
    assert ex["flow_outputs"] is None  # not before the end
    svc.approve(ALICE, [ex["requests"][0]["id"]])
    ex = svc.get_execution(ALICE, ex["id"])
    assert ex["state"] == "SUCCESS"
    assert ex["flow_outputs"] == {"total": 42, "approver": "alice"}
    svc.engine.close()
    env = clean_env()
    base = [*SIGNOFF, "--data-dir", str(tmp_path / "data"), "--flows", str(flows)]
    shown = subprocess.run([*base, "executions", "show", ex["id"], "--json"], env=env, capture_output=True,
                           text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["flow_outputs"] == {"total": 42, "approver": "alice"}
    text = subprocess.run([*base, "executions", "show", ex["id"]], env=env, capture_output=True, text=True,
                          timeout=60).stdout
    assert "\nOutputs\n  {\n" in text and '    "total": 42' in text and '    "approver": "alice"' in text


def test_a_flow_output_that_does_not_fit_fails_a_success_but_never_a_deny(tmp_path):
    svc = make_service(tmp_path, {"o.yaml": OUTPUTS_FLOW})
    ex = svc.start_execution(BOB, "t.ns", "out", {"amount": "lots"})
    svc.approve(ALICE, [ex["requests"][0]["id"]])
    ex = svc.get_execution(ALICE, ex["id"])
    assert ex["state"] == "FAILED"
    assert ex["error"] == "flow output `total`, it must be an integer, but received `lots`"
    assert ex["flow_outputs"] == {"approver": "alice"}

    ex = svc.start_execution(BOB, "t.ns", "out", {"amount": "1"})
    svc.deny(ALICE, [ex["requests"][0]["id"]], reason="no")
    ex = svc.get_execution(ALICE, ex["id"])
    assert ex["state"] == "KILLED" and ex["error"] == "denied by alice: no"
    assert ex["flow_outputs"] == {"approver": "alice"}
    assert [(log["level"], log["message"]) for log in ex["logs"] if log["path"] == "outputs"] == [
        ("WARN", "flow output `total`: `outputs.calc` is not defined in expression `outputs.calc.values.total`")]


def test_flow_outputs_are_checked_at_load():
    assert problems("""\
        id: f
        namespace: t
        tasks:
          - id: a
            type: io.kestra.plugin.core.log.Log
            message: x
        outputs:
          - id: a
            type: INTEGER
            value: 1
          - id: a
            type: STRING
          - {id: "bad id", type: STRING, value: x, colour: red}
        """) == [
        "f.yml:9:11: `outputs[0]` needs a `type` (one of STRING, INT, FLOAT, BOOLEAN, BOOL, SELECT, MULTISELECT, "
        "DATE, DATETIME, TIME, DURATION, JSON, YAML, URI, EMAIL, SECRET, FILE, ARRAY); found `INTEGER`, did you "
        "mean `INT`?",
        "f.yml:11:5: `outputs[1]` needs a `value` (usually an expression such as \"{{ outputs.task_id.value }}\")",
        "f.yml:11:9: duplicate output id `a` (also at f.yml:8:9)",
        "f.yml:13:10: `outputs[2]` needs an `id` of letters, digits, `.`, `_` and `-`, found `bad id`",
        "f.yml:13:44: unknown key `colour` in `outputs[2]`; allowed keys: id, type, value, description, "
        "displayName, required",
    ]


# -- concurrency -------------------------------------------------------------------------------

def concurrency_flow(behavior: str) -> str:
    return f"""
        id: deploy
        namespace: t.ns
        concurrency:
          limit: 1
          behavior: {behavior}
        tasks:
          - id: gate
            type: io.kestra.plugin.core.flow.Approval
          - id: done
            type: io.kestra.plugin.core.log.Log
            message: deployed
        """


def test_concurrency_queue_starts_the_next_when_one_ends(tmp_path):
    svc = make_service(tmp_path, {"d.yaml": concurrency_flow("QUEUE")})
    first = svc.start_execution(BOB, "t.ns", "deploy", {})
    second = svc.start_execution(BOB, "t.ns", "deploy", {})
    third = svc.start_execution(BOB, "t.ns", "deploy", {})
    assert (first["state"], second["state"], third["state"]) == ("PAUSED", "QUEUED", "QUEUED")
    assert second["task_runs"] == [] and second["requests"] == []
    svc.approve(ALICE, [first["requests"][0]["id"]])
    states = [svc.get_execution(ALICE, e["id"])["state"] for e in (first, second, third)]
    assert states == ["SUCCESS", "PAUSED", "QUEUED"]  # the oldest queued one took the slot
    second = svc.get_execution(ALICE, second["id"])
    svc.deny(ALICE, [second["requests"][0]["id"]], reason="no")
    assert svc.get_execution(ALICE, third["id"])["state"] == "PAUSED"
    actions = [r["action"] for r in svc.db.query("SELECT action FROM audit WHERE execution_id=? ORDER BY seq",
                                                 (third["id"],))]
    assert actions[:3] == ["execution.started", "execution.queued", "execution.dequeued"]


@pytest.mark.parametrize("behavior, state", [("CANCEL", "CANCELLED"), ("FAIL", "FAILED")])
def test_concurrency_cancel_or_fail_ends_the_extra_execution_at_once(tmp_path, behavior, state):
    svc = make_service(tmp_path, {"d.yaml": concurrency_flow(behavior)})
    first = svc.start_execution(BOB, "t.ns", "deploy", {})
    extra = svc.start_execution(BOB, "t.ns", "deploy", {})
    assert extra["state"] == state and extra["ended_at"] is not None and extra["task_runs"] == []
    assert extra["error"] == ("concurrency limit reached: 1 execution(s) of t.ns.deploy are running and the "
                              f"flow allows 1 (behavior {behavior})")
    svc.approve(ALICE, [first["requests"][0]["id"]])
    again = svc.start_execution(BOB, "t.ns", "deploy", {})  # the slot is free again
    assert again["state"] == "PAUSED"


def test_concurrency_is_checked_at_load():
    assert problems("""\
        id: f
        namespace: t
        concurrency: {limit: 0, behavior: WAIT, max: 2}
        tasks:
          - id: a
            type: io.kestra.plugin.core.log.Log
            message: x
        """) == [
        "f.yml:3:22: `limit` must be a whole number of at least 1, found `0`",
        "f.yml:3:35: `behavior` must be one of QUEUE, CANCEL, FAIL; found `WAIT`",
        "f.yml:3:41: unknown key `max` in `concurrency`; allowed keys: limit, behavior",
    ]


START_SCRIPT = r"""
import sys
from signoff.engine.core import Engine
from signoff.engine.identity import Identity
from signoff.engine.service import ApprovalService
data, flows, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
svc = ApprovalService(Engine(data, [flows]))
for _ in range(count):
    svc.start_execution(Identity("bob"), "t.ns", "deploy", {})
"""


def test_concurrency_limit_holds_when_processes_start_at_once(tmp_path):
    """Three processes start 15 executions each of a flow that allows 2 at once: exactly two
    run, the rest queue; each end lets exactly one more start."""
    flows = write_flows(tmp_path / "flows", {"d.yaml": concurrency_flow("QUEUE").replace("limit: 1", "limit: 2")})
    make_service(tmp_path, flow_dirs=[flows]).engine.close()  # the database exists before the race
    script = tmp_path / "start.py"
    script.write_text(START_SCRIPT)
    procs = [subprocess.Popen([*SIGNOFF[:1], str(script), str(tmp_path / "data"), str(flows), "15"],
                              env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    svc = make_service(tmp_path, flow_dirs=[flows])

    def states() -> dict[str, int]:
        rows = svc.db.query("SELECT state, count(*) AS n FROM executions GROUP BY state")
        return {r["state"]: r["n"] for r in rows}

    assert states() == {"PAUSED": 2, "QUEUED": 43}
    for done in range(1, 4):
        [request] = svc.list_pending(ALICE)[:1]
        svc.approve(ALICE, [request["id"]])
        assert states() == {"SUCCESS": done, "PAUSED": 2, "QUEUED": 43 - done}


CRASH_SCRIPT = r"""
import sys
from signoff.engine.core import Engine
from signoff.engine.identity import Identity
from signoff.engine.service import ApprovalService
svc = ApprovalService(Engine(sys.argv[1], [sys.argv[2]]))
svc.start_execution(Identity("bob"), "t.ns", "pay", {})
"""


def test_an_attempt_cut_off_by_a_crash_is_made_again_with_the_same_key(tmp_path, http_listener):
    """The process dies while attempt 1 is in flight: the next process makes attempt 1 again
    (same Idempotency-Key, so the receiver can drop the duplicate); it fails, and the retry
    is attempt 2, with a new key."""
    import threading
    import time

    release = threading.Event()
    calls = {"n": 0}

    def answer(_request):
        calls["n"] += 1
        if calls["n"] == 1:
            release.wait(30)  # the caller is killed meanwhile
            return 200, "too late"
        return (503, "busy") if calls["n"] == 2 else (200, "paid")

    http_listener.respond("/pay", answer)
    flow = RETRY_FLOW.replace("BASE", http_listener.url).replace(
        "RETRY", "type: constant\n      interval: PT1S\n      maxAttempts: 3")
    flows = write_flows(tmp_path / "flows", {"p.yaml": flow})
    script = tmp_path / "crash.py"
    script.write_text(CRASH_SCRIPT)
    proc = subprocess.Popen([*SIGNOFF[:1], str(script), str(tmp_path / "data"), str(flows)], env=clean_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not http_listener.requests_to("/pay"):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.05)
        proc.kill()
        proc.wait(timeout=30)
    finally:
        release.set()
    from signoff.engine.core import Engine
    from signoff.engine.service import ApprovalService

    svc = ApprovalService(Engine(tmp_path / "data", [flows]))  # the real clock, as the dead process had
    svc.tick()  # the dead process's lease is taken over at once: attempt 1 again, answered 503
    [execution] = svc.list_executions(ALICE)
    assert execution["state"] == "RUNNING"
    time.sleep(1.2)
    svc.tick()
    ex = svc.get_execution(ALICE, execution["id"])
    assert ex["state"] == "SUCCESS", ex["error"]
    keys = [r.headers["Idempotency-Key"] for r in http_listener.requests_to("/pay")]
    assert keys == [f"{ex['id']}:submit:{n}" for n in (1, 1, 2)]
    assert ex["task_runs"][0]["attempt"] == 2
    svc.engine.close()
