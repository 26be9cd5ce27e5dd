"""PostgreSQL's full-text words of the audit trail are fed behind the writes (schema 17,
engine.audit.fulltext_feed), on a real PostgreSQL: a COMMIT writes no words, a search first
indexes what was appended since, replicas catching up at once index each event once, and a
schema-16 database (words in the audit rows) upgrades in place with every event still found."""
from __future__ import annotations

from pathlib import Path

from signoff.engine.audit import append_event
from signoff.engine.audit.fulltext_feed import catch_up
from signoff.engine.audit.search import search
from signoff.engine.audit.verify import verify_chain
from signoff.engine.store import open_database
from signoff.engine.store.schema import SCHEMA_VERSION
from tests.support import catch_up_at_once


def _words(db, word: str) -> int:
    return db.query_one("SELECT count(*) FROM audit_words WHERE words @@ CAST(? AS tsquery)", (f"'{word}'",))[0]


def _mark(db) -> int:
    return db.query_one("SELECT seq FROM audit_fts_through")[0]


def test_a_commit_writes_no_words_and_a_search_catches_up(tmp_path: Path, pg_url: str) -> None:
    db = open_database(tmp_path / "d", pg_url)
    try:
        with db.write() as tx:
            append_event(tx, at="2026-01-05T09:00:00.000000Z", actor="ops", action="note", data={"reason": "jujube"})
            tx.execute("SAVEPOINT item")
            append_event(tx, at="2026-01-05T09:00:00.000000Z", actor="ops", action="note", data={"reason": "undone"})
            tx.execute("ROLLBACK TO item")
            tx.execute("RELEASE item")
        with db.write() as tx:
            append_event(tx, at="2026-01-05T09:00:01.000000Z", actor="ops", action="note", data={"reason": "jujube"})
        assert db.query_one("SELECT count(*) FROM audit_words")[0] == 0 and _mark(db) == 0
        # a field filter alone reads the audit table: nothing to catch up
        assert len(search(db, "actor:ops")) == 2 and _mark(db) == 0
        assert [e["seq"] for e in search(db, "jujube")] == [2, 1]
        assert _words(db, "jujube") == 2 and _mark(db) == 2
        assert search(db, "undone") == []
        assert catch_up(db) == 0 and db.query_one("SELECT count(*) FROM audit_words")[0] == 2
        with db.write() as tx:  # and the next one is found at once again
            append_event(tx, at="2026-01-05T09:00:02.000000Z", actor="ops", action="note", data={"reason": "jujube"})
        assert [e["seq"] for e in search(db, "jujube")] == [3, 2, 1] and _mark(db) == 3
        assert verify_chain(db).ok
    finally:
        db.close()


def test_replicas_catching_up_at_once_index_each_event_once(tmp_path: Path, pg_url: str) -> None:
    db = open_database(tmp_path / "d", pg_url)
    with db.write() as tx:
        for i in range(5_000):  # more than one page of the catch-up (2,000 events)
            append_event(tx, at="2026-01-05T09:00:00.000000Z", actor="ops", action="note",
                         data={"reason": f"feijoa item{i}"})
    counts = catch_up_at_once([tmp_path / f"r{i}" for i in range(3)], pg_url)
    try:
        assert counts == [0, 0, 5_000]  # one indexed everything, the others waited and found it done
        assert db.query_one("SELECT count(*), count(DISTINCT seq), min(seq), max(seq) FROM audit_words")[:] == \
            (5_000, 5_000, 1, 5_000)
        assert _words(db, "feijoa") == 5_000 and _words(db, "item4999") == 1 and _mark(db) == 5_000
        assert [e["seq"] for e in search(db, "item2000")] == [2001]
    finally:
        db.close()


def test_a_schema_16_database_upgrades_and_finds_every_old_event(tmp_path: Path, pg_cluster, pg_url: str) -> None:
    """Up to 16 the words were a column of the audit rows; 17 moves them, keeps the chain."""
    import psycopg

    from signoff.engine.audit.fulltext import tsvector_literal
    from signoff.engine.audit.log import GENESIS, event_content, event_hash
    from signoff.engine.store import pg_schema

    assert SCHEMA_VERSION == 17
    with psycopg.connect(pg_url, autocommit=True) as conn:  # the database as signoff 16 left it
        conn.execute(f"CREATE TABLE {pg_schema.META_TABLE} (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
        conn.execute(f"INSERT INTO {pg_schema.META_TABLE} VALUES ('application', 'signoff'), ('schema_version', '16')")
        for version in range(1, 17):
            for statement in pg_schema.statements(pg_schema.pg_migration(version)):
                conn.execute(statement)
        prev = GENESIS
        for seq, word in enumerate(("lychee", "longan", "lychee"), 1):
            data = f'{{"reason":"{word}"}}'
            digest = event_hash(prev, event_content(seq, "2026-01-05T09:00:00.000000Z", "ops", "note",
                                                    None, None, None, None, data))
            conn.execute("INSERT INTO audit(seq, at, actor, action, data, prev_hash, hash, search)"
                         " VALUES (%s, %s, 'ops', 'note', %s, %s, %s, CAST(%s AS tsvector))",
                         (seq, "2026-01-05T09:00:00.000000Z", data, prev, digest,
                          tsvector_literal(("note", "ops", data))))
            prev = digest
    db = open_database(tmp_path / "d", pg_url)
    try:
        assert db.schema_version() == 17
        columns = {r[0] for r in db.query("SELECT column_name FROM information_schema.columns"
                                          " WHERE table_name = 'audit'")}
        assert "search" not in columns
        assert _mark(db) == 3 and db.query_one("SELECT count(*) FROM audit_words")[0] == 3
        assert [e["seq"] for e in search(db, "lychee")] == [3, 1]
        assert catch_up(db) == 0  # the words came over with the upgrade: nothing to index again
        with db.write() as tx:
            append_event(tx, at="2026-01-05T09:00:01.000000Z", actor="ops", action="note", data={"reason": "lychee"})
        assert [e["seq"] for e in search(db, "lychee")] == [4, 3, 1]
        assert verify_chain(db).ok
    finally:
        db.close()
