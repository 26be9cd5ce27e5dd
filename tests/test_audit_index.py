"""The full-text index of the audit trail is fed once per transaction (schema 4): what a
transaction appends is searchable as soon as it commits, nothing of a rolled-back one is
indexed, and a database written at schema 3 (index fed by a trigger) upgrades in place."""
from __future__ import annotations

import sqlite3

import pytest

from signoff.engine.audit import append_event
from signoff.engine.audit.search import search
from signoff.engine.audit.verify import verify_chain
from signoff.engine.store import db as dbmod
from signoff.engine.store.schema import SCHEMA_VERSION
from tests.support import old_schema_db


def _fts_check(conn: sqlite3.Connection) -> None:
    conn.execute("INSERT INTO audit_fts(audit_fts) VALUES('integrity-check')")


def test_events_of_one_transaction_are_indexed_when_it_commits(tmp_path):
    database = dbmod.Database(tmp_path / "d")
    with database.write() as tx:
        for word in ("tamarind", "quince", "loquat"):
            append_event(tx, at="2026-01-05T09:00:00.000000Z", actor="ops", action="note", data={"reason": word})
        tx.execute("SAVEPOINT item")
        append_event(tx, at="2026-01-05T09:00:00.000000Z", actor="ops", action="note", data={"reason": "undone"})
        tx.execute("ROLLBACK TO item")
        tx.execute("RELEASE item")
        append_event(tx, at="2026-01-05T09:00:00.000000Z", actor="ops", action="note", data={"reason": "medlar"})
    for word in ("tamarind", "quince", "loquat", "medlar"):
        assert [e["data"]["reason"] for e in search(database, word)] == [word]
    assert search(database, "undone") == []
    _fts_check(database.connection())
    assert verify_chain(database).ok
    database.close()


def test_a_rolled_back_transaction_leaves_nothing_to_index(tmp_path):
    database = dbmod.Database(tmp_path / "d")
    with pytest.raises(RuntimeError):
        with database.write() as tx:
            append_event(tx, at="2026-01-05T09:00:00.000000Z", actor="ops", action="note", data={"reason": "gone"})
            raise RuntimeError("boom")
    with database.write() as tx:
        append_event(tx, at="2026-01-05T09:00:01.000000Z", actor="ops", action="note", data={"reason": "kept"})
    assert search(database, "gone") == []
    assert [e["seq"] for e in search(database, "kept")] == [1]
    _fts_check(database.connection())
    database.close()


def test_a_plain_connection_indexes_each_event_itself(tmp_path):
    database = dbmod.Database(tmp_path / "d")
    database.close()
    conn = sqlite3.connect(database.path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    append_event(conn, at="2026-01-05T09:00:00.000000Z", actor="ops", action="note", data={"reason": "sapodilla"})
    conn.execute("COMMIT")
    conn.close()
    assert [e["actor"] for e in search(database, "sapodilla")] == ["ops"]
    database.close()


def test_a_schema_3_database_upgrades_and_keeps_its_index(tmp_path):
    data = tmp_path / "old"
    conn = old_schema_db(data, 3)
    conn.execute("BEGIN")
    append_event(conn, at="2026-01-01T00:00:00.000000Z", actor="old", action="legacy.event", namespace="x",
                 request_id="r000000000001", data={"reason": "persimmon"})
    conn.execute("COMMIT")
    assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name='audit_fts_insert'").fetchone()[0] == 1
    conn.close()
    database = dbmod.Database(data)
    conn = database.connection()
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION >= 4
    assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name='audit_fts_insert'").fetchone()[0] == 0
    with database.write() as tx:
        append_event(tx, at="2026-01-02T00:00:00.000000Z", actor="new", action="note", namespace="x",
                     data={"reason": "persimmon again"})
    assert [e["actor"] for e in search(database, "persimmon")] == ["new", "old"]
    assert [e["actor"] for e in search(database, "request:r000000000001")] == ["old"]
    _fts_check(conn)
    assert verify_chain(database).ok
    database.close()
