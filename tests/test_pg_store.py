"""The PostgreSQL store on a real (throwaway) PostgreSQL: choosing it, its schema, refusals,
concurrent start-up, the audit chain and full-text search matching the SQLite store.
"""
from __future__ import annotations

import json
import sqlite3
import subprocess
import threading
from pathlib import Path

import pytest

from signoff.engine.store.schema import SCHEMA_VERSION
from tests.support import REPO, SIGNOFF, clean_env

FLOWS = REPO / "tests" / "data" / "cli_flows"


def signoff(tmp_path: Path, *args: str, env: dict[str, str] | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "config"
    config.mkdir(exist_ok=True)
    proc = subprocess.run([*SIGNOFF, "--data-dir", str(tmp_path / "data"), "--flows", str(FLOWS), *args],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, cwd=REPO, timeout=timeout,
                          env=clean_env(SIGNOFF_CONFIG_DIR=str(config), **(env or {})))
    assert "Traceback" not in proc.stderr + proc.stdout, proc
    return proc


def dbname(url: str) -> str:
    return url.split("@/", 1)[1].split("?")[0]


def tables(pg_cluster, url: str) -> set[str]:
    name = dbname(url)
    rows = pg_cluster.psql("SELECT table_name FROM information_schema.tables WHERE table_schema='public'", name)
    return set(rows.splitlines())


# -- choosing the store -------------------------------------------------------------------------


def test_cli_runs_and_decides_on_postgresql(tmp_path: Path, pg_cluster, pg_url: str) -> None:
    r = signoff(tmp_path, "--database", pg_url, "run", "cli.tests", "pause_form", "-i", "who=Ann", "--json")
    assert r.returncode == 0, r
    execution = json.loads(r.stdout)
    request_id = execution["requests"][0]["id"]
    r = signoff(tmp_path, "--database", pg_url, "approve", request_id, "-i", "copies=2", "-i", "note=ok",
                "-i", "ok=true", "--json")
    assert r.returncode == 0, r
    assert json.loads(r.stdout)[0]["outcome"] == "decided"
    # nothing went to a SQLite file: the data directory holds no database
    assert not list((tmp_path / "data").glob("*.db*"))
    name = dbname(pg_url)
    assert pg_cluster.psql(f"SELECT state FROM requests WHERE id='{request_id}'", name) == "APPROVED"
    r = signoff(tmp_path, "--database", pg_url, "audit", "verify", "--json")
    assert r.returncode == 0, r
    assert json.loads(r.stdout)["ok"] is True


def test_database_from_environment_and_config_file(tmp_path: Path, pg_cluster) -> None:
    from_env = pg_cluster.new_database("env")
    r = signoff(tmp_path, "kv", "set", "K", "from-env", env={"SIGNOFF_DATABASE_URL": from_env})
    assert r.returncode == 0, r
    from_config = pg_cluster.new_database("cfg")
    (tmp_path / "config").mkdir(exist_ok=True)
    (tmp_path / "config" / "config.toml").write_text(f'database = "{from_config}"\n')
    r = signoff(tmp_path, "kv", "set", "K", "from-config")
    assert r.returncode == 0, r
    # --database wins over both; the environment wins over the file
    r = signoff(tmp_path, "kv", "set", "K", "from-env-2", env={"SIGNOFF_DATABASE_URL": from_env})
    assert r.returncode == 0, r
    env_name = dbname(from_env)
    cfg_name = dbname(from_config)
    assert pg_cluster.psql("SELECT value FROM kv WHERE key='K'", env_name) == '"from-env-2"'
    assert pg_cluster.psql("SELECT value FROM kv WHERE key='K'", cfg_name) == '"from-config"'
    assert not list((tmp_path / "data").glob("*.db*"))


@pytest.mark.parametrize("value", ["sqlite:///tmp/x.db", "mysql://db/signoff", "db.example.com"])
def test_a_database_that_is_not_postgresql_is_refused(tmp_path: Path, value: str) -> None:
    r = signoff(tmp_path, "--database", value, "pending")
    assert r.returncode == 2, r
    assert "--database" in r.stderr and "postgresql://" in r.stderr, r.stderr
    r = signoff(tmp_path, "pending", env={"SIGNOFF_DATABASE_URL": value})
    assert r.returncode == 2 and "$SIGNOFF_DATABASE_URL" in r.stderr, r


def test_unreachable_database_is_a_clear_error(tmp_path: Path) -> None:
    url = f"postgresql://signoff:secret@/signoff?host={tmp_path / 'no-such-socket-dir'}"
    r = signoff(tmp_path, "--database", url, "pending", timeout=90)
    assert r.returncode != 0
    assert "cannot connect to the database" in r.stderr, r.stderr
    assert "secret" not in r.stderr  # the password is never shown
    assert len(r.stderr.strip().splitlines()) <= 3, r.stderr


# -- schema -----------------------------------------------------------------------------------


def test_same_tables_and_columns_as_sqlite(tmp_path: Path, pg_cluster, pg_url: str) -> None:
    """Every migration exists for both stores and builds the same tables and columns (besides the
    store's own: SQLite's FTS5 tables, PostgreSQL's version table and its table of full-text
    words)."""
    from signoff.engine.store import open_database

    sqlite_db = open_database(tmp_path / "sqlite")
    pg_db = open_database(tmp_path / "pg", pg_url)
    try:
        lite: dict[str, set[str]] = {}
        for (name,) in sqlite_db.query("SELECT name FROM sqlite_master WHERE type='table'"):
            if name == "audit_fts_through" or not name.startswith("audit_fts"):
                lite[name] = {r[1] for r in sqlite_db.query(f"PRAGMA table_info({name})")}
        pg: dict[str, set[str]] = {}
        for name, column in pg_db.query("SELECT table_name, column_name FROM information_schema.columns"
                                        " WHERE table_schema = current_schema()"):
            if name not in ("signoff_meta", "audit_words"):
                pg.setdefault(name, set()).add(column)
        assert pg == lite
        assert pg_db.schema_version() == sqlite_db.schema_version() == SCHEMA_VERSION
    finally:
        sqlite_db.close()
        pg_db.close()


def test_replicas_starting_at_once_migrate_exactly_once(tmp_path: Path, pg_cluster, pg_url: str) -> None:
    cmd = [*SIGNOFF, "--data-dir", str(tmp_path / "data"), "--flows", str(FLOWS), "--database", pg_url,
           "pending", "--json"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                              stdin=subprocess.DEVNULL, env=clean_env(SIGNOFF_CONFIG_DIR=str(tmp_path)))
             for _ in range(6)]
    results = [(p.wait(timeout=120), *p.communicate()) for p in procs]
    for code, out, err in results:
        assert code == 0 and json.loads(out) == [], (code, out, err)
    name = dbname(pg_url)
    assert pg_cluster.psql("SELECT value FROM signoff_meta WHERE name='schema_version'", name) == str(SCHEMA_VERSION)


