"""Crash (a) of issue 6: SIGKILL a process at a random moment while it bulk-approves 2,000
requests (through ApprovalService.decide, the path the CLI, the console and the server share).

The killed process prints, after each durable chunk (decide's ``progress`` callback runs after
the chunk's commit), the ids it has been told are decided: that is what a client saw
acknowledged. After a restart (`signoff worker --once`):

- every acknowledged decision is in the database, and no request has two decisions;
- no execution ran its post-approval task twice (one `after` log at most; exactly one for every
  approved request once the worker has run);
- `signoff audit verify` passes;
- and retrying the whole bulk approve completes the job: acknowledged ids answer
  `already_decided`, every request ends with exactly one decision and one `after` log.

Kill points: ``random.Random(seed)`` picks a moment in the decide phase (even seeds: the chunks
being committed) or the continue phase (odd seeds: approved executions running their `after`
task), both measured once per session on an uninterrupted run; 3 seeds in CI, 20 with
``--long``.
"""
from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.torture.crash_support import build_template, check, kill_delay
from tests.torture.support import REPO, clean_env, json_lines, no_traceback, signoff

COUNT = 2000


#: the client: bulk-approve every id, printing each durable chunk's ids as a JSON line
CLIENT = r"""
import json, sys
from signoff.engine.core import Engine
from signoff.engine.identity import Identity
from signoff.engine.service import ApprovalService

data, flows, ids_file = sys.argv[1:4]
svc = ApprovalService(Engine(data, [flows]))
ids = json.load(open(ids_file))
acked = 0

def progress(done, total):
    global acked
    # called after the chunk's transaction committed: these decisions are durable
    sys.stdout.write(json.dumps({"acked": ids[acked:done]}) + "\n")
    sys.stdout.flush()
    acked = done
    return True

sys.stdout.write(json.dumps({"ready": True}) + "\n")
sys.stdout.flush()
outcomes = svc.approve(Identity("alice"), ids, reason="bulk", progress=progress)
sys.stdout.write(json.dumps({"outcomes": {o.id: o.outcome for o in outcomes}}) + "\n")
sys.stdout.write(json.dumps({"done": True}) + "\n")
sys.stdout.flush()
"""


def _client(tmp: Path, data: Path, flows: Path, ids_file: Path) -> subprocess.Popen:
    script = tmp / "client.py"
    script.write_text(CLIENT)
    return subprocess.Popen([sys.executable, str(script), str(data), str(flows), str(ids_file)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=clean_env(), cwd=REPO)


def _wait_ready(proc: subprocess.Popen) -> None:
    line = proc.stdout.readline()
    assert json.loads(line) == {"ready": True}, (line, proc.stderr.read() if proc.poll() is not None else "")


@pytest.fixture(scope="session")
def bulk_world(tmp_path_factory):
    """2,000 executions paused at their gate, in a closed data directory kept as a template,
    plus how long an uninterrupted bulk approve (decide and continue) takes here."""
    root = tmp_path_factory.mktemp("crash-bulk")
    flows, template, ids = build_template(root, COUNT)
    ids_file = root / "ids.json"
    ids_file.write_text(json.dumps(ids))

    # calibration: one uninterrupted run, which must itself be right
    data = root / "calibration"
    shutil.copytree(template, data)
    proc = _client(root, data, flows, ids_file)
    _wait_ready(proc)
    started = time.monotonic()
    lines = []
    for line in proc.stdout:  # the moment of the last acknowledgement ends the decide phase
        lines.append(line)
        if '"acked"' in line:
            decided_at = time.monotonic() - started
    err = proc.stderr.read()
    proc.wait(timeout=600)
    duration = time.monotonic() - started
    assert proc.returncode == 0, err
    outcomes = next(x["outcomes"] for x in json_lines("".join(lines)) if "outcomes" in x)
    assert set(outcomes.values()) == {"decided"} and len(outcomes) == COUNT
    check(data, flows, acked=set(ids), ids=ids, after_worker=True)
    return {"template": template, "flows": flows, "ids": ids, "ids_file": ids_file, "decide": decided_at,
            "duration": duration}


def test_sigkill_during_bulk_approve_of_2000(bulk_world, tmp_path: Path, kill_point: int) -> None:
    flows, ids = bulk_world["flows"], bulk_world["ids"]
    data = tmp_path / "data"
    shutil.copytree(bulk_world["template"], data)
    # even seeds kill while decisions are being committed, odd ones while the approved
    # executions are being continued (the two phases of a bulk approve)
    delay = kill_delay(f"crash-bulk-{kill_point}", kill_point, bulk_world["decide"], bulk_world["duration"])

    proc = _client(tmp_path, data, flows, bulk_world["ids_file"])
    _wait_ready(proc)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    out, err = proc.communicate(timeout=60)
    assert "Traceback" not in err, err
    lines = json_lines(out)
    acked = {i for x in lines for i in x.get("acked", [])}
    finished = any(x.get("done") for x in lines)
    print(f"kill after {delay:.3f}s (decide {bulk_world['decide']:.3f}s, all {bulk_world['duration']:.3f}s):"
          f" {len(acked)} acknowledged,"
          f" {'finished before the kill' if finished else 'killed'}")

    # right after the kill, before anyone recovers anything
    check(data, flows, acked=acked, ids=ids, after_worker=False, verify=False)

    restart = signoff("worker", "--once", data_dir=data, flows=flows, timeout=600)
    no_traceback(restart)
    assert restart.returncode == 0, restart.stderr
    decided = check(data, flows, acked=acked, ids=ids, after_worker=True)

    # the client retries the whole bulk action: it completes, nothing doubles
    retry = _client(tmp_path, data, flows, bulk_world["ids_file"])
    _wait_ready(retry)
    out, err = retry.communicate(timeout=600)
    assert retry.returncode == 0, err
    outcomes = next(x["outcomes"] for x in json_lines(out) if "outcomes" in x)
    for request_id, outcome in outcomes.items():
        assert outcome == ("already_decided" if request_id in decided else "decided"), (request_id, outcome)
    final = check(data, flows, acked=set(ids), ids=ids, after_worker=True)
    assert set(final) == set(ids) and set(final.values()) == {1}
