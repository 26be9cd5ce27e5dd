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

from signoff.console.settings import sample_flows_dir
from tests.fakes.http_listener import HttpListener, RecordedRequest
from tests.support import SIGNOFF, clean_env
from tests.torture.payment_world import OLIVIA, build


def test_worker_killed_during_the_payment_call_resends_it_as_the_same_attempt(tmp_path: Path) -> None:
    first_call = threading.Event()
    release = threading.Event()

    def answer(request: RecordedRequest) -> tuple:
        if not first_call.is_set():
            first_call.set()
            release.wait(30)  # the worker is killed while it waits for this answer
        return 201, {"status": "queued"}

    with HttpListener() as api:
        api.respond("/payments", answer)
        world = build(tmp_path, 2, api.url)  # the second is a single-approval payment
        service = world.service
        request_id, execution_id = list(world.requests.items())[1]
        service.run_inline = False  # decided and queued, as a server would leave it
        [outcome] = service.approve(OLIVIA, [request_id])
        assert outcome.ok and outcome.state == "APPROVED"

        flags = ["--data-dir", str(world.data_dir), "--flows", str(sample_flows_dir()), "--policy",
                 str(world.policy_path)]
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
