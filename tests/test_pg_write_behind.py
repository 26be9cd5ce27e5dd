"""Queued writes on PostgreSQL (engine.store.pg Session.write_behind), what the bulk decide loop
uses to send many items' writes in one pipeline: order per table, savepoints kept or dropped
as on the server, reads seeing every earlier write, and a refused write failing the whole
transaction (nothing half-applied).
"""
from __future__ import annotations

from pathlib import Path

import pytest

from signoff.engine.errors import StorageError
from signoff.engine.store.locks import write_behind
from signoff.engine.store.pg import PgDatabase


@pytest.fixture
def db(tmp_path: Path, pg_url: str):
    database = PgDatabase(pg_url, tmp_path)
    with database.write() as tx:
        tx.execute("CREATE TABLE wb_a (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
        tx.execute("CREATE TABLE wb_b (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)")
    yield database
    database.close()


def rows(db: PgDatabase, table: str) -> list[tuple]:
    return [tuple(r) for r in db.query(f"SELECT * FROM {table} ORDER BY id")]


def test_queued_writes_arrive_in_order_and_reads_see_them(db: PgDatabase) -> None:
    with db.write() as tx, write_behind(tx):
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


def test_savepoints_kept_and_dropped_as_on_the_server(db: PgDatabase) -> None:
    with db.write() as tx, write_behind(tx):
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


def test_a_refused_write_fails_the_whole_transaction(db: PgDatabase) -> None:
    with db.write() as tx:
        tx.execute("INSERT INTO wb_a(id, v) VALUES (1, 'there')")
    with pytest.raises(StorageError, match="duplicate key"):
        with db.write() as tx, write_behind(tx):
            tx.execute("INSERT INTO wb_b(id, n) VALUES (1, 1)")
            tx.execute("INSERT INTO wb_a(id, v) VALUES (1, 'again')")  # refused when sent
            tx.execute("INSERT INTO wb_b(id, n) VALUES (2, 2)")
    assert rows(db, "wb_a") == [(1, "there")] and rows(db, "wb_b") == []
    # the session is usable again afterwards
    with db.write() as tx, write_behind(tx):
        tx.execute("INSERT INTO wb_b(id, n) VALUES (3, 3)")
    assert rows(db, "wb_b") == [(3, 3)]


def test_an_error_raised_by_a_read_after_a_refused_batch_cannot_be_committed(db: PgDatabase) -> None:
    """The bulk loop catches an item's exception and goes on; a refused batch must still fail
    the transaction at COMMIT rather than commit the rest."""
    with db.write() as tx:
        tx.execute("INSERT INTO wb_a(id, v) VALUES (1, 'there')")
    with pytest.raises(StorageError):
        with db.write() as tx, write_behind(tx):
            tx.execute("INSERT INTO wb_a(id, v) VALUES (1, 'again')")
            with pytest.raises(StorageError):
                tx.execute("SELECT 1").fetchone()
            tx.execute("INSERT INTO wb_b(id, n) VALUES (5, 5)")  # the loop went on
    assert rows(db, "wb_b") == []