def test_newer_database_is_refused_and_untouched(tmp_path: Path, pg_cluster, pg_url: str) -> None:
    assert signoff(tmp_path, "--database", pg_url, "kv", "set", "K", "V").returncode == 0
    name = dbname(pg_url)
    pg_cluster.psql(f"UPDATE signoff_meta SET value='{SCHEMA_VERSION + 7}' WHERE name='schema_version'", name)
    before = pg_cluster.psql("SELECT count(*) FROM audit", name)
    r = signoff(tmp_path, "--database", pg_url, "kv", "set", "K", "W")
    assert r.returncode != 0
    assert f"newer signoff (schema {SCHEMA_VERSION + 7})" in r.stderr and "untouched" in r.stderr, r.stderr
    assert pg_cluster.psql("SELECT count(*) FROM audit", name) == before
    assert pg_cluster.psql("SELECT value FROM kv WHERE key='K'", name) == '"V"'


def test_foreign_database_is_refused_and_untouched(tmp_path: Path, pg_cluster, pg_url: str) -> None:
    name = dbname(pg_url)
    pg_cluster.psql("CREATE TABLE invoices (id int primary key)", name)
    r = signoff(tmp_path, "--database", pg_url, "pending")
    assert r.returncode != 0
    assert "holds tables but no signoff schema" in r.stderr, r.stderr
    assert tables(pg_cluster, pg_url) == {"invoices"}
    other = pg_cluster.new_database("other")
    other_name = dbname(other)
    pg_cluster.psql("CREATE TABLE signoff_meta (name text primary key, value text);"
                    " INSERT INTO signoff_meta VALUES ('application', 'billing')", other_name)
    r = signoff(tmp_path, "--database", other, "pending")
    assert r.returncode != 0 and "another application" in r.stderr, r.stderr
    assert tables(pg_cluster, other) == {"signoff_meta"}


