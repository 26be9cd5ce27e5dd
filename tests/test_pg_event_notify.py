"""A replica's event feed (engine.server.head) takes a commit's events from its notification when
they follow its head, and reads the table otherwise: a gap, a commit too large for a
notification, a payload it does not understand. Two replicas are two PgDatabase handles on one
real PostgreSQL database, each with its own watcher and LISTEN connection."""
from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from signoff.engine.audit import append_event
from signoff.engine.server.head import HeadWatcher, notified_events
from signoff.engine.store.pg import PgDatabase

ACTIONS = ("test.event",)


@pytest.fixture
def replicas(tmp_path: Path, pg_url: str) -> Iterator[tuple[PgDatabase, HeadWatcher, PgDatabase, HeadWatcher]]:
    a, b = PgDatabase(pg_url, tmp_path / "a"), PgDatabase(pg_url, tmp_path / "b")
    # (no fallback read during a test: every read counted is one the notifications caused)
    watch_a, watch_b = (HeadWatcher(a, ACTIONS, fallback_s=600).start(),
                        HeadWatcher(b, ACTIONS, fallback_s=600).start())
    # both LISTEN connections up and caught up (each reads once when it connects): one event
    # seen by both, then a moment for a connection still being made
    append(a, 1)
    wait_for(lambda: watch_b.head == 1, "the first event")
    time.sleep(0.5)
    yield a, watch_a, b, watch_b
    watch_a.stop()
    watch_b.stop()
    a.close()
    b.close()


def append(db: PgDatabase, n: int, *, text: str = "") -> None:
    with db.write() as tx:
        for i in range(n):
            append_event(tx, at="2026-01-01T00:00:00.000000Z", actor="ann", action="test.event",
                         namespace="ops", request_id=f"r{i}", data={"text": text})


def wait_for(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 10
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def seqs(watcher: HeadWatcher) -> list[int]:
    window = watcher.window(0, 10_000)
    assert window is not None
    return [e["seq"] for e in window[0]]


def table_seqs(db: PgDatabase) -> list[int]:
    return [r[0] for r in db.query("SELECT seq FROM audit WHERE action='test.event' ORDER BY seq")]


def test_events_arrive_in_the_notification_without_a_read(replicas) -> None:
    a, watch_a, b, watch_b = replicas
    reads_a, reads_b = watch_a.reads, watch_b.reads
    for _ in range(5):
        append(a, 2)
    wait_for(lambda: watch_b.head == 11, "replica B's head")
    assert seqs(watch_a) == seqs(watch_b) == table_seqs(a) == list(range(1, 12))
    assert (watch_a.reads, watch_b.reads) == (reads_a, reads_b)  # no read of the table at all
    event = watch_b.window(0, 1)[0][0]  # type: ignore[index]
    assert event == {"seq": 1, "action": "test.event", "namespace": "ops", "request_id": "r0",
                     "execution_id": None, "actor": "ann"}


def test_a_commit_too_large_for_a_notification_is_read(replicas) -> None:
    a, _watch_a, _b, watch_b = replicas
    reads_b = watch_b.reads
    append(a, 40, text="x" * 20)  # ~40 x 60 bytes of fields: fits
    append(a, 200)  # ~200 x 40 bytes: more than a notification holds, so only the last seq goes
    wait_for(lambda: watch_b.head == 241, "the large commit")
    assert seqs(watch_b) == table_seqs(a) == list(range(1, 242))
    assert watch_b.reads == reads_b + 1


def test_a_gap_or_a_foreign_payload_makes_the_watcher_read_the_table(replicas, pg_url: str) -> None:
    a, _watch_a, _b, watch_b = replicas
    append(a, 2)
    wait_for(lambda: watch_b.head == 3, "three events")
    reads_b = watch_b.reads
    with psycopg.connect(pg_url, autocommit=True) as conn:
        # events that do not follow the head (9 after 3) are not taken: the table is read, and
        # it has nothing after 3, so nothing is added
        fake = [[9, "test.event", "ops", "forged", None, "mallory"]]
        conn.execute("SELECT pg_notify('signoff_audit', %s)", (json.dumps(fake),))
        wait_for(lambda: watch_b.reads == reads_b + 1, "a read after the gap")
        conn.execute("SELECT pg_notify('signoff_audit', %s)", ("[not json",))
        wait_for(lambda: watch_b.reads == reads_b + 2, "a read after a payload it does not understand")
    assert watch_b.head == 3 and seqs(watch_b) == [1, 2, 3]
    append(a, 1)  # and notifications that follow are taken again without a read
    wait_for(lambda: watch_b.head == 4, "the next event")
    assert watch_b.reads == reads_b + 2 and seqs(watch_b) == [1, 2, 3, 4]


@pytest.mark.parametrize("payload", ["17", "", "[]", "[[1, \"a\"]]", "[[2,\"a\",null,null,null,\"x\"],"
                                     "[4,\"a\",null,null,null,\"x\"]]", "{\"seq\": 1}", "[[\"x\",1,2,3,4,5]]"])
def test_payloads_without_usable_events_mean_read(payload: str) -> None:
    assert notified_events(payload) is None


def test_a_commits_own_events_are_taken_without_a_read(replicas) -> None:
    a, watch_a, _b, _watch_b = replicas
    reads_a = watch_a.reads
    append(a, 3)
    assert watch_a.head == 4 and seqs(watch_a) == [1, 2, 3, 4]  # before the commit's caller goes on
    time.sleep(0.3)  # its own notification comes next and is seen as taken
    assert watch_a.reads == reads_a and seqs(watch_a) == [1, 2, 3, 4]


def test_a_notification_carries_the_events_only_when_they_fit() -> None:
    from signoff.engine.audit.log import NOTIFY_MAX_BYTES, notify_payload

    few = [(i, "test.event", "ops", f"r{i}", None, "ann") for i in range(1, 4)]
    assert notified_events(notify_payload(few)) == few
    many = [(i, "a", None, None, None, "x") for i in range(1, 10_001)]  # a bulk's: only the last seq
    assert notify_payload(many) == "10000"
    wide = [(1, "test.event", "ops", "r" * NOTIFY_MAX_BYTES, None, "ann")]
    assert notify_payload(wide) == "1"
