"""Console figures: console_ready_<small>, console_ready_<big>, console_key_<big>, console_rss_<big>.

- ready: `signoff --data-dir D --flows F` (the console) is started under a pseudo-terminal of
  120x40; the time from the process start until the first pending row's text has been painted
  is compared with a bare Textual app (one Static) measured the same way in the same run.
  Median of five starts each (interleaved); the figure is the ratio console / bare.
- rss: VmRSS of the console process at the big size after its first paint and the key
  presses, from /proc (the peak, VmHWM, is in the detail).
- key: at the big size, keys are written to the console's pty (down, space = mark, then `/`
  and filter characters) and the time until the repaint starts coming back is taken, p95
  over all presses (see "key latency" below for why not Pilot).

The pending requests are cloned with SQL from one real execution started through the engine
(100,000 starts one by one would take minutes), so they are ordinary PENDING requests with
their executions, task runs and context.
"""
from __future__ import annotations

import fcntl
import os
import re
import select
import signal
import statistics
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

from bench import ROOT, Figure, _k, at_most, identities, make_engine, missing

from tests.support import SIGNOFF, clean_env

#: `python -m signoff`: src/signoff/__main__.py calls console.startup.main, the function the
#: installed `signoff` script runs (collector held during start-up included)
CLI = SIGNOFF
BARE_APP = """
from textual.app import App
from textual.widgets import Static


class Bare(App):
    def compose(self):
        yield Static("BARE-READY-MARK")


Bare().run()
"""
COLS, ROWS = 120, 40
_ANSI = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[PX^_][^\x1b]*\x1b\\|[@-Z\\-_])")


def unavailable() -> str | None:
    if not hasattr(os, "openpty"):
        return "no pseudo-terminals on this platform"
    return None


# -- data ---------------------------------------------------------------------------------


def build_pending(ctx, count: int) -> Path:
    """A data dir with ``count`` pending requests (one real, the rest cloned with SQL)."""
    from signoff.engine.service import ApprovalService

    data_dir = ctx.fresh_dir(f"console-{_k(count)}") / "data"
    engine = make_engine(data_dir, ctx.flows)
    requester, _ = identities()
    svc = ApprovalService(engine)
    first = svc.start_execution(requester, "bench.ops", "change", {"ticket": "CHG-0", "service": "api",
                                                                    "replicas": 1})
    eid, rid = first["id"], first["requests"][0]["id"]
    with engine.db.write() as tx:
        tx.execute("CREATE TEMP TABLE n(i INTEGER PRIMARY KEY)")
        tx.execute("WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < ?)"
                   " INSERT INTO n SELECT i FROM s", (count - 1,))
        tx.execute("INSERT INTO executions(id, namespace, flow_id, revision, state, inputs, labels, started_by,"
                   " created_at, updated_at) SELECT printf('bench%017d', i), namespace, flow_id, revision, state,"
                   " json_set(inputs, '$.ticket', 'CHG-' || i), labels, started_by, created_at, updated_at"
                   " FROM n, executions e WHERE e.id=?", (eid,))
        tx.execute("INSERT INTO task_runs(execution_id, path, task_id, type, state, attempt, outputs, value,"
                   " started_at, ended_at, error, seq) SELECT printf('bench%017d', i), path, task_id, type, state,"
                   " attempt, outputs, printf('r%012d', i), started_at, ended_at, error, seq"
                   " FROM n, task_runs t WHERE t.execution_id=?", (eid,))
        services = "'api','web','worker','db'"
        tx.execute("INSERT INTO requests(id, execution_id, task_path, task_id, kind, namespace, flow_id, state,"
                   " summary, context, form, rules, requested_by, created_at, due_at)"
                   " SELECT printf('r%012d', i), printf('bench%017d', i), task_path, task_id, kind, namespace,"
                   " flow_id, state,"
                   " printf('CHG-%d: scale %s to %d replicas', i,"
                   f" json_extract(json_array({services}), '$[' || (i % 4) || ']'), 1 + i % 20),"
                   " json_set(context, '$.summary', printf('CHG-%d', i)), form, rules, requested_by,"
                   " strftime('%Y-%m-%dT%H:%M:%fZ', created_at, '+' || i || ' seconds') || '', due_at"
                   " FROM n, requests r WHERE r.id=?", (rid,))
        tx.execute("DROP TABLE n")
    pending = engine.db.query_one("SELECT count(*) FROM requests WHERE state='PENDING'")[0]
    engine.close()
    if pending != count:
        raise RuntimeError(f"built {pending} pending requests, wanted {count}")
    return data_dir


# -- start-up under a pty -----------------------------------------------------------------


