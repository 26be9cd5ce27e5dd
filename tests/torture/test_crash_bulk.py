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

The same runs with the engine on PostgreSQL (300 requests approved in slices of 50, as the
console sends them, copied per test from a template database; in CI one seed, which kills in the
decide phase - tests/torture/test_crash_server.py kills in the continue phase there -, 10 with
``--long``): acknowledged there means committed by PostgreSQL.
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

from tests.torture.crash_support import Store, build_template, check, kill_delay, pg_copy
from tests.torture.support import REPO, clean_env, json_lines, no_traceback, signoff

COUNT = 2000


#: the client: bulk-approve every id, printing each durable chunk's ids as a JSON line
CLIENT = r"""
import json, sys
from signoff.engine.core import Engine
from signoff.engine.identity import Identity
from signoff.engine.service import ApprovalService

data, flows, ids_file = sys.argv[1:4]
database = sys.argv[4] if len(sys.argv) > 4 else None  # a postgresql:// URL, else the SQLite file
svc = ApprovalService(Engine(data, [flows], database=database))
ids = json.load(open(ids_file))
# one call for all (the engine commits a chunk of 500 at a time), or slices of 50 as the console sends
step = 50 if database else len(ids)
acked = 0

def progress(done, total):
    global acked
    # called after the chunk's transaction committed: these decisions are durable
    sys.stdout.write(json.dumps({"acked": ids[acked:base + done]}) + "\n")
    sys.stdout.flush()
    acked = base + done
    return True

sys.stdout.write(json.dumps({"ready": True}) + "\n")
sys.stdout.flush()
outcomes = []
for base in range(0, len(ids), step):
    outcomes += svc.approve(Identity("alice"), ids[base:base + step], reason="bulk", progress=progress)
sys.stdout.write(json.dumps({"outcomes": {o.id: o.outcome for o in outcomes}}) + "\n")
sys.stdout.write(json.dumps({"done": True}) + "\n")
sys.stdout.flush()
"""


def _client(tmp: Path, data: Path, flows: Path, ids_file: Path, database: str | None = None) -> subprocess.Popen:
    script = tmp / "client.py"
    script.write_text(CLIENT)
    return subprocess.Popen([sys.executable, str(script), str(data), str(flows), str(ids_file),
                             *([database] if database else [])],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=clean_env(), cwd=REPO)


def _wait_ready(proc: subprocess.Popen) -> None:
    line = proc.stdout.readline()
    assert json.loads(line) == {"ready": True}, (line, proc.stderr.read() if proc.poll() is not None else "")


def calibrate(root: Path, store: Store, flows: Path, ids: list[str], ids_file: Path) -> tuple[float, float]:
    """One uninterrupted run, which must itself be right: (end of the decide phase, duration)."""
    proc = _client(root, store.data, flows, ids_file, store.database)
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
    assert set(outcomes.values()) == {"decided"} and len(outcomes) == len(ids)
    check(store, flows, acked=set(ids), ids=ids, after_worker=True)
    return decided_at, duration


@pytest.fixture(scope="session")
def bulk_world(tmp_path_factory):
    """2,000 executions paused at their gate, in a closed data directory kept as a template,
    plus how long an uninterrupted bulk approve (decide and continue) takes here."""
    root = tmp_path_factory.mktemp("crash-bulk")
    flows, template, ids = build_template(root, COUNT)
    ids_file = root / "ids.json"
    ids_file.write_text(json.dumps(ids))
    data = root / "calibration"
    shutil.copytree(template, data)
    decided_at, duration = calibrate(root, Store(data), flows, ids, ids_file)
    return {"template": template, "flows": flows, "ids": ids, "ids_file": ids_file, "decide": decided_at,
            "duration": duration}


@pytest.fixture(scope="session")
def pg_bulk_world(tmp_path_factory, pg_cluster, pg_crash_template):
    """The same on PostgreSQL: the template database of the crash tests, copied per test."""
    root = tmp_path_factory.mktemp("crash-bulk-pg")
    flows, template, ids = pg_crash_template
    ids_file = root / "ids.json"
    ids_file.write_text(json.dumps(ids))
    store = Store(root / "calibration", pg_copy(pg_cluster, template))
    decided_at, duration = calibrate(root, store, flows, ids, ids_file)
    return {"template": template, "flows": flows, "ids": ids, "ids_file": ids_file, "decide": decided_at,
            "duration": duration}


def test_sigkill_during_bulk_approve_of_2000(bulk_world, tmp_path: Path, kill_point: int) -> None:
    data = tmp_path / "data"
    shutil.copytree(bulk_world["template"], data)
    killed_bulk(bulk_world, tmp_path, Store(data), kill_point, "crash-bulk")


def test_sigkill_during_bulk_approve_on_postgresql(pg_bulk_world, pg_cluster, tmp_path: Path,
                                                   pg_kill_point: int) -> None:
    """The same crash with the engine on PostgreSQL: acknowledged means committed there."""
    store = Store(tmp_path / "data", pg_copy(pg_cluster, pg_bulk_world["template"]))
    killed_bulk(pg_bulk_world, tmp_path, store, pg_kill_point, "crash-bulk-pg")


def killed_bulk(world: dict, tmp_path: Path, store: Store, kill_point: int, seed: str) -> None:
    flows, ids = world["flows"], world["ids"]
    # even seeds kill while decisions are being committed, odd ones while the approved
    # executions are being continued (the two phases of a bulk approve)
    delay = kill_delay(f"{seed}-{kill_point}", kill_point, world["decide"], world["duration"])

    proc = _client(tmp_path, store.data, flows, world["ids_file"], store.database)
    _wait_ready(proc)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    out, err = proc.communicate(timeout=60)
    assert "Traceback" not in err, err
    lines = json_lines(out)
    acked = {i for x in lines for i in x.get("acked", [])}
    finished = any(x.get("done") for x in lines)
    print(f"kill after {delay:.3f}s (decide {world['decide']:.3f}s, all {world['duration']:.3f}s):"
          f" {len(acked)} acknowledged,"
          f" {'finished before the kill' if finished else 'killed'}")

    # right after the kill, before anyone recovers anything
    check(store, flows, acked=acked, ids=ids, after_worker=False, verify=False)

    restart = signoff(*store.args, "worker", "--once", data_dir=store.data, flows=flows, timeout=600)
    no_traceback(restart)
    assert restart.returncode == 0, restart.stderr
    decided = check(store, flows, acked=acked, ids=ids, after_worker=True)

    # the client retries the whole bulk action: it completes, nothing doubles
    retry = _client(tmp_path, store.data, flows, world["ids_file"], store.database)
    _wait_ready(retry)
    out, err = retry.communicate(timeout=600)
    assert retry.returncode == 0, err
    outcomes = next(x["outcomes"] for x in json_lines(out) if "outcomes" in x)
    for request_id, outcome in outcomes.items():
        assert outcome == ("already_decided" if request_id in decided else "decided"), (request_id, outcome)
    final = check(store, flows, acked=set(ids), ids=ids, after_worker=True)
    assert set(final) == set(ids) and set(final.values()) == {1}