# -- audit chain and search ------------------------------------------------------------------------


def test_concurrent_writers_keep_the_chain_dense(tmp_path: Path, pg_url: str) -> None:
    """Threads writing at once (each its own transaction, as replicas do): the audit events get
    dense sequence numbers and one unbroken chain."""
    from signoff.engine.audit.verify import verify_chain
    from signoff.engine.identity import Identity
    from tests.support import make_service

    svc = make_service(tmp_path)
    svc.engine.db.close()
    from signoff.engine.store import open_database

    svc.engine.db = open_database(tmp_path / "data", pg_url)
    svc.db = svc.engine.db
    who = Identity("alice", (), source="token")
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(25):
                svc.kv_set(who, "ns", f"k{n}", i)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    seqs = [r[0] for r in svc.db.query("SELECT seq FROM audit ORDER BY seq")]
    assert seqs == list(range(1, 201))
    result = verify_chain(svc.db)
    assert result.ok and result.count == 200, result
    svc.engine.db.close()


EVENTS = [
    ("alice", "request.approved", "prod.payments", "pay", {"reason": "Disk full on db-01, approved"}),
    ("bob", "request.denied", "prod.payments", "pay", {"reason": "not now: the disk-full alert is noise"}),
    ("carol", "execution.started", "dev.tools", "deploy", {"inputs": {"target": "café-north", "n": 3}}),
    ("svc deploy", "request.created", "prod.deploy", "deploy", {"summary": "Deploy v1.2.3 to eu-west"}),
    ("alice", "kv.set", "ops", None, {"key": "flag_x", "value": "ÉTÉ 2026"}),
    ("dave", "request.cancelled", "prod.deploy", "rollback", {"reason": "full disk? no: disk quota"}),
]

QUERIES = [
    "", "disk", "\"disk full\"", "disk full", "dep*", "deploy", "cafe", "été", "2026", "v1", "1.2.3",
    "actor:alice", "action:request.*", "ns:prod*", "flow:deploy disk", "quota actor:dave",
    "\"full disk\"", "eu-west", "flag_x", "noise alert", "approved", "request", "nothing-matches-this",
    "action:kv.set ete", "payments",
]


def test_search_finds_the_same_events_on_both_stores(tmp_path: Path, pg_url: str) -> None:
    from signoff.engine.audit.log import append_event
    from signoff.engine.audit.search import search
    from signoff.engine.audit.verify import verify_chain
    from signoff.engine.store import open_database

    stores = [open_database(tmp_path / "sqlite"), open_database(tmp_path / "pg", pg_url)]
    try:
        for db in stores:
            for i, (actor, action, ns, flow, data) in enumerate(EVENTS):
                with db.write() as tx:
                    append_event(tx, at=f"2026-01-0{i + 1}T10:00:00.000000Z", actor=actor, action=action,
                                 namespace=ns, flow_id=flow, data=data)
        for query in QUERIES:
            found = [[e["seq"] for e in search(db, query, limit=100)] for db in stores]
            assert found[0] == found[1], f"{query!r}: SQLite {found[0]}, PostgreSQL {found[1]}"
        assert [e["seq"] for e in search(stores[1], "disk", limit=100)] == [6, 2, 1]
        heads = [verify_chain(db) for db in stores]
        assert heads[0].ok and heads[1].ok and heads[0].head == heads[1].head  # the same chain, hash for hash
    finally:
        for db in stores:
            db.close()


def test_rolled_back_savepoint_drops_its_audit_events(tmp_path: Path, pg_url: str) -> None:
    from signoff.engine.audit.log import append_event
    from signoff.engine.store import open_database

    db = open_database(tmp_path, pg_url)
    try:
        with db.write() as tx:
            append_event(tx, at="2026-01-01T00:00:00.000000Z", actor="a", action="kept.one")
            tx.execute("SAVEPOINT item")
            append_event(tx, at="2026-01-01T00:00:00.000000Z", actor="a", action="dropped")
            tx.execute("ROLLBACK TO item")
            tx.execute("RELEASE item")
            append_event(tx, at="2026-01-01T00:00:00.000000Z", actor="a", action="kept.two")
        assert [tuple(r) for r in db.query("SELECT seq, action FROM audit ORDER BY seq")] == \
            [(1, "kept.one"), (2, "kept.two")]
    finally:
        db.close()