def _time_to_paint(argv: list[str], marker: str, env: dict[str, str], timeout: float = 120, then=None
                   ) -> tuple[float, dict[str, int]]:
    """Seconds from spawning ``argv`` under a 120x40 pty until ``marker`` is painted, and the
    process's memory (kB) at that moment."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
    full_env = {**env, "TERM": "xterm-256color", "COLUMNS": str(COLS), "LINES": str(ROWS)}
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=full_env, cwd=ROOT,
                            start_new_session=True, close_fds=True)
    os.close(slave)
    seen = ""
    elapsed = None
    memory: dict[str, int] = {}
    try:
        deadline = t0 + timeout
        while time.perf_counter() < deadline:
            ready, _, _ = select.select([master], [], [], 0.05)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                seen = (seen + chunk.decode("utf-8", "replace"))[-200_000:]
                if marker in _ANSI.sub("", seen):
                    elapsed = time.perf_counter() - t0
                    memory = _memory(proc.pid)
                    if then is not None:
                        then(master, proc)
                    break
            elif proc.poll() is not None:
                break
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        os.close(master)
    if elapsed is None:
        tail = _ANSI.sub("", seen)[-400:]
        raise RuntimeError(f"`{marker}` never appeared (exit {proc.returncode}): {tail!r}")
    return elapsed, memory


def _memory(pid: int) -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
    except OSError:
        pass
    return out


def _env(config_dir: Path) -> dict[str, str]:
    return clean_env(SIGNOFF_CONFIG_DIR=str(config_dir))


# -- key latency through the pty ------------------------------------------------------------
# Textual's Pilot (press + pause) waits for the process to look idle in sleep steps, which
# alone takes ~80 ms per key on a trivial DataTable app, so it cannot resolve a 30 ms target.
# The console is therefore driven through its pseudo-terminal: the time from writing a key's
# bytes until the first repaint bytes come back (after the output has been quiet for a while).

KEYS = [("down", b"\x1b[B"), ("mark", b" ")]


def _drain(master: int, quiet: float = 0.25, limit: float = 5.0) -> None:
    end = time.perf_counter() + limit
    while time.perf_counter() < end:
        ready, _, _ = select.select([master], [], [], quiet)
        if not ready:
            return
        os.read(master, 65536)


def _press(master: int, data: bytes, timeout: float = 5.0) -> float | None:
    _drain(master)
    t0 = time.perf_counter()
    os.write(master, data)
    ready, _, _ = select.select([master], [], [], timeout)
    if not ready:
        return None
    os.read(master, 65536)
    return (time.perf_counter() - t0) * 1000


def key_latencies(presses: int, into: list[float], memory: dict[str, int]):
    def drive(master: int, proc) -> None:
        for i in range(presses):
            for name, data in KEYS:
                if name == "mark" and i % 2:
                    continue
                took = _press(master, data)
                if took is not None:
                    into.append(took)
        _press(master, b"/")  # open the filter, then type into it (each character filters)
        for ch in "chg-12":
            took = _press(master, ch.encode())
            if took is not None:
                into.append(took)
        _drain(master)
        memory.update(_memory(proc.pid))

    return drive


# -- the figures --------------------------------------------------------------------------------


def compile_bytecode() -> None:
    """Measure the console as installed: `pip install .` writes .pyc files, and this checkout
    may run with PYTHONDONTWRITEBYTECODE=1, which would recompile every edited module on
    each start (~60 ms) and measure the development tree instead of the product."""
    import compileall

    for package in ("console", "engine", "themes", "sample_flows", "src"):
        compileall.compile_dir(str(ROOT / package), quiet=1)


def run(ctx) -> list[Figure]:
    compile_bytecode()
    small_n, big_n = ctx.sizes["console_small"], ctx.sizes["console_big"]
    small, big = _k(small_n), _k(big_n)
    repeats = 1 if ctx.quick else 5  # median of 5: one start is ~0.25 s and varies by +-15%
    config_dir = ctx.fresh_dir("console-config")
    env = _env(config_dir)
    bare_script = config_dir / "bare_app.py"
    bare_script.write_text(BARE_APP)
    figures: list[Figure] = []
    bare_times: list[float] = []
    memory_big: dict[str, int] = {}
    after_keys: dict[str, int] = {}
    keys: list[float] = []
    ready: dict[int, list[float]] = {}
    for count in (small_n, big_n):
        data_dir = build_pending(ctx, count)
        argv = [*CLI, "--data-dir", str(data_dir), "--flows", str(ctx.flows)]
        ready[count] = []
        for _ in range(repeats):
            # interleaved, so both see the same machine
            bare_times.append(_time_to_paint([sys.executable, str(bare_script)], "BARE-READY-MARK", env)[0])
            seconds, _ = _time_to_paint(argv, "scale api to", env)
            ready[count].append(seconds)
        if count == big_n:
            presses = 6 if ctx.quick else 30
            _, memory_big = _time_to_paint(argv, "scale api to", env,
                                           then=key_latencies(presses, keys, after_keys))
    bare = statistics.median(bare_times)
    for count, target, label in ((small_n, 1.5, small), (big_n, 2.0, big)):
        console_s = statistics.median(ready[count])
        figures.append(at_most(f"console_ready_{label}", console_s / bare, "x", target,
                               detail={"console_s": round(console_s, 3), "bare_textual_s": round(bare, 3),
                                       "pending": count}))
    if not keys:
        figures.append(missing(f"console_key_{big}", "ms", "<= 30", "no key press was answered with a repaint"))
        return figures + [missing(f"console_rss_{big}", "MB", "<= 250", "not measured")]
    keys.sort()
    p95 = keys[max(0, int(round(len(keys) * 0.95)) - 1)]
    figures.append(at_most(f"console_key_{big}", p95, "ms", 30,
                           detail={"presses": len(keys), "median_ms": round(statistics.median(keys), 2),
                                   "max_ms": round(keys[-1], 2)}))
    memory = after_keys or memory_big
    if "VmRSS" in memory:
        figures.append(at_most(f"console_rss_{big}", memory["VmRSS"] / 1024, "MB", 250,
                               detail={"peak_MB": round(memory.get("VmHWM", 0) / 1024, 1),
                                       "at_first_paint_MB": round(memory_big.get("VmRSS", 0) / 1024, 1)}))
    else:
        figures.append(missing(f"console_rss_{big}", "MB", "<= 250", "no /proc/<pid>/status on this platform"))
    return figures
