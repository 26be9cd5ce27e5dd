"""A commit of a few audit events on PostgreSQL is one round trip: the queued writes, the reads
made at COMMIT, the audit lock, the events numbered, chained and announced by the server
(engine.audit.log.CHAINED_APPEND_SQL), COMMIT. The server's hashes must be the ones Python
computes (``audit verify`` recomputes them), for any text; the notification must carry what
the event feeds follow; the reads must see the transaction as it commits. Checked on a real
PostgreSQL; round trips are counted from libpq's own protocol trace (one Sync per round trip).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import psycopg
import pytest

from signoff.engine.audit import append_event
from signoff.engine.audit.log import GENESIS, event_content, event_hash
from signoff.engine.audit.verify import verify_chain
from signoff.engine.server.head import notified_events
from signoff.engine.store.db import Database
from signoff.engine.store.locks import defer_writes
from signoff.engine.store.pg import COPY_MIN_ROWS, PgDatabase
from tests.support import pg_scratch

AT = "2026-01-01T00:00:00.000000Z"

#: texts that a JSON encoder, UTF-8 and SQL quoting could each spell differently
AWKWARD = ["plain", "é à ü", "日本語のテキスト", "🙂 four bytes", "e\u0301 combining", 'quote " and \' ',
           "back\\slash \\u0041", "new\nline\ttab\r", "</script><b>[bold]</b>", "%s %(x)s ? :name",
           "x" * 5000, "\u2028\u2029", "ʻokina", "[0,\"fake\"]"]


@pytest.fixture
def db(tmp_path: Path, pg_url: str):
    with pg_scratch(pg_url, tmp_path, "cp_a") as database:
        yield database


def stored(db: Any) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in db.query(
        "SELECT seq, at, actor, action, namespace, flow_id, execution_id, request_id, data, prev_hash, hash"
        " FROM audit ORDER BY seq")]


def test_server_chained_events_hash_as_python_does_for_any_text(db: PgDatabase) -> None:
    staged: list[tuple[Any, ...]] = []
    for commit in range(4):  # the first chains to the genesis hash, the others to each other
        with db.write() as tx:
            for i, text in enumerate(AWKWARD[commit::4]):
                event = (AT, f"actor {text[:40]}", "test.text", None if i % 2 else text[:60], "flow", None,
                         f"r-{commit}-{i}", {"text": text, "n": i})
                staged.append(event)
                at, actor, action, namespace, flow_id, execution_id, request_id, data = event
                append_event(tx, at=at, actor=actor, action=action, namespace=namespace, flow_id=flow_id,
                             execution_id=execution_id, request_id=request_id, data=data)
    rows = stored(db)
    assert len(rows) == len(staged) == len(AWKWARD)
    prev = GENESIS
    for seq, (row, event) in enumerate(zip(rows, staged, strict=True), start=1):
        at, actor, action, namespace, flow_id, execution_id, request_id, data = event
        from signoff.engine import jsonutil

        data_json = jsonutil.dumps(data)
        assert row[:9] == (seq, at, actor, action, namespace, flow_id, execution_id, request_id, data_json)
        expected = event_hash(prev, event_content(seq, at, actor, action, namespace, flow_id, execution_id,
                                                  request_id, data_json))
        assert (row[9], row[10]) == (prev, expected), f"event {seq}: {event}"
        prev = expected
    result = verify_chain(db)
    assert result.ok and result.count == len(AWKWARD), result.problem


@pytest.mark.parametrize("count", [1, COPY_MIN_ROWS - 1, COPY_MIN_ROWS])
def test_few_and_many_events_chain_on(db: PgDatabase, count: int) -> None:
    """Fewer than COPY_MIN_ROWS events are chained by the server, more here and sent as COPY;
    either continues the other's chain."""
    for n in (count, 3, count):
        with db.write() as tx:
            for i in range(n):
                append_event(tx, at=AT, actor="ann", action="test.many", request_id=f"r{i}", data={"i": i})
    assert [r[0] for r in stored(db)] == list(range(1, 2 * count + 4))
    assert db.appended_through == 2 * count + 3
    result = verify_chain(db)
    assert result.ok and result.count == 2 * count + 3, result.problem


def test_the_notification_carries_the_events_or_only_the_last_number(db: PgDatabase) -> None:
    with psycopg.connect(db.url, autocommit=True) as listener:
        listener.execute("LISTEN signoff_audit")
        with db.write() as tx:
            for i in range(3):
                append_event(tx, at=AT, actor="ann", action="test.feed", namespace="ops", request_id=f"r{i}",
                             execution_id=None if i else "e1")
        session = db.connection()
        assert session.committed_events == [(1, "test.feed", "ops", "r0", "e1", "ann"),
                                            (2, "test.feed", "ops", "r1", None, "ann"),
                                            (3, "test.feed", "ops", "r2", None, "ann")]
        with db.write() as tx:  # too large for a notification: only the last number goes
            for i in range(4):
                append_event(tx, at=AT, actor="a" * 3000, action="test.feed", request_id=f"big{i}")
        payloads = [n.payload for n in listener.notifies(timeout=5, stop_after=2)]
    assert notified_events(payloads[0]) == [(1, "test.feed", "ops", "r0", "e1", "ann"),
                                            (2, "test.feed", "ops", "r1", None, "ann"),
                                            (3, "test.feed", "ops", "r2", None, "ann")]
    assert payloads[1] == "7"
    assert [e[0] for e in db.connection().committed_events or []] == [4, 5, 6, 7]


