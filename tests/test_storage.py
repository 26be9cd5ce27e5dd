"""The database file in the real world (README, "Storage and durability"), through the real
`signoff` command: damaged, foreign, newer and unreachable files are refused with their path
and never modified; two processes deciding the same request at once agree on one winner.
"""
from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
from pathlib import Path

import pytest

from signoff.engine.store.db import DB_FILENAME
from signoff.engine.store.schema import SCHEMA_VERSION
from tests.support import REPO, SIGNOFF, clean_env

FLOWS = REPO / "tests" / "data" / "cli_flows"

#: commands that open the database (flows validate and secret set do not)
DB_COMMANDS = [
    ("pending",),
    ("pending", "--json"),
    ("flows", "list"),
    ("executions", "list"),
    ("run", "cli.tests", "no_approval"),
    ("show", "someid"),
    ("approve", "someid"),
    ("deny", "someid", "--reason", "x"),
    ("cancel", "someid"),
    ("kv", "set", "K", "V"),
    ("worker", "--once"),
]


def signoff(data_dir: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    proc = subprocess.run([*SIGNOFF, "--data-dir", str(data_dir), "--flows", str(FLOWS), *map(str, args)],
                          capture_output=True, text=True, env=clean_env(), stdin=subprocess.DEVNULL,
                          cwd=REPO, timeout=timeout)
    assert "Traceback" not in proc.stderr + proc.stdout, proc
    return proc


def fingerprint(path: Path) -> tuple[int, str]:
    data = path.read_bytes()
    return len(data), hashlib.sha256(data).hexdigest()


def dir_listing(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir())


def make_real_db(data_dir: Path) -> Path:
    """A real signoff database with some content, closed cleanly (no -wal left behind)."""
    r = signoff(data_dir, "run", "cli.tests", "pause_form", "-i", "who=Ann", "--json")
    assert r.returncode == 0, r
    r = signoff(data_dir, "kv", "set", "K", "V")
    assert r.returncode == 0, r
    db = data_dir / DB_FILENAME
    assert db.is_file()
    return db


def assert_refused_untouched(data_dir: Path, args: tuple[str, ...], *fragments: str) -> str:
    db = data_dir / DB_FILENAME
    before = fingerprint(db)
    listing = dir_listing(data_dir)
    r = signoff(data_dir, *args)
    assert r.returncode == 2, r
    assert str(db) in r.stderr, r.stderr
    for fragment in fragments:
        assert fragment in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) <= 3, r.stderr  # one message, not a dump
    assert fingerprint(db) == before, f"{db} was modified by `signoff {' '.join(args)}`"
    assert dir_listing(data_dir) == listing, "signoff created files next to a database it refused"
    return r.stderr


# -- not a database -----------------------------------------------------------------------------


@pytest.mark.parametrize("args", DB_COMMANDS, ids=lambda a: " ".join(a))
def test_garbage_file_is_refused_and_untouched(tmp_path: Path, args: tuple[str, ...]) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / DB_FILENAME).write_bytes(b"these are my notes, not a database\n" * 200 + bytes(range(256)))
    assert_refused_untouched(data_dir, args, "not a signoff database")


def test_short_text_file_is_refused_and_untouched(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / DB_FILENAME).write_text("hello\n")
    assert_refused_untouched(data_dir, ("pending",), "not a signoff database")


# -- truncated ----------------------------------------------------------------------------------


@pytest.mark.parametrize("args", [("pending",), ("run", "cli.tests", "no_approval"), ("worker", "--once")],
                         ids=lambda a: " ".join(a))
def test_database_truncated_to_50_bytes(tmp_path: Path, args: tuple[str, ...]) -> None:
    data_dir = tmp_path / "data"
    db = make_real_db(data_dir)
    with open(db, "r+b") as fh:
        fh.truncate(50)
    assert_refused_untouched(data_dir, args)


@pytest.mark.parametrize("args", [("pending",), ("executions", "list"), ("run", "cli.tests", "no_approval"),
                                  ("kv", "set", "K2", "V2"), ("worker", "--once")],
                         ids=lambda a: " ".join(a))
