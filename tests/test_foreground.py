"""Person-facing work first (engine.store.foreground): background advances wait while this
process has foreground writes going and, on PostgreSQL, while any replica runs a large bulk
decision; they never wait for their own thread, never past ``max_wait``, and a replica that
dies stops holding the others back."""
from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest

from signoff.engine.store.db import Database
from signoff.engine.store.pg import PgDatabase
from tests.support import REPO


@pytest.fixture(params=["sqlite", "pg"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    database: Any = PgDatabase(request.getfixturevalue("pg_url"), tmp_path) if request.param == "pg" \
        else Database(tmp_path)
    yield database
    database.close()


def test_background_work_waits_for_the_foreground_of_its_process(db: Any) -> None:
    order: list[str] = []
    entered, release = threading.Event(), threading.Event()

    def person() -> None:
        with db.foreground():
            entered.set()
            release.wait(30)
            order.append("foreground done")

    def runner() -> None:
        entered.wait(30)
        db.yield_to_foreground(max_wait=60)
        order.append("runner went on")

    threads = [threading.Thread(target=person), threading.Thread(target=runner)]
    for t in threads:
        t.start()
    entered.wait(30)
    order.append("runner waiting")
    release.set()
    for t in threads:
        t.join(60)
    assert order == ["runner waiting", "foreground done", "runner went on"]


def test_a_thread_never_waits_for_its_own_foreground_work_nor_past_max_wait(db: Any) -> None:
    with db.foreground():
        db.yield_to_foreground(max_wait=600)  # its own: returns at once
    held, release = threading.Event(), threading.Event()

    def person() -> None:
        with db.foreground():
            held.set()
            release.wait(60)

    t = threading.Thread(target=person)
    t.start()
    held.wait(30)
    db.yield_to_foreground(max_wait=0.2)  # bounded: returns although the foreground goes on
    assert t.is_alive()
    release.set()
    t.join(30)


def test_a_bulk_on_one_replica_holds_back_the_others_until_it_ends(tmp_path: Path, pg_url: str) -> None:
    a, b = PgDatabase(pg_url, tmp_path / "a"), PgDatabase(pg_url, tmp_path / "b")
    try:
        assert not b._bulk_elsewhere()
        with a.foreground():  # an ordinary decision: only its own process waits
            assert not b._bulk_elsewhere()
        with a.foreground(bulk=True):
            assert b._bulk_elsewhere()
            with b.foreground(bulk=True):  # two bulks at once: both hold it (shared)
                assert a._bulk_elsewhere() and b._bulk_elsewhere()
            b.yield_to_foreground(max_wait=0.2)  # never starved: returns while the bulk goes on
        assert not b._bulk_elsewhere()
    finally:
        a.close()
        b.close()


def test_a_replica_killed_mid_bulk_stops_holding_the_others_back(tmp_path: Path, pg_url: str) -> None:
    code = textwrap.dedent(f"""
        import sys, time
        from signoff.engine.store.pg import PgDatabase
        db = PgDatabase({pg_url!r}, {str(tmp_path / "dying")!r})
        with db.foreground(bulk=True):
            print("holding", flush=True)
            time.sleep(600)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, text=True)
    other = PgDatabase(pg_url, tmp_path / "other")
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "holding"
        assert other._bulk_elsewhere()
        proc.kill()
        proc.wait(30)
        # the server ends the dead replica's session, and its lock with it
        for _ in range(200):
            if not other._bulk_elsewhere():
                break
            threading.Event().wait(0.05)
        assert not other._bulk_elsewhere()
    finally:
        if proc.poll() is None:
            proc.kill()
        other.close()


def test_a_large_bulk_decision_marks_itself_to_every_replica_and_a_small_one_does_not(
        tmp_path: Path, pg_url: str) -> None:
    from signoff.engine.core import Engine
    from signoff.engine.identity import Identity
    from signoff.engine.service import ApprovalService
    from signoff.engine.store.foreground import BULK_ITEMS

    (tmp_path / "flows").mkdir()
    engine = Engine(tmp_path / "data", [tmp_path / "flows"], database=pg_url)
    other = PgDatabase(pg_url, tmp_path / "other")
    seen: list[bool] = []

    def progress(_done: int, _total: int) -> bool:
        seen.append(other._bulk_elsewhere())
        return True

    try:
        svc = ApprovalService(engine)
        ann = Identity("ann", ("ops",), source="os")
        outcomes = svc.approve(ann, [f"r{i}" for i in range(BULK_ITEMS + 1)], progress=progress)
        assert {o.outcome for o in outcomes} == {"not_found"}
        assert seen and all(seen)
        seen.clear()
        svc.approve(ann, [f"r{i}" for i in range(BULK_ITEMS)], progress=progress)
        assert seen == [False]
        assert not other._bulk_elsewhere()
    finally:
        other.close()
        engine.close()
