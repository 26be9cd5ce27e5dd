"""Queued writes (engine.store.behind), what the bulk decide loop uses to send many items'
writes batched, on both stores (PostgreSQL: one pipeline; SQLite: one executemany per
statement): order per table, savepoints kept or dropped as in the database, reads seeing every
earlier write, and a refused write failing the whole transaction (nothing half-applied).
"""
from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from signoff.engine.errors import StorageError
from signoff.engine.store.db import Database
from signoff.engine.store.locks import write_behind
from signoff.engine.store.pg import PgDatabase

#: what a refused write raises: the store's error (PostgreSQL) or sqlite3's own inside the block
REFUSED = (StorageError, sqlite3.IntegrityError)
DUPLICATE = "duplicate key|UNIQUE constraint"


@pytest.fixture(params=["sqlite", "pg"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "pg":
        database: Any = PgDatabase(request.getfixturevalue("pg_url"), tmp_path)
    else:
        database = Database(tmp_path)
    with database.write() as tx:
        tx.execute("CREATE TABLE wb_a (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
        tx.execute("CREATE TABLE wb_b (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)")
    yield database
    database.close()


def rows(db: Any, table: str) -> list[tuple]:
    return [tuple(r) for r in db.query(f"SELECT * FROM {table} ORDER BY id")]


def test_queued_writes_arrive_in_order_and_reads_see_them(db: Any) -> None:
    with db.write() as conn, write_behind(conn) as tx:
        for i in range(50):
            cur = tx.execute("INSERT INTO wb_a(id, v) VALUES (?, ?)", (i, "new"))
            assert cur.rowcount == -1  # queued: nothing known yet
            tx.execute("INSERT INTO wb_b(id, n) VALUES (?, 0)", (i,))
            tx.execute("UPDATE wb_b SET n = n + 1 WHERE id=?", (i,))
            tx.execute("UPDATE wb_a SET v = v || '+' WHERE id=?", (i,))
        tx.execute("UPDATE wb_a SET v = v || '!' WHERE id=?", (7,))
        # a read sends what is queued first, so it sees this transaction's writes
        assert tx.execute("SELECT count(*) FROM wb_a WHERE v='new+'").fetchone()[0] == 49
        tx.execute("UPDATE wb_b SET n = n + 10 WHERE id=?", (3,))
    assert rows(db, "wb_a")[7] == (7, "new+!")
    assert all(v == "new+" for i, v in rows(db, "wb_a") if i != 7)
    assert rows(db, "wb_b")[3] == (3, 11) and {n for i, n in rows(db, "wb_b") if i != 3} == {1}


def test_savepoints_kept_and_dropped_as_on_the_server(db: Any) -> None:
    with db.write() as conn, write_behind(conn) as tx:
        for i in range(6):
            tx.execute("SAVEPOINT item")
            tx.execute("INSERT INTO wb_a(id, v) VALUES (?, ?)", (i, f"item{i}"))
            tx.execute("INSERT INTO wb_b(id, n) VALUES (?, ?)", (i, i))
            if i == 2:  # a read inside the item: the savepoint and its writes go out first
                assert tx.execute("SELECT v FROM wb_a WHERE id=2").fetchone()[0] == "item2"
            if i % 2:
                tx.execute("ROLLBACK TO item")  # the item failed: its writes are undone
            tx.execute("RELEASE item")
        # a failed item after a read: undone on the server
        tx.execute("SAVEPOINT item")
        tx.execute("INSERT INTO wb_a(id, v) VALUES (?, ?)", (100, "gone"))
        assert tx.execute("SELECT count(*) FROM wb_a").fetchone()[0] == 4
        tx.execute("ROLLBACK TO item")
        tx.execute("RELEASE item")
    assert [r[0] for r in rows(db, "wb_a")] == [0, 2, 4]
    assert [r[0] for r in rows(db, "wb_b")] == [0, 2, 4]


def test_nested_savepoints_sent_or_kept_end_as_on_the_server(db: Any) -> None:
    """Savepoints inside savepoints, some sent by a read in between and some still kept on this
    side, released and rolled back in every order: the rows are what the database alone would
    have kept."""
    with db.write() as conn, write_behind(conn) as tx:
        tx.execute("SAVEPOINT sp_outer")
        tx.execute("INSERT INTO wb_a(id, v) VALUES (1, 'outer')")
        tx.execute("SAVEPOINT sp_inner")
        tx.execute("INSERT INTO wb_a(id, v) VALUES (2, 'inner')")
        assert tx.execute("SELECT count(*) FROM wb_a").fetchone()[0] == 2  # both go out
        tx.execute("INSERT INTO wb_a(id, v) VALUES (3, 'after the read')")
        tx.execute("SAVEPOINT sp_third")  # kept on this side, inside a sent one
        tx.execute("INSERT INTO wb_b(id, n) VALUES (3, 3)")
        tx.execute("ROLLBACK TO sp_inner")  # a sent savepoint: undoes 2, 3 and the kept one
        tx.execute("RELEASE sp_inner")
        tx.execute("INSERT INTO wb_a(id, v) VALUES (4, 'kept')")
        tx.execute("SAVEPOINT sp_late")  # at the queue's end when the next read sends it
        assert [r[0] for r in tx.execute("SELECT id FROM wb_a ORDER BY id")] == [1, 4]
        tx.execute("INSERT INTO wb_a(id, v) VALUES (5, 'gone')")
        tx.execute("ROLLBACK TO sp_late")
        tx.execute("INSERT INTO wb_a(id, v) VALUES (6, 'in late')")
        tx.execute("RELEASE sp_late")
        tx.execute("RELEASE sp_outer")
        tx.execute("SAVEPOINT sp_last")
        tx.execute("INSERT INTO wb_b(id, n) VALUES (7, 7)")
        tx.execute("SAVEPOINT sp_nested")
        tx.execute("INSERT INTO wb_b(id, n) VALUES (8, 8)")
        tx.execute("RELEASE sp_last")  # releases the nested one too: both rows stay
    assert [r[0] for r in rows(db, "wb_a")] == [1, 4, 6]
    assert [r[0] for r in rows(db, "wb_b")] == [7, 8]


def test_a_refused_write_fails_the_whole_transaction(db: Any) -> None:
    with db.write() as tx:
        tx.execute("INSERT INTO wb_a(id, v) VALUES (1, 'there')")
    with pytest.raises(REFUSED, match=DUPLICATE):
        with db.write() as conn, write_behind(conn) as tx:
            tx.execute("INSERT INTO wb_b(id, n) VALUES (1, 1)")
            tx.execute("INSERT INTO wb_a(id, v) VALUES (1, 'again')")  # refused when sent
            tx.execute("INSERT INTO wb_b(id, n) VALUES (2, 2)")
    assert rows(db, "wb_a") == [(1, "there")] and rows(db, "wb_b") == []
    # the session is usable again afterwards
    with db.write() as conn, write_behind(conn) as tx:
        tx.execute("INSERT INTO wb_b(id, n) VALUES (3, 3)")
    assert rows(db, "wb_b") == [(3, 3)]


def test_an_error_raised_by_a_read_after_a_refused_batch_cannot_be_committed(db: Any) -> None:
    """The bulk loop catches an item's exception and goes on; a refused batch must still fail
    the transaction at COMMIT rather than commit the rest."""
    with db.write() as tx:
        tx.execute("INSERT INTO wb_a(id, v) VALUES (1, 'there')")
    with pytest.raises(REFUSED):
        with db.write() as conn, write_behind(conn) as tx:
            tx.execute("INSERT INTO wb_a(id, v) VALUES (1, 'again')")
            with pytest.raises(REFUSED):
                tx.execute("SELECT 1").fetchone()
            tx.execute("INSERT INTO wb_b(id, n) VALUES (5, 5)")  # the loop went on
    assert rows(db, "wb_b") == []


def test_audit_events_of_the_block_are_chained_searchable_and_undone_with_their_item(db: Any) -> None:
    """Events appended inside the block are staged and chained after the block's writes (on
    SQLite too), densely numbered; a rolled-back item's event is dropped with it."""
    from signoff.engine.audit.log import append_event
    from signoff.engine.audit.search import search
    from signoff.engine.audit.verify import verify_chain

    at = "2026-01-01T00:00:00.000000Z"
    with db.write() as conn:
        append_event(conn, at=at, actor="ann", action="test.before", data={"word": "opening"})
    with db.write() as conn, write_behind(conn) as tx:
        for i in range(1, 7):
            tx.execute("SAVEPOINT item")
            append_event(tx, at=at, actor="ann", action="test.item", request_id=f"r{i}",
                         data={"word": f"marker{i}"}, raw={"context": f'{{"n":{i}}}'})
            tx.execute("INSERT INTO wb_a(id, v) VALUES (?, ?)", (i, "x"))
            if i == 2:  # a read inside the item sends the queued writes; events stay staged
                assert tx.execute("SELECT count(*) FROM wb_a").fetchone()[0] == 2
            if i in (3, 5):
                tx.execute("ROLLBACK TO item")
            tx.execute("RELEASE item")
    result = verify_chain(db)
    assert result.ok and result.count == 5, result
    stored = [(r[0], r[1], r[2]) for r in db.query("SELECT seq, request_id, data FROM audit ORDER BY seq")]
    assert [s for s, _r, _d in stored] == [1, 2, 3, 4, 5]
    assert [r for _s, r, _d in stored] == [None, "r1", "r2", "r4", "r6"]
    assert stored[3][2] == '{"context":{"n":4},"word":"marker4"}'
    assert [r[0] for r in rows(db, "wb_a")] == [1, 2, 4, 6]
    assert [e["request_id"] for e in search(db, "marker4")] == ["r4"]
    assert search(db, "marker3") == [] and search(db, "marker5") == []