def test_database_truncated_to_half(tmp_path: Path, args: tuple[str, ...]) -> None:
    data_dir = tmp_path / "data"
    db = make_real_db(data_dir)
    size = db.stat().st_size
    with open(db, "r+b") as fh:
        fh.truncate(size // 2)
    err = assert_refused_untouched(data_dir, args)
    assert any(word in err for word in ("damaged", "not a signoff database", "truncated", "malformed")), err


# -- newer schema ---------------------------------------------------------------------------------


@pytest.mark.parametrize("args", [("pending",), ("run", "cli.tests", "no_approval"), ("kv", "set", "K", "V"),
                                  ("worker", "--once")],
                         ids=lambda a: " ".join(a))
def test_database_from_a_newer_signoff(tmp_path: Path, args: tuple[str, ...]) -> None:
    data_dir = tmp_path / "data"
    db = make_real_db(data_dir)
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    # the database, and the engine's key and newest signed checkpoint of the audit chain
    assert dir_listing(data_dir) == sorted([DB_FILENAME, "audit-checkpoint", "engine-key", "engine-key.pub"])
    err = assert_refused_untouched(data_dir, args, "newer signoff")
    assert str(SCHEMA_VERSION + 1) in err


def test_newer_database_in_rollback_journal_mode_is_untouched(tmp_path: Path) -> None:
    """A newer signoff might not use WAL; we must not switch its journal mode either."""
    data_dir = tmp_path / "data"
    db = make_real_db(data_dir)
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode=DELETE")
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 5}")
    conn.commit()
    conn.close()
    assert_refused_untouched(data_dir, ("pending",), "newer signoff")


# -- foreign SQLite file ------------------------------------------------------------------------------


def _foreign_db(path: Path, journal: str | None = None) -> None:
    conn = sqlite3.connect(path)
    if journal:
        conn.execute(f"PRAGMA journal_mode={journal}")
    conn.execute("CREATE TABLE contacts (id INTEGER PRIMARY KEY, name TEXT)")
    conn.executemany("INSERT INTO contacts(name) VALUES (?)", [("Ann",), ("Bob",)])
    conn.commit()
    conn.close()


@pytest.mark.parametrize("args", [("pending",), ("run", "cli.tests", "no_approval"), ("kv", "set", "K", "V")],
                         ids=lambda a: " ".join(a))
