"""The PostgreSQL store's fewer round trips keep their meaning: writes deferred to COMMIT
arrive (or the whole transaction fails), the audit chain written in COMMIT's pipelines stays
dense and verifiable, several reads in one pipeline answer as one by one, and two replicas
signing the same chain head at once leave one checkpoint and no error."""
from __future__ import annotations

import threading
from pathlib import Path

import psycopg
import pytest

from signoff.engine.audit import append_event
from signoff.engine.audit.verify import verify_chain
from signoff.engine.core import Engine
from signoff.engine.errors import StorageError
from signoff.engine.signing.checkpoints import write_checkpoint
from signoff.engine.store.locks import defer_writes
from signoff.engine.store.pg import PgDatabase
from tests.support import pg_scratch


@pytest.fixture
def db(tmp_path: Path, pg_url: str):
    with pg_scratch(pg_url, tmp_path, "rt_a") as database:
        yield database


def test_deferred_writes_and_audit_events_commit_together(db: PgDatabase) -> None:
    with db.write() as tx:
        defer_writes(tx)
        tx.execute("INSERT INTO rt_a(id, v) VALUES (?, ?)", (1, "one"))
        append_event(tx, at="2026-01-01T00:00:00.000000Z", actor="ann", action="test.one", data={"n": 1})
        tx.execute("INSERT INTO rt_a(id, v) VALUES (?, ?)", (2, "two"))
        append_event(tx, at="2026-01-01T00:00:00.000000Z", actor="ann", action="test.two", data={"n": 2})
    assert [tuple(r) for r in db.query("SELECT id, v FROM rt_a ORDER BY id")] == [(1, "one"), (2, "two")]
    assert [tuple(r) for r in db.query("SELECT seq, action FROM audit ORDER BY seq")] == \
        [(1, "test.one"), (2, "test.two")]
    result = verify_chain(db)
    assert result.ok and result.count == 2, result.problem


def test_a_refused_deferred_write_fails_the_commit_and_its_reads_and_leaves_nothing(db: PgDatabase) -> None:
    with db.write() as tx:
        tx.execute("INSERT INTO rt_a(id, v) VALUES (1, 'kept')")
    with pytest.raises(StorageError, match="duplicate key"), db.write() as tx:
        defer_writes(tx)
        tx.execute("INSERT INTO rt_a(id, v) VALUES (?, ?)", (2, "new"))
        tx.execute("INSERT INTO rt_a(id, v) VALUES (?, ?)", (1, "clash"))
        append_event(tx, at="2026-01-01T00:00:00.000000Z", actor="ann", action="test.lost")
        reads = db.queries_at_commit([("SELECT count(*) FROM rt_a", ())])
    with pytest.raises(RuntimeError):  # reads made at COMMIT are answered only by a commit
        reads.result()
    assert [tuple(r) for r in db.query("SELECT id, v FROM rt_a ORDER BY id")] == [(1, "kept")]
    assert db.query("SELECT count(*) FROM audit")[0][0] == 0
    with db.write() as tx:  # the session is usable again, and the chain starts at 1
        append_event(tx, at="2026-01-01T00:00:00.000000Z", actor="ann", action="test.after")
        reads = db.queries_at_commit([("SELECT count(*) FROM rt_a", ())])
    assert reads.result()[0][0][0] == 1
    assert [tuple(r) for r in db.query("SELECT seq, action FROM audit")] == [(1, "test.after")]


def test_reads_in_one_pipeline_answer_as_one_by_one(db: PgDatabase) -> None:
    with db.write() as tx:
        tx.execute("INSERT INTO rt_a(id, v) VALUES (1, 'a'), (2, 'b')")
    statements = [("SELECT id, v FROM rt_a WHERE id=?", (1,)), ("SELECT count(*) AS n FROM rt_a", ()),
                  ("SELECT v FROM rt_a WHERE id=?", (9,))]
    piped = db.queries(statements)
    assert [[tuple(r) for r in rows] for rows in piped] == [[(1, "a")], [(2,)], []]
    assert piped[0][0]["v"] == "a" and piped[1][0]["n"] == 2
    with db.write() as tx:  # inside a transaction: on its connection, seeing its own writes
        tx.execute("INSERT INTO rt_a(id, v) VALUES (3, 'c')")
        assert db.queries(statements[1:2])[0][0]["n"] == 3
    with pytest.raises(StorageError, match="rt_missing"):
        db.queries([("SELECT 1", ()), ("SELECT * FROM rt_missing", ())])
    assert db.queries([("SELECT 1", ())]) == [[(1,)]]  # the connection went back usable


def test_two_replicas_signing_the_same_head_leave_one_checkpoint(tmp_path: Path, pg_url: str) -> None:
    flows = tmp_path / "flows"
    flows.mkdir()
    replicas = [Engine(tmp_path / f"replica{i}", [flows], database=pg_url) for i in range(2)]
    try:
        for round_ in range(8):
            with replicas[0].db.write() as tx:
                append_event(tx, at="2026-01-01T00:00:00.000000Z", actor="ann", action="test.event",
                             data={"round": round_})
            start = threading.Barrier(len(replicas))
            made: list[object] = []
            errors: list[BaseException] = []

            def sign(engine: Engine, start: threading.Barrier = start, made: list[object] = made,
                     errors: list[BaseException] = errors) -> None:
                start.wait()
                try:
                    made.append(write_checkpoint(engine, force=True))
                except BaseException as exc:  # noqa: BLE001 - collected and asserted below
                    errors.append(exc)
                finally:
                    engine.db.close()  # this thread's session

            threads = [threading.Thread(target=sign, args=(e,)) for e in replicas]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert errors == []
            assert len([m for m in made if m is not None]) == 1
        seqs = [r[0] for r in replicas[0].db.query("SELECT seq FROM audit_checkpoints ORDER BY seq")]
        assert seqs == list(range(1, 9))
    finally:
        for engine in replicas:
            engine.close()


def test_deferred_writes_end_with_their_transaction(db: PgDatabase) -> None:
    """After a commit with deferred writes (a start), a write of the same thread outside any
    transaction goes out at once: it was queued for a COMMIT that never came, and lost."""
    with db.write() as tx:
        defer_writes(tx)
        tx.execute("INSERT INTO rt_a(id, v) VALUES (?, ?)", (1, "deferred"))
    db.query("UPDATE rt_a SET v=? WHERE id=?", ("autocommitted", 1))
    with psycopg.connect(db.url) as other:  # (another connection: what is really stored)
        assert other.execute("SELECT v FROM rt_a WHERE id=1").fetchone() == ("autocommitted",)
