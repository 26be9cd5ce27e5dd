"""Helpers shared by the torture tests: the real `signoff` entry point as a subprocess, and a
snapshot of everything a data directory holds (to prove that bad input wrote nothing)."""
from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

# SIGNOFF: the real entry point, as the issue asks (`python -m signoff`, not the console script,
# so no PATH games); the torture tests import REPO, SIGNOFF and clean_env from here
from tests.support import REPO, SIGNOFF, clean_env


def signoff(*args: Any, data_dir: Path | None = None, flows: Path | None = None, timeout: float = 120,
            stdin: str = "", env: dict[str, str] | None = None,
            preexec_fn=None) -> subprocess.CompletedProcess:
    """Run `signoff ARGS` (with --data-dir/--flows first when given) and return the finished process."""
    head: list[str] = []
    if data_dir is not None:
        head += ["--data-dir", str(data_dir)]
    if flows is not None:
        head += ["--flows", str(flows)]
    return subprocess.run([*SIGNOFF, *head, *map(str, args)], capture_output=True, text=True, input=stdin,
                          env=env or clean_env(), cwd=REPO, timeout=timeout, preexec_fn=preexec_fn)


def no_traceback(proc: subprocess.CompletedProcess) -> None:
    text = (proc.stdout or "") + (proc.stderr or "")
    assert "Traceback" not in text, f"a traceback reached the user:\n{text[-4000:]}"


def connect(data_dir: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(Path(data_dir) / "signoff.db", timeout=60)
    conn.row_factory = sqlite3.Row
    return conn


def db_snapshot(data_dir: Path) -> dict[str, Any]:
    """Row counts of every table plus the states of requests and executions: what a command that
    must not write could have changed."""
    db = Path(data_dir) / "signoff.db"
    if not db.exists():
        return {"db": None}
    conn = connect(data_dir)
    try:
        tables = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        snap: dict[str, Any] = {t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}
        if "requests" in tables:
            snap["request_states"] = sorted(tuple(r) for r in conn.execute("SELECT id, state FROM requests"))
        if "executions" in tables:
            snap["execution_states"] = sorted(tuple(r) for r in conn.execute("SELECT id, state FROM executions"))
        return snap
    finally:
        conn.close()


def json_lines(text: str) -> list[Any]:
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line:
            try:
                out.append(json.loads(line))
            except ValueError:  # a line cut by the kill
                pass
    return out