def test_sqlite_file_of_another_application_is_refused_and_untouched(tmp_path: Path, args: tuple[str, ...]) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    _foreign_db(data_dir / DB_FILENAME)  # the default rollback journal, user_version 0
    assert_refused_untouched(data_dir, args)
    conn = sqlite3.connect(data_dir / DB_FILENAME)
    assert conn.execute("SELECT name FROM contacts ORDER BY id").fetchall() == [("Ann",), ("Bob",)]
    assert [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")] == ["contacts"]
    conn.close()


def test_foreign_wal_database_is_refused_and_untouched(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    _foreign_db(data_dir / DB_FILENAME, journal="WAL")
    assert_refused_untouched(data_dir, ("pending",))


def test_foreign_application_id_is_refused_and_untouched(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    conn = sqlite3.connect(data_dir / DB_FILENAME)
    conn.execute("PRAGMA application_id=1234")
    conn.execute("PRAGMA user_version=1")
    conn.execute("CREATE TABLE t(x)")
    conn.commit()
    conn.close()
    assert_refused_untouched(data_dir, ("pending",), "another application")


# -- unusable locations ---------------------------------------------------------------------------------


def test_data_dir_whose_parent_is_a_regular_file(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("keep me\n")
    data_dir = blocker / "data"
    r = signoff(data_dir, "pending")
    assert r.returncode == 2, r
    assert str(data_dir) in r.stderr
    assert "cannot create" in r.stderr or "not a directory" in r.stderr.lower()
    assert blocker.read_text() == "keep me\n"


def test_data_dir_that_is_a_regular_file(tmp_path: Path) -> None:
    blocker = tmp_path / "data"
    blocker.write_text("keep me\n")
    r = signoff(blocker, "pending")
    assert r.returncode == 2, r
    assert str(blocker) in r.stderr or "data-dir" in r.stderr
    assert blocker.read_text() == "keep me\n"


def test_database_path_that_is_a_directory(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    (data_dir / DB_FILENAME).mkdir(parents=True)
    r = signoff(data_dir, "pending")
    assert r.returncode == 2, r
    assert str(data_dir / DB_FILENAME) in r.stderr
    assert (data_dir / DB_FILENAME).is_dir() and list((data_dir / DB_FILENAME).iterdir()) == []


def test_empty_database_file_is_initialised(tmp_path: Path) -> None:
    """An empty signoff.db (e.g. from `touch`) is a new database, not an error."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / DB_FILENAME).touch()
    r = signoff(data_dir, "run", "cli.tests", "no_approval", "--json")
    assert r.returncode == 0, r
    assert json.loads(r.stdout)["state"] == "SUCCESS"
    conn = sqlite3.connect(data_dir / DB_FILENAME)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()


def test_a_fresh_database_is_ours(tmp_path: Path) -> None:
    data_dir = tmp_path / "deep" / "nested" / "data"
    db = make_real_db(data_dir)
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA application_id").fetchone()[0] == 0x5349474E
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    # and it reopens fine
    r = signoff(data_dir, "pending", "--json")
    assert r.returncode == 0, r
    assert len(json.loads(r.stdout)) == 1


# -- concurrency ---------------------------------------------------------------------------------------


def test_two_processes_approving_the_same_request(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    rounds = 6
    requests = []
    for _ in range(rounds):
        r = signoff(data_dir, "run", "cli.tests", "approval_comment", "--json")
        assert r.returncode == 0, r
        execution = json.loads(r.stdout)
        assert execution["state"] == "PAUSED"
        requests.append((execution["id"], execution["requests"][0]["id"]))

    for execution_id, request_id in requests:
        cmd = [*SIGNOFF, "--data-dir", str(data_dir), "--flows", str(FLOWS), "approve", request_id, "--json"]
        procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                  text=True, env=clean_env(), cwd=REPO) for _ in range(2)]
        results = []
        for p in procs:
            out, err = p.communicate(timeout=120)
            results.append((p.returncode, out, err))
        for _code, _out, err in results:
            assert "database is locked" not in err and "Traceback" not in err, err
        codes = sorted(code for code, _, _ in results)
        assert codes == [0, 1], results
        outcomes = sorted(json.loads(out)[0]["outcome"] for _, out, _ in results)
        assert outcomes == ["already_decided", "decided"], results

        show = signoff(data_dir, "show", request_id, "--json")
        assert show.returncode == 0, show
        assert len(json.loads(show.stdout)["decisions"]) == 1
        execution = signoff(data_dir, "executions", "show", execution_id, "--json")
        data = json.loads(execution.stdout)
        assert data["state"] == "SUCCESS", data
        assert [t["path"] for t in data["task_runs"]].count("after") == 1  # the flow continued once


def test_concurrent_runs_and_decisions_never_report_locked(tmp_path: Path) -> None:
    """Several writers at once (runs, kv writes, a worker) wait for each other instead of failing."""
    data_dir = tmp_path / "data"
    r = signoff(data_dir, "worker", "--once")
    assert r.returncode == 0, r
    base = [*SIGNOFF, "--data-dir", str(data_dir), "--flows", str(FLOWS)]
    cmds = [[*base, "run", "cli.tests", "no_approval", "--json"] for _ in range(4)]
    cmds += [[*base, "kv", "set", f"K{i}", "V"] for i in range(3)]
    cmds += [[*base, "worker", "--once"]]
    procs = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                              text=True, env=clean_env(), cwd=REPO) for c in cmds]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, (p.args, out, err)
        assert "locked" not in err and "Traceback" not in err, err
    r = signoff(data_dir, "executions", "list", "--state", "SUCCESS", "--json")
    assert len(json.loads(r.stdout)) == 4


# -- person-facing writes first --------------------------------------------------------------


def test_background_work_waits_for_foreground_writes(tmp_path: Path) -> None:
    """The server's runner (background) must not take the write lock while a decision
    (foreground) is going: it waits until the foreground work is done."""
    import threading

    from signoff.engine.store.db import Database

    db = Database(tmp_path)
    order: list[str] = []
    inside = threading.Event()
    release = threading.Event()

    def decision() -> None:
        with db.foreground():
            inside.set()
            release.wait(10)
            order.append("decision done")

    def runner() -> None:
        db.yield_to_foreground(max_wait=30)
        order.append("runner went")

    front = threading.Thread(target=decision)
    front.start()
    assert inside.wait(10)
    back = threading.Thread(target=runner)
    back.start()
    back.join(0.3)
    assert back.is_alive() and order == []  # still waiting
    release.set()
    front.join(10)
    back.join(10)
    assert order == ["decision done", "runner went"]


def test_background_work_is_never_starved_and_never_waits_for_itself(tmp_path: Path) -> None:
    import threading

    from signoff.engine.store.db import Database

    db = Database(tmp_path)
    release = threading.Event()

    def endless_decision() -> None:
        with db.foreground():
            release.wait(30)

    front = threading.Thread(target=endless_decision)
    front.start()
    try:
        waited = threading.Thread(target=db.yield_to_foreground, kwargs={"max_wait": 0.2})
        waited.start()
        waited.join(10)
        assert not waited.is_alive()  # gave up waiting after max_wait
    finally:
        release.set()
        front.join(10)

    def own_foreground() -> None:
        with db.foreground():
            db.yield_to_foreground(max_wait=30)  # its own foreground work: no wait

    own = threading.Thread(target=own_foreground)
    own.start()
    own.join(10)
    assert not own.is_alive()
