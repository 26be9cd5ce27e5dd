"""On PostgreSQL a transaction's BEGIN and savepoints are owed, not sent (engine.store.pg
``Session.begin``): they reach the server in one pipeline with the first statement, so a start
saves their round trips. Checked from outside, in ``pg_stat_activity``, on a real PostgreSQL:
the server sees no transaction until the first statement, every write of the transaction is
still inside it (a rollback undoes writes sent by ``execute``, ``executemany`` and COPY), and
savepoints keep their meaning."""
from __future__ import annotations

from pathlib import Path

import pytest

from signoff.engine.errors import StorageError
from signoff.engine.store import open_database


def _state(db, session) -> str:
    """The session's backend as the server reports it, asked on another connection."""
    import psycopg

    with psycopg.connect(db.url, autocommit=True) as other:
        row = other.execute("SELECT state FROM pg_stat_activity WHERE pid = %s",
                            (session.conn.info.backend_pid,)).fetchone()
    return row[0]


def _ids(db) -> list[int]:
    return [r[0] for r in db.query("SELECT id FROM probe ORDER BY id")]


@pytest.fixture()
def db(tmp_path: Path, pg_url: str):
    database = open_database(tmp_path / "d", pg_url)
    database.query("CREATE TABLE probe (id BIGINT PRIMARY KEY)")
    yield database
    database.close()


def test_the_server_sees_the_transaction_only_with_its_first_statement(db) -> None:
    session = db.begin()
    session.execute("SAVEPOINT a")
    assert session.in_transaction
    assert _state(db, session) == "idle"  # nothing sent yet: no BEGIN, no SAVEPOINT
    session.execute("INSERT INTO probe(id) VALUES (?)", (1,))
    assert _state(db, session) == "idle in transaction"
    session.execute("ROLLBACK TO a")
    session.execute("RELEASE a")
    db.commit()
    assert _ids(db) == []  # the savepoint went out before the insert, so rolling back to it undid it


@pytest.mark.parametrize("first", ["execute", "executemany", "copy"])
def test_a_rollback_undoes_the_first_write_whichever_way_it_was_sent(db, first: str) -> None:
    from signoff.engine.store.pg import copy_rows

    session = db.begin()
    if first == "execute":
        session.execute("INSERT INTO probe(id) VALUES (?)", (1,))
    elif first == "executemany":
        session.executemany("INSERT INTO probe(id) VALUES (?)", [(1,), (2,)])
    else:
        copy_rows(session.sent(), "COPY probe (id) FROM STDIN", [(1,), (2,)])
    assert _state(db, session) == "idle in transaction"
    db.rollback()
    assert _ids(db) == []
    with db.write() as tx:  # and committed, it is there
        tx.execute("INSERT INTO probe(id) VALUES (?)", (3,))
    assert _ids(db) == [3]


def test_a_transaction_that_sends_nothing_and_savepoints_never_sent(db) -> None:
    with db.write() as tx:
        tx.execute("SAVEPOINT a")
        tx.execute("RELEASE a")  # made and released with nothing between: never sent
        assert _state(db, tx) == "idle"
    with db.write() as tx:
        tx.execute("SAVEPOINT item")
        tx.execute("INSERT INTO probe(id) VALUES (?)", (1,))
        tx.execute("RELEASE item")
        tx.execute("SAVEPOINT item")
        tx.execute("INSERT INTO probe(id) VALUES (?)", (2,))
        tx.execute("ROLLBACK TO item")
        tx.execute("RELEASE item")
    assert _ids(db) == [1]


def test_a_refused_first_statement_rolls_back_and_the_session_goes_on(db) -> None:
    with db.write() as tx:
        tx.execute("INSERT INTO probe(id) VALUES (?)", (1,))
    with pytest.raises(StorageError, match="duplicate key"):
        with db.write() as tx:
            tx.execute("SAVEPOINT a")
            tx.execute("INSERT INTO probe(id) VALUES (?)", (1,))  # sent with BEGIN and SAVEPOINT
    assert not db.connection().in_transaction
    with db.write() as tx:
        tx.execute("INSERT INTO probe(id) VALUES (?)", (2,))
    assert _ids(db) == [1, 2]
