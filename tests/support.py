"""Helpers shared by the tests: a real engine on a temporary data dir with flows written inline,
the real `signoff` program as a subprocess (its command line, a clean environment, waiting for
`signoff serve` to listen), loopback addresses for clients, and databases of an older schema."""
from __future__ import annotations

import itertools
import os
import re
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from signoff.engine.clock import FakeClock
from signoff.engine.core import Engine
from signoff.engine.identity import Identity
from signoff.engine.service import ApprovalService
from signoff.engine.store.db import APPLICATION_ID, DB_FILENAME
from signoff.engine.store.schema import MIGRATIONS

if TYPE_CHECKING:
    from signoff.engine.store.pg import PgDatabase

REPO = Path(__file__).resolve().parents[1]
#: the `signoff` program of this checkout, run by this interpreter: ``python -m signoff`` calls
#: console.startup.main, the same function as the installed `signoff` console script
SIGNOFF = [sys.executable, "-m", "signoff"]

ALICE = Identity("alice", ("finance",), source="os")
BOB = Identity("bob", ("ops",), source="os")


def write_flows(directory: Path, flows: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in flows.items():
        (directory / name).write_text(textwrap.dedent(text).lstrip())
    return directory


def make_service(tmp_path: Path, flows: dict[str, str] | None = None, *, clock: FakeClock | None = None,
                 policy=None, flow_dirs: list[Path] | None = None, database: str | None = None) -> ApprovalService:
    """``database``: a postgresql:// URL (the tests' cluster) instead of the SQLite file."""
    dirs = list(flow_dirs or [])
    if flows:
        dirs.append(write_flows(tmp_path / "flows", flows))
    engine = Engine(tmp_path / "data", dirs, clock=clock or FakeClock(), policy=policy, database=database)
    return ApprovalService(engine)


def runs(execution: dict) -> dict[str, str]:
    """path -> state of every task run."""
    return {t["path"]: t["state"] for t in execution["task_runs"]}


def pending_ids(svc: ApprovalService, who: Identity = ALICE) -> list[str]:
    return [r["id"] for r in svc.list_pending(who)]


# -- the `signoff` program as a subprocess ------------------------------------------------------


def clean_env(**extra: str) -> dict[str, str]:
    """The test process's environment without anything signoff reads on its own (``SIGNOFF_*``,
    ``SECRET_*``, ``PYTHON_KEYRING*``), this checkout first on PYTHONPATH, then ``extra``."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SIGNOFF_", "SECRET_", "PYTHON_KEYRING"))}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env.update(extra)
    return env


_LISTENING = re.compile(r"listening on (https?)://[\d.]+:(\d+)")


def wait_listening(proc: subprocess.Popen, log_path: Path, *, timeout: float = 60, verify: object = True,
                   error: type[Exception] = AssertionError) -> str:
    """Wait until `signoff serve` (``proc``, its output going to ``log_path``) prints where it
    listens and answers /healthz there (``verify``: as httpx takes it, for https); return its
    URL, ``scheme://127.0.0.1:port``. Raises ``error`` with the log's end when the process
    exits or ``timeout`` seconds pass first."""
    import httpx

    def fail(what: str) -> Exception:
        return error(f"{what}:\n{log_path.read_text(errors='replace')[-4000:]}")

    deadline = time.monotonic() + timeout
    while True:
        m = _LISTENING.search(log_path.read_text(errors="replace"))
        if m:
            url = f"{m.group(1)}://127.0.0.1:{m.group(2)}"
            break
        if proc.poll() is not None:
            raise fail(f"signoff serve exited with {proc.returncode}")
        if time.monotonic() > deadline:
            raise fail("signoff serve did not print where it listens")
        time.sleep(0.05)
    while True:
        try:
            if httpx.get(url + "/healthz", verify=verify, timeout=2).status_code == 200:
                return url
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise fail(f"signoff serve exited with {proc.returncode}")
        if time.monotonic() > deadline:
            raise fail("/healthz never answered")
        time.sleep(0.05)


_addresses = itertools.count(1)


def fresh_address() -> str:
    """A loopback address (127.x.y.z) no other client of this test process uses: failed
    authentications are slowed down per client address, so clients that fail on purpose each
    take their own, never 127.0.0.1 which the rest of the suite shares."""
    n = next(_addresses)
    return f"127.{20 + os.getpid() % 200}.{n // 250 % 250 + 1}.{n % 250 + 1}"


# -- databases of an older schema ---------------------------------------------------------------


def old_schema_db(data_dir: Path, version: int) -> sqlite3.Connection:
    """A signoff database in ``data_dir`` as schema ``version`` left it (migrations 1..version,
    our application id, that user_version), open in autocommit mode for the caller to fill."""
    data_dir.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(data_dir / DB_FILENAME, isolation_level=None)
    for step in range(1, version + 1):
        for statement in MIGRATIONS[step].split(";\n"):
            if statement.strip():
                conn.execute(statement)
    conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
    conn.execute(f"PRAGMA user_version={version}")
    return conn


def _catch_up_in(data_dir: str, url: str | None, barrier, out) -> None:
    from signoff.engine.audit.fulltext_feed import catch_up
    from signoff.engine.store import open_database

    db = open_database(data_dir, url)
    barrier.wait()
    out.put(catch_up(db))
    db.close()


def catch_up_at_once(data_dirs: list[Path], url: str | None = None) -> list[int]:
    """One spawned process per data directory (on the SQLite file there, or the PostgreSQL
    database at ``url``) catches up the full-text words behind a barrier: how many events each
    indexed, sorted."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    barrier, out = ctx.Barrier(len(data_dirs)), ctx.Queue()
    procs = [ctx.Process(target=_catch_up_in, args=(str(d), url, barrier, out)) for d in data_dirs]
    for p in procs:
        p.start()
    counts = sorted(out.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    return counts


@contextmanager
def pg_scratch(url: str, data_dir: Path, table: str) -> Iterator[PgDatabase]:
    """A PostgreSQL store with one scratch table ``table`` (id, v) for tests of the store's
    own statements, closed afterwards."""
    from signoff.engine.store.pg import PgDatabase

    database = PgDatabase(url, data_dir)
    with database.write() as tx:
        tx.execute(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
    try:
        yield database
    finally:
        database.close()
