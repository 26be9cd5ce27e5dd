"""SQLite's full-text index of the audit trail is fed behind the writes (schema 16,
engine.audit.fulltext_feed): a COMMIT does not touch it, a search first indexes what was
appended since the last one, so what a transaction appends is found as soon as it commits;
nothing of a rolled-back one is indexed, no event is indexed twice when processes catch up at
once, and older databases upgrade in place (schema 3: index fed by a trigger)."""
from __future__ import annotations

import sqlite3
import time

import pytest

from signoff.engine.audit import append_event
from signoff.engine.audit.fulltext_feed import catch_up
from signoff.engine.audit.search import search
from signoff.engine.audit.verify import verify_chain
from signoff.engine.store import db as dbmod
from signoff.engine.store.schema import SCHEMA_VERSION
from tests.support import catch_up_at_once, old_schema_db


def _fts_check(conn: sqlite3.Connection) -> None:
    conn.execute("INSERT INTO audit_fts(audit_fts) VALUES('integrity-check')")


def _indexed(conn: sqlite3.Connection, word: str) -> int:
    return conn.execute("SELECT count(*) FROM audit_fts WHERE audit_fts MATCH ?", (word,)).fetchone()[0]


def _mark(conn: sqlite3.Connection) -> int:
    return conn.execute("SELECT seq FROM audit_fts_through").fetchone()[0]


def test_events_of_one_transaction_are_found_once_it_commits(tmp_path):
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


def test_a_commit_leaves_the_index_alone_and_a_search_catches_up(tmp_path):
    database = dbmod.Database(tmp_path / "d")
    conn = database.connection()
    with database.write() as tx:
        append_event(tx, at="2026-01-05T09:00:00.000000Z", actor="ops", action="note", data={"reason": "jujube"})
    with database.write() as tx:
        append_event(tx, at="2026-01-05T09:00:01.000000Z", actor="ops", action="note", data={"reason": "jujube"})
    assert _indexed(conn, "jujube") == 0 and _mark(conn) == 0
    # a field filter alone reads the table, not the index: nothing to catch up
    assert len(search(database, "actor:ops")) == 2 and _mark(conn) == 0
    assert [e["seq"] for e in search(database, "jujube")] == [2, 1]
    assert _indexed(conn, "jujube") == 2 and _mark(conn) == 2
    assert catch_up(database) == 0  # nothing new: nothing indexed again
    assert _indexed(conn, "jujube") == 2
    _fts_check(conn)
    database.close()


def test_processes_catching_up_at_once_index_each_event_once(tmp_path):
    database = dbmod.Database(tmp_path / "d")
    with database.write() as tx:
        for i in range(2_000):
            append_event(tx, at="2026-01-05T09:00:00.000000Z", actor="ops", action="note",
                         data={"reason": f"feijoa item{i}"})
    database.close()
    counts = catch_up_at_once([tmp_path / "d"] * 3)
    assert counts == [0, 0, 2_000]  # one of them indexed everything, the others found it done
    database = dbmod.Database(tmp_path / "d")
    conn = database.connection()
    assert _indexed(conn, "feijoa") == 2_000 and _indexed(conn, "item1999") == 1 and _mark(conn) == 2_000
    _fts_check(conn)
    database.close()


def test_the_server_runner_indexes_when_idle(tmp_path):
    from signoff.engine.core import Engine
    from signoff.engine.server.runner import Runner
    from signoff.engine.service import ApprovalService

    flows = tmp_path / "flows"
    flows.mkdir()
    engine = Engine(tmp_path / "d", [flows])
    with engine.db.write() as tx:
        append_event(tx, at="2026-01-05T09:00:00.000000Z", actor="ops", action="note", data={"reason": "rambutan"})
    conn = engine.db.connection()
    assert _mark(conn) == 0
    runner = Runner(ApprovalService(engine), interval=0.05).start()
    try:
        deadline = time.monotonic() + 30
        while _mark(conn) != 1 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        assert runner.stop()
    assert _mark(conn) == 1 and _indexed(conn, "rambutan") == 1
    engine.close()


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


def test_events_a_plain_connection_appended_are_found_too(tmp_path):
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
