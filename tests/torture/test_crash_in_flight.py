"""A worker killed while a payment's HTTP call is in flight (issue 10): the restart runs that
call again as the same attempt, from the context the first walk had.

The state before the call is committed (the approval done, the If around it finished, the
call RUNNING); the outcome of the call itself is unknown. The restart must put back the
approval's outputs although the If around it is finished and skipped - before the fix it
failed with ``outputs.single_approval is not defined`` - and must send the same
Idempotency-Key, so the payments API can drop the duplicate (before the fix the key counted a
new attempt).
"""
from __future__ import annotations

import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from signoff.console.settings import sample_flows_dir
from tests.fakes.http_listener import HttpListener, RecordedRequest
from tests.support import SIGNOFF, clean_env
from tests.torture.payment_world import OLIVIA, build


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_worker_killed_during_the_payment_call_resends_it_as_the_same_attempt(
        tmp_path: Path, store: str, request: pytest.FixtureRequest) -> None:
    """On PostgreSQL too: the worker and its restart are separate processes on the database."""
    database = request.getfixturevalue("pg_url") if store == "postgresql" else None
    first_call = threading.Event()
    release = threading.Event()

    def answer(request: RecordedRequest) -> tuple:
        if not first_call.is_set():
            first_call.set()
            release.wait(30)  # the worker is killed while it waits for this answer
        return 201, {"status": "queued"}

    with HttpListener() as api:
        api.respond("/payments", answer)
        world = build(tmp_path, 2, api.url, database)  # the second is a single-approval payment
        service = world.service
        request_id, execution_id = list(world.requests.items())[1]
        service.run_inline = False  # decided and queued, as a server would leave it
        [outcome] = service.approve(OLIVIA, [request_id])
        assert outcome.ok and outcome.state == "APPROVED"

        flags = ["--data-dir", str(world.data_dir), "--flows", str(sample_flows_dir()), "--policy",
                 str(world.policy_path), *(["--database", database] if database else [])]
        worker = subprocess.Popen([*SIGNOFF, "worker", *flags, "--interval", "0.05"], env=clean_env(),
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            assert first_call.wait(60), "the worker never called the payments API"
            worker.send_signal(signal.SIGKILL)
            worker.wait(30)
        finally:
            if worker.poll() is None:
                worker.kill()
            release.set()
        time.sleep(0.1)  # the listener thread answers the dead connection
        restart = subprocess.run([*SIGNOFF, "worker", "--once", *flags], env=clean_env(), capture_output=True,
                                 text=True, timeout=120)
        assert restart.returncode == 0, restart.stderr

        execution = service.get_execution(OLIVIA, execution_id)
        assert (execution["state"], execution["error"]) == ("SUCCESS", None)
        sent = api.requests_to("/payments")
        assert [r.headers["Idempotency-Key"] for r in sent] == [f"{execution_id}:submit_payment:1"] * 2
        assert sent[0].json == sent[1].json
        assert [d["by"] for d in sent[1].json["approved_by"]] == ["olivia"]
        submit = next(t for t in execution["task_runs"] if t["path"] == "submit_payment")
        assert (submit["state"], submit["attempt"], submit["outputs"]["code"]) == ("SUCCESS", 1, 201)
    service.engine.close()


SLOW_SHELL_FLOW = """
id: slow
namespace: t.slow
inputs:
  - id: marker
    type: STRING
tasks:
  - id: gate
    type: io.kestra.plugin.core.flow.Pause
  - id: work
    type: io.kestra.plugin.scripts.shell.Commands
    commands:
      - echo started >> "{{ inputs.marker }}"
      - sleep 4
"""


def test_an_effect_longer_than_the_lease_is_not_taken_over_by_another_process(tmp_path: Path) -> None:
    """The lease of an advance in an outside effect is renewed while the effect runs: a
    worker in another process, polling all along, finds it held after its first expiry and
    leaves the execution alone, so the shell command runs once (before, it ran twice)."""
    import datetime

    from signoff.engine.core import Engine
    from signoff.engine.service import ApprovalService
    from tests.support import ALICE, BOB, write_flows

    flows = write_flows(tmp_path / "flows", {"slow.yaml": SLOW_SHELL_FLOW})
    engine = Engine(tmp_path / "data", [flows])
    engine.lease = datetime.timedelta(seconds=1.5)  # renewed every 0.5 s while the command runs
    service = ApprovalService(engine)
    marker = tmp_path / "marker.txt"
    execution = service.start_execution(BOB, "t.slow", "slow", {"marker": str(marker)})
    [request] = execution["requests"]

    worker = subprocess.Popen([*SIGNOFF, "worker", "--data-dir", str(tmp_path / "data"), "--flows", str(flows),
                               "--interval", "0.05"], env=clean_env(), stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)
    try:
        time.sleep(2)  # the worker is up and polling
        assert worker.poll() is None, worker.stderr.read() if worker.stderr else ""
        [outcome] = service.approve(ALICE, [request["id"]])  # runs the 4 s command in this thread
        assert outcome.ok
        assert marker.read_text().splitlines() == ["started"]
    finally:
        worker.kill()
        worker.wait(30)
    execution = service.get_execution(ALICE, execution["id"])
    assert execution["state"] == "SUCCESS"
    engine.close()