def count_round_trips(conn: psycopg.Connection[Any], work: Any) -> int:
    """How many times libpq asked the server to answer (Sync messages) while ``work`` ran."""
    with tempfile.TemporaryFile("w+b") as trace:
        conn.pgconn.trace(trace.fileno())
        try:
            work()
        finally:
            conn.pgconn.untrace()
        trace.seek(0)
        lines = trace.read().decode("utf-8", "replace").splitlines()
    return sum(1 for line in lines if "\tF\t" in line and "\tSync" in line)


def test_writes_reads_and_events_commit_in_one_round_trip(db: PgDatabase) -> None:
    with db.write() as tx:
        tx.execute("INSERT INTO cp_a(id, v) VALUES (1, 'before')")
    tx = db.begin()
    defer_writes(tx)
    tx.execute("INSERT INTO cp_a(id, v) VALUES (?, ?)", (2, "deferred"))
    tx.executemany("INSERT INTO cp_a(id, v) VALUES (?, ?)", [(3, "many"), (4, "many")])
    tx.execute("UPDATE cp_a SET v=? WHERE id=?", ("changed", 1))
    append_event(tx, at=AT, actor="ann", action="test.one")
    append_event(tx, at=AT, actor="ann", action="test.two")
    reads = db.queries_at_commit([("SELECT id, v FROM cp_a ORDER BY id", ()),
                                  ("SELECT count(*) AS n FROM cp_a WHERE v=?", ("many",))])
    with pytest.raises(RuntimeError, match="once the transaction committed"):
        reads.result()
    assert tx.conn is not None
    assert count_round_trips(tx.conn, db.commit) == 1
    ids, many = reads.result()
    assert [tuple(r) for r in ids] == [(1, "changed"), (2, "deferred"), (3, "many"), (4, "many")]
    assert many[0]["n"] == 2
    assert [r[3] for r in stored(db)] == ["test.one", "test.two"]
    assert verify_chain(db).ok


def test_a_savepoint_rolled_back_drops_its_queued_executemany(db: PgDatabase) -> None:
    """executemany of a plain write is queued with the deferred writes (it was sent at once,
    which made the run's savepoint real); a savepoint rolled back still drops it."""
    with db.write() as tx:
        defer_writes(tx)
        tx.execute("INSERT INTO cp_a(id, v) VALUES (1, 'kept')")
        tx.execute("SAVEPOINT run")
        tx.executemany("INSERT INTO cp_a(id, v) VALUES (?, ?)", [(2, "dropped"), (3, "dropped")])
        append_event(tx, at=AT, actor="ann", action="test.dropped")
        tx.execute("ROLLBACK TO run")
        tx.execute("RELEASE run")
        tx.executemany("INSERT INTO cp_a(id, v) VALUES (?, ?)", [(4, "after")])
        append_event(tx, at=AT, actor="ann", action="test.kept")
    assert [tuple(r) for r in db.query("SELECT id, v FROM cp_a ORDER BY id")] == [(1, "kept"), (4, "after")]
    assert [r[3] for r in stored(db)] == ["test.kept"]


def test_reads_at_commit_without_events_or_transaction(db: PgDatabase, tmp_path: Path) -> None:
    with db.write() as tx:
        defer_writes(tx)
        tx.execute("INSERT INTO cp_a(id, v) VALUES (1, 'x')")
        reads = db.queries_at_commit([("SELECT v FROM cp_a WHERE id=?", (1,))])
    assert reads.result()[0][0]["v"] == "x"
    outside = db.queries_at_commit([("SELECT count(*) FROM cp_a", ())])  # no transaction: at once
    assert outside.result()[0][0][0] == 1


def test_sqlite_reads_at_commit_see_the_transaction(tmp_path: Path) -> None:
    db = Database(tmp_path / "sqlite")
    try:
        with db.write() as tx:
            tx.execute("CREATE TABLE cp_a (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
        with db.write() as tx:
            tx.execute("INSERT INTO cp_a(id, v) VALUES (1, 'x')")
            append_event(tx, at=AT, actor="ann", action="test.one")
            reads = db.queries_at_commit([("SELECT v FROM cp_a", ()), ("SELECT count(*) FROM audit", ())])
        values, events = reads.result()
        assert [r[0] for r in values] == ["x"] and events[0][0] == 1
    finally:
        db.close()
    assert os.path.exists(tmp_path / "sqlite" / "signoff.db")