def test_sqlite_result_rows_and_postgresql_rows_read_alike(tmp_path: Path, pg_url: str) -> None:
    from signoff.engine.store import open_database

    db = open_database(tmp_path, pg_url)
    lite = sqlite3.connect(":memory:")
    lite.row_factory = sqlite3.Row
    try:
        row = db.query_one("SELECT 1 AS one, 'x' AS two, '50%' AS pct, ? AS param", ("p",))
        other = lite.execute("SELECT 1 AS one, 'x' AS two, '50%' AS pct, ? AS param", ("p",)).fetchone()
        assert dict(row) == dict(other) == {"one": 1, "two": "x", "pct": "50%", "param": "p"}
        assert row[0] == other[0] and row["two"] == other["two"] and tuple(row) == tuple(other)
        named = db.query_one("SELECT :a AS a, ':not_a_param' AS b", {"a": 5})
        assert tuple(named) == (5, ":not_a_param")
    finally:
        db.close()
        lite.close()


# -- moving over ------------------------------------------------------------------------------------


def test_db_copy_moves_everything_and_the_chain_verifies_with_the_same_head(tmp_path: Path, pg_cluster,
                                                                           pg_url: str) -> None:
    for who in ("Ann", "Bob", "Cy"):
        r = signoff(tmp_path, "run", "cli.tests", "pause_form", "-i", f"who={who}", "--json")
        assert r.returncode == 0, r
    first = json.loads(signoff(tmp_path, "pending", "--json").stdout)[0]["id"]
    assert signoff(tmp_path, "approve", first, "-i", "copies=1", "-i", "note=n", "-i", "ok=true").returncode == 0
    assert signoff(tmp_path, "kv", "set", "K", "V").returncode == 0
    assert signoff(tmp_path, "token", "issue", "alice").returncode == 0
    head = signoff(tmp_path, "audit", "head").stdout.strip()
    pending_before = json.loads(signoff(tmp_path, "pending", "--json").stdout)
    history_before = signoff(tmp_path, "history", "Ann", "--json").stdout

    r = signoff(tmp_path, "db", "copy", "--to", pg_url, "--json")
    assert r.returncode == 0, r
    report = json.loads(r.stdout)
    assert report["verified"] is True and report["rows"] > 20, report
    assert f"{report['head_seq']}:{report['head_hash']}" == head

    on_pg = ("--database", pg_url)
    r = signoff(tmp_path, *on_pg, "audit", "verify", "--head", head)
    assert r.returncode == 0, r
    assert json.loads(signoff(tmp_path, *on_pg, "pending", "--json").stdout) == pending_before
    assert signoff(tmp_path, *on_pg, "history", "Ann", "--json").stdout == history_before
    # the copy is live: new decisions and events continue the ids and the chain
    second = pending_before[0]["id"]
    r = signoff(tmp_path, *on_pg, "approve", second, "-i", "copies=1", "-i", "note=n", "-i", "ok=true", "--json")
    assert r.returncode == 0, r
    assert json.loads(signoff(tmp_path, *on_pg, "audit", "verify", "--json").stdout)["ok"] is True
    # copying again into the now busy database is refused, and nothing changes
    before = pg_cluster.psql("SELECT count(*) FROM audit", dbname(pg_url))
    r = signoff(tmp_path, "db", "copy", "--to", pg_url)
    assert r.returncode == 2 and "already holds signoff data" in r.stderr, r
    assert pg_cluster.psql("SELECT count(*) FROM audit", dbname(pg_url)) == before


def test_db_copy_needs_a_source_and_a_postgresql_target(tmp_path: Path, pg_url: str) -> None:
    r = signoff(tmp_path, "db", "copy", "--to", pg_url)
    assert r.returncode == 2 and "nothing to copy" in r.stderr, r
    r = signoff(tmp_path, "db", "copy", "--to", "/tmp/other.db")
    assert r.returncode == 2 and "--to" in r.stderr, r
