"""A stopping process does not wait a minute per thread for a PostgreSQL that is gone.

Every thread of `signoff serve` that finishes up on SIGTERM (the runner's tick, the heartbeat,
the event feed, the failed-login flush, the last signed checkpoint) borrows a connection, and a
borrow waits up to 60 s for one. With the database gone those waits came one after another:
a replica took minutes to stop, and a supervisor would SIGKILL it. Once stopping
(``PgDatabase.stop_waiting``, called on the signal), waits end 2 s after the stop began.
"""
from __future__ import annotations

import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from signoff.engine.errors import StorageError
from signoff.engine.store.pg import PgDatabase
from tests.support import write_flows
from tests.torture.server_support import Serve

FLOW = "id: gate\nnamespace: stop.test\ntasks:\n  - id: gate\n    type: io.kestra.plugin.core.flow.Pause\n"


def test_a_stop_cuts_a_wait_for_a_connection_short(pg_url: str, tmp_path: Path) -> None:
    db = PgDatabase(pg_url, tmp_path, pool_size=1)
    try:
        held = db.borrow()  # the pool's only connection: the next borrow has to wait
        failed: list[BaseException] = []
        ended = threading.Event()

        def wait_for_one() -> None:
            try:
                db.give_back(db.borrow())
            except BaseException as exc:  # noqa: BLE001 - what the waiting thread saw is the assertion
                failed.append(exc)
            ended.set()

        waiter = threading.Thread(target=wait_for_one)
        waiter.start()
        assert not ended.wait(1.5), "the borrow did not wait for the held connection"
        db.stop_waiting()
        assert ended.wait(10), "the stop did not end the wait"  # (unbounded: 60 s)
        waiter.join()
        assert len(failed) == 1 and isinstance(failed[0], StorageError), failed
        assert "within 2 s of this process's stop" in str(failed[0])
        db.give_back(held)
        time.sleep(2.5)  # past the stop's bound: an idle connection is still lent
        conn = db.borrow()
        assert conn.execute("SELECT 1").fetchone() == (1,)
        db.give_back(conn)
    finally:
        db.close()


@pytest.fixture
def own_cluster():
    """A cluster of this test's own: it is stopped under a running replica."""
    from tests.pgcluster import PgCluster

    cluster = PgCluster().start()
    yield cluster
    cluster.stop()


def test_a_replica_whose_database_is_gone_stops_in_seconds(own_cluster, tmp_path: Path) -> None:
    flows = write_flows(tmp_path / "flows", {"gate.yaml": FLOW})
    replica = Serve(tmp_path / "data", flows, tmp_path, database=own_cluster.new_database("stop")).start()
    try:
        own_cluster.kill()
        time.sleep(1.0)  # the runner's next tick finds the database gone and waits for it
        began = time.monotonic()
        assert replica.proc is not None
        replica.proc.send_signal(signal.SIGTERM)
        try:
            replica.proc.wait(timeout=20)  # (it took over two minutes before)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the replica had not stopped {time.monotonic() - began:.0f} s after SIGTERM")
        assert replica.proc.returncode == 0, replica.log
        log = replica.log
        assert "signoff serve: stopped" in log
        assert "Traceback" not in log, log
        assert "within 2 s of this process's stop" in log  # the waits that were cut say so
        # and no thread announces a retry it will not make
        assert not [line for line in log.splitlines() if "this process's stop" in line and "retrying" in line], log
    finally:
        replica.kill()
