"""The audit trail on a real engine and a real SQLite file: the hash chain and its tamper
detection (directly and through `signoff audit verify`), history search with every filter,
paging, visibility, export, and the history/audit commands.

Truncating the newest events leaves a shorter chain that is still consistent; it is detected
by comparing with a head kept elsewhere (`signoff audit head`, then `verify --head`).
"""
from __future__ import annotations

import csv
import io
import json
import sqlite3
import subprocess
import textwrap
from datetime import timedelta
from itertools import pairwise
from pathlib import Path

import pytest

from signoff.engine.audit import append_event
from signoff.engine.audit.export import CSV_HEADER, csv_lines, jsonl_lines
from signoff.engine.audit.log import GENESIS, event_content, row_content
from signoff.engine.audit.search import AuditQuery, parse_query, search
from signoff.engine.audit.verify import head, verify_chain
from signoff.engine.clock import FakeClock, parse_time
from signoff.engine.errors import Refused, UsageError
from signoff.engine.identity import Identity
from tests.support import ALICE, BOB, REPO, SIGNOFF, clean_env, make_service, old_schema_db

DEPLOY_FLOW = """
id: deploy
namespace: prod.payments
inputs:
  - id: version
    type: STRING
tasks:
  - id: gate
    type: io.kestra.plugin.core.flow.Approval
    context:
      summary: "Ship {{ inputs.version }} to payments"
      details: "the canary stayed marmalade-green for an hour"
    inputs:
      - id: ticket
        type: STRING
        required: false
  - id: after
    type: io.kestra.plugin.core.log.Log
    message: "done"
"""

WEB_FLOW = """
id: release
namespace: prodweb
tasks:
  - id: gate
    type: io.kestra.plugin.core.flow.Pause
  - id: after
    type: io.kestra.plugin.core.log.Log
    message: "done"
"""

STAGING_FLOW = """
id: deploy
namespace: staging.payments
inputs:
  - id: version
    type: STRING
tasks:
  - id: gate
    type: io.kestra.plugin.core.flow.Approval
    context:
      summary: "Stage {{ inputs.version }}"
"""

FLOWS = {"deploy.yaml": DEPLOY_FLOW, "web.yaml": WEB_FLOW, "staging.yaml": STAGING_FLOW}


def _svc(tmp_path, clock=None, policy=None, database=None):
    return make_service(tmp_path, FLOWS, clock=clock or FakeClock("2026-01-05T09:00:00Z"), policy=policy,
                        database=database)


def _populate(svc, clock: FakeClock | None = None) -> dict:
    """A few executions and decisions; returns their ids."""
    e1 = svc.start_execution(BOB, "prod.payments", "deploy", {"version": "v1.2"})
    r1 = e1["requests"][0]["id"]
    svc.approve(ALICE, [r1], {"ticket": "CHG-7"}, reason="checked the quokka dashboard")
    if clock:
        clock.advance(timedelta(hours=2))
    e2 = svc.start_execution(BOB, "prod.payments", "deploy", {"version": "v1.3"})
    r2 = e2["requests"][0]["id"]
    svc.deny(ALICE, [r2], reason="error budget exhausted")
    if clock:
        clock.advance(timedelta(hours=2))
    e3 = svc.start_execution(ALICE, "prodweb", "release", {})
    r3 = e3["requests"][0]["id"]
    svc.cancel(ALICE, [r3], reason="wrong day")
    e4 = svc.start_execution(BOB, "staging.payments", "deploy", {"version": "v2"})
    r4 = e4["requests"][0]["id"]
    return {"e1": e1["id"], "r1": r1, "e2": e2["id"], "r2": r2, "e3": e3["id"], "r3": r3, "e4": e4["id"], "r4": r4}


def _db_file(svc) -> Path:
    return svc.db.path


def _raw(svc) -> sqlite3.Connection:
    """A separate connection to the file, as someone tampering with it would open it."""
    svc.db.close()
    conn = sqlite3.connect(_db_file(svc), isolation_level=None)
    return conn


def _reopen_verify(svc):
    svc.db.close()
    return verify_chain(svc.db)


def _seqs(events) -> list[int]:
    return [e["seq"] for e in events]


# -- the chain --------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request) -> str | None:
    """Both stores: None (the SQLite file) or a fresh database of the tests' PostgreSQL."""
    return request.getfixturevalue("pg_url") if request.param == "postgresql" else None


def test_events_are_chained_and_untouched_db_verifies(tmp_path, database):
    svc = _svc(tmp_path, database=database)
    ids = _populate(svc)
    rows = svc.db.query("SELECT * FROM audit ORDER BY seq")
    assert [r["seq"] for r in rows] == list(range(1, len(rows) + 1))
    assert rows[0]["prev_hash"] == GENESIS
    for before, after in pairwise(rows):
        assert after["prev_hash"] == before["hash"]
    actions = [r["action"] for r in rows]
    for expected in ("execution.started", "request.created", "request.approved", "request.denied",
                     "request.cancelled", "execution.ended"):
        assert expected in actions
    result = verify_chain(svc.db)
    assert result.ok and result.problem is None and result.first_bad_seq is None
    assert result.count == len(rows)
    assert result.head == rows[-1]["hash"] and result.head_seq == rows[-1]["seq"]
    assert head(svc.db) == (rows[-1]["seq"], rows[-1]["hash"])
    assert svc.verify_audit(ALICE)["ok"] is True
    found = svc.audit_head(ALICE)
    assert {k: found[k] for k in ("seq", "hash", "at")} == {"seq": rows[-1]["seq"], "hash": rows[-1]["hash"],
                                                           "at": rows[-1]["at"]}
    # the head is signed by the engine as it is shown (engine.signing.checkpoints)
    assert found["checkpoint"]["seq"] == rows[-1]["seq"] and found["checkpoint"]["hash"] == rows[-1]["hash"]
    approved = [r for r in rows if r["action"] == "request.approved"][0]
    data = json.loads(approved["data"])
    assert data["reason"] == "checked the quokka dashboard"
    assert data["inputs"] == {"ticket": "CHG-7"}
    assert data["context"]["summary"] == "Ship v1.2 to payments"
    assert approved["request_id"] == ids["r1"] and approved["execution_id"] == ids["e1"]


def test_empty_log_verifies(tmp_path, database):
    svc = _svc(tmp_path, database=database)
    result = verify_chain(svc.db)
    assert result.ok and result.count == 0 and result.head is None
    assert head(svc.db) is None and svc.audit_head(ALICE) is None


def test_fast_content_is_byte_identical_to_event_content():
    samples = [
        (1, "2026-01-05T09:00:00.000000Z", "alice", "request.approved", "prod", "f", "e", "r", '{"a":"é ☃ \\n"}'),
        (2, "t", "bob", "x", None, None, None, None, "{}"),
        (3, "t", 'we"ird\\actor\u2028', "a\tb", "ns\x00", "\U0001f600", "e", None, '{"k":[1,2]}'),
        (4, 17, "alice", "x", 5, None, None, None, "{}"),  # non-text values (a hand-edited row)
        (5, "t", "alice", "x", None, None, None, None, b"bytes"),
    ]
    for row in samples:
        assert row_content(row) == event_content(*row)


def _middle(conn, action: str | None = None) -> int:
    if action:
        return conn.execute("SELECT seq FROM audit WHERE action=? ORDER BY seq LIMIT 1", (action,)).fetchone()[0]
    count = conn.execute("SELECT count(*) FROM audit").fetchone()[0]
    return count // 2


def test_changed_actor_is_named(tmp_path):
    svc = _svc(tmp_path)
    _populate(svc)
    conn = _raw(svc)
    seq = _middle(conn, "request.approved")
    conn.execute("UPDATE audit SET actor='mallory' WHERE seq=?", (seq,))
    result = _reopen_verify(svc)
    assert not result.ok and result.first_bad_seq == seq and result.count == seq - 1
    assert result.problem.startswith(f"event {seq} (request.approved by mallory at 2026-01-05T09:00:00")
    assert result.problem.endswith("was changed: its hash does not match its content")


def test_changed_reason_in_data_is_named(tmp_path):
    svc = _svc(tmp_path)
    _populate(svc)
    conn = _raw(svc)
    seq = _middle(conn, "request.denied")
    data = json.loads(conn.execute("SELECT data FROM audit WHERE seq=?", (seq,)).fetchone()[0])
    data["reason"] = "looks fine"
    conn.execute("UPDATE audit SET data=? WHERE seq=?", (json.dumps(data), seq))
    result = _reopen_verify(svc)
    assert not result.ok and result.first_bad_seq == seq
    assert f"event {seq} (request.denied by alice" in result.problem and "was changed" in result.problem


def test_changed_event_with_recomputed_hash_is_named_through_the_next_link(tmp_path):
    svc = _svc(tmp_path)
    _populate(svc)
    conn = _raw(svc)
    seq = _middle(conn, "request.approved")
    row = conn.execute("SELECT seq, at, actor, action, namespace, flow_id, execution_id, request_id, data, prev_hash"
                       " FROM audit WHERE seq=?", (seq,)).fetchone()
    forged = list(row)
    forged[2] = "mallory"
    import hashlib

    new_hash = hashlib.sha256((row[9] + event_content(*forged[:9])).encode()).hexdigest()
    conn.execute("UPDATE audit SET actor='mallory', hash=? WHERE seq=?", (new_hash, seq))
    result = _reopen_verify(svc)
    assert not result.ok and result.first_bad_seq == seq
    assert result.problem.startswith(f"event {seq} (request.approved by mallory")
    assert result.problem.endswith(f"was changed: event {seq + 1} records a different hash for it")


def test_deleted_middle_row_is_named(tmp_path):
    svc = _svc(tmp_path)
    _populate(svc)
    conn = _raw(svc)
    seq = _middle(conn)
    conn.execute("DELETE FROM audit WHERE seq=?", (seq,))
    result = _reopen_verify(svc)
    assert not result.ok and result.first_bad_seq == seq
    assert result.problem == f"event {seq} is missing: event {seq + 1} follows event {seq - 1}"


def test_deleted_first_rows_are_named(tmp_path):
    svc = _svc(tmp_path)
    _populate(svc)
    conn = _raw(svc)
    conn.execute("DELETE FROM audit WHERE seq IN (1, 2)")
    result = _reopen_verify(svc)
    assert not result.ok and result.first_bad_seq == 1
    assert result.problem == "events 1 to 2 are missing: event 3 follows the start of the log"


def test_deleted_row_with_renumbered_rest_is_named(tmp_path):
    svc = _svc(tmp_path)
    _populate(svc)
    conn = _raw(svc)
    seq = _middle(conn)
    conn.execute("DELETE FROM audit WHERE seq=?", (seq,))
    conn.execute("UPDATE audit SET seq = seq - 1 WHERE seq > ?", (seq,))
    result = _reopen_verify(svc)
    assert not result.ok and result.first_bad_seq == seq
    assert result.problem.startswith(f"event {seq} (")
    assert "was changed, moved or replaced" in result.problem


def test_swapped_rows_are_named(tmp_path):
    svc = _svc(tmp_path)
    _populate(svc)
    conn = _raw(svc)
    a = _middle(conn)
    b = a + 1
    cols = "at, actor, action, namespace, flow_id, execution_id, request_id, data, prev_hash, hash"
    ra = conn.execute(f"SELECT {cols} FROM audit WHERE seq=?", (a,)).fetchone()
    rb = conn.execute(f"SELECT {cols} FROM audit WHERE seq=?", (b,)).fetchone()
    sets = ", ".join(f"{c.strip()}=?" for c in cols.split(","))
    conn.execute(f"UPDATE audit SET {sets} WHERE seq=?", (*rb, a))
    conn.execute(f"UPDATE audit SET {sets} WHERE seq=?", (*ra, b))
    result = _reopen_verify(svc)
    assert not result.ok and result.first_bad_seq == a
    assert result.problem.startswith(f"event {a} ({rb[2]} by {rb[1]} at {rb[0]}) was changed, moved or replaced")
    assert result.problem.endswith(f"it does not follow the chain of event {a - 1}")


def test_swapped_sequence_numbers_are_named(tmp_path):
    svc = _svc(tmp_path)
    _populate(svc)
    conn = _raw(svc)
    a = _middle(conn)
    b = a + 3
    conn.execute("UPDATE audit SET seq=-1 WHERE seq=?", (a,))
    conn.execute("UPDATE audit SET seq=? WHERE seq=?", (a, b))
    conn.execute("UPDATE audit SET seq=? WHERE seq=-1", (b,))
    result = _reopen_verify(svc)
    assert not result.ok and result.first_bad_seq == a and "moved" in result.problem


def test_changed_last_hash_is_named(tmp_path):
    svc = _svc(tmp_path)
    _populate(svc)
    conn = _raw(svc)
    last = conn.execute("SELECT max(seq) FROM audit").fetchone()[0]
    conn.execute("UPDATE audit SET hash=? WHERE seq=?", ("f" * 64, last))
    result = _reopen_verify(svc)
    assert not result.ok and result.first_bad_seq == last and result.count == last - 1
    assert result.problem.startswith(f"event {last} (")
    assert result.problem.endswith("was changed: its hash does not match its content")


def test_blob_value_falls_back_to_the_exact_walk_and_is_named(tmp_path):
    svc = _svc(tmp_path)
    _populate(svc)
    conn = _raw(svc)
    seq = _middle(conn)
    conn.execute("UPDATE audit SET actor=X'6d616c6c6f7279' WHERE seq=?", (seq,))  # bytes, not text
    result = _reopen_verify(svc)
    assert not result.ok and result.first_bad_seq == seq and result.count == seq - 1
    assert result.problem.startswith(f"event {seq} (") and "was changed" in result.problem


def test_fast_path_spelling_differences_are_rechecked_exactly(tmp_path, monkeypatch):
    """The SQLite-built content is only a shortcut: a different spelling never fails an event."""
    from signoff.engine.audit import verify as verify_mod

    svc = _svc(tmp_path)
    _populate(svc)
    monkeypatch.setattr(verify_mod, "_FAST_SQL", verify_mod._FAST_SQL.replace("json_array(seq, at,",
                                                                              "json_array(seq, at || ' ',"))
    result = verify_chain(svc.db)
    assert result.ok and result.count == svc.db.query("SELECT count(*) FROM audit")[0][0]
    conn = _raw(svc)
    seq = _middle(conn)
    conn.execute("UPDATE audit SET actor='mallory' WHERE seq=?", (seq,))
    broken = _reopen_verify(svc)
    assert not broken.ok and broken.first_bad_seq == seq and "mallory" in broken.problem


def test_truncated_tail_verifies_but_head_differs_and_kept_head_detects_it(tmp_path):
    """Removing the newest events leaves a consistent, shorter chain: only a head kept
    elsewhere shows it."""
    svc = _svc(tmp_path)
    _populate(svc)
    kept = svc.audit_head(ALICE)
    conn = _raw(svc)
    conn.execute("DELETE FROM audit WHERE seq=?", (kept["seq"],))
    result = _reopen_verify(svc)
    assert result.ok and result.count == kept["seq"] - 1
    now = svc.audit_head(ALICE)
    assert (now["seq"], now["hash"]) != (kept["seq"], kept["hash"])
    checked = verify_chain(svc.db, expect_head=(kept["seq"], kept["hash"]))
    assert not checked.ok and checked.first_bad_seq == kept["seq"]
    assert checked.problem.startswith(f"event {kept['seq']} is missing: the log ends at event {kept['seq'] - 1}")
    # a kept head that is still there verifies
    assert verify_chain(svc.db, expect_head=(now["seq"], now["hash"])).ok
    assert "is not the head kept elsewhere" in verify_chain(svc.db, expect_head=(now["seq"], "0" * 64)).problem


def test_appends_after_verify_continue_the_chain(tmp_path):
    svc = _svc(tmp_path)
    _populate(svc)
    first = verify_chain(svc.db)
    with svc.db.write() as tx:
        seq = append_event(tx, at="2026-01-05T10:00:00.000000Z", actor="ops", action="note", data={"x": 1})
    assert seq == first.count + 1
    second = verify_chain(svc.db, batch=3)
    assert second.ok and second.count == seq and second.head != first.head


# -- the CLI: verify, head ------------------------------------------------------------------------


def run_cli(*args, data_dir: Path) -> subprocess.CompletedProcess:
    proc = subprocess.run([*SIGNOFF, "--data-dir", str(data_dir), *map(str, args)], capture_output=True,
                          text=True, env=clean_env(), cwd=REPO,
                          timeout=120)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def test_cli_verify_and_head(tmp_path):
    svc = _svc(tmp_path)
    _populate(svc)
    data_dir = tmp_path / "data"
    last = svc.audit_head(ALICE)
    svc.db.close()
    ok = run_cli("audit", "verify", data_dir=data_dir)
    assert ok.returncode == 0, ok
    assert ok.stdout.splitlines()[0] == f"ok: {last['seq']} events, head {last['hash']}"
    assert "checkpoints: 1 signed by the engine verified" in ok.stdout
    h = run_cli("audit", "head", data_dir=data_dir)
    assert h.returncode == 0 and h.stdout.strip() == f"{last['seq']}:{last['hash']}"
    assert f"signed checkpoint of event {last['seq']}" in h.stderr
    hj = run_cli("audit", "head", "--json", data_dir=data_dir)
    assert json.loads(hj.stdout) == last
    kept = h.stdout.strip()
    assert run_cli("audit", "verify", "--head", kept, data_dir=data_dir).returncode == 0
    bad = run_cli("audit", "verify", "--head", "nonsense", data_dir=data_dir)
    assert bad.returncode == 2 and "--head expects SEQ:HASH" in bad.stderr

    conn = sqlite3.connect(data_dir / "signoff.db", isolation_level=None)
    seq = conn.execute("SELECT seq FROM audit WHERE action='request.denied'").fetchone()[0]
    conn.execute("UPDATE audit SET data=replace(data, 'exhausted', 'fine') WHERE seq=?", (seq,))
    conn.close()
    failed = run_cli("audit", "verify", data_dir=data_dir)
    assert failed.returncode == 1, failed
    assert failed.stderr.startswith(f"FAILED: event {seq} (request.denied by alice at ")
    assert "was changed: its hash does not match its content" in failed.stderr
    as_json = run_cli("audit", "verify", "--json", data_dir=data_dir)
    assert as_json.returncode == 1
    doc = json.loads(as_json.stdout)
    assert doc["ok"] is False and doc["first_bad_seq"] == seq and doc["count"] == seq - 1


def test_cli_verify_detects_truncation_with_kept_head(tmp_path):
    svc = _svc(tmp_path)
    _populate(svc)
    data_dir = tmp_path / "data"
    svc.db.close()
    kept = run_cli("audit", "head", data_dir=data_dir).stdout.strip()
    conn = sqlite3.connect(data_dir / "signoff.db", isolation_level=None)
    conn.execute("DELETE FROM audit WHERE seq=(SELECT max(seq) FROM audit)")
    conn.close()
    # the engine signed a checkpoint of the head when it was shown: the cut is found without it
    plain = run_cli("audit", "verify", data_dir=data_dir)
    assert plain.returncode == 1 and "but the engine signed a checkpoint of event" in plain.stderr, plain
    assert run_cli("audit", "head", data_dir=data_dir).stdout.strip() != kept
    failed = run_cli("audit", "verify", "--head", kept, data_dir=data_dir)
    assert failed.returncode == 1 and "is missing: the log ends at event" in failed.stderr


# -- search -------------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def populated(tmp_path, request):
    """The searches, filters, paging and exports run on both stores (PostgreSQL: the tests'
    cluster, a tsvector column instead of FTS5) and must find the same events."""
    database = request.getfixturevalue("pg_url") if request.param == "postgresql" else None
    clock = FakeClock("2026-01-05T09:00:00Z")
    svc = _svc(tmp_path, clock, database=database)
    ids = _populate(svc, clock)
    yield svc, clock, ids
    svc.engine.close()


def test_filter_by_actor(populated):
    svc, _, _ = populated
    events = svc.history(ALICE, "actor:alice", limit=500)
    assert events and {e["actor"] for e in events} == {"alice"}
    assert _seqs(events) == sorted(_seqs(events), reverse=True)  # newest first
    all_alice = svc.db.query("SELECT count(*) FROM audit WHERE actor='alice'")[0][0]
    assert len(events) == all_alice
    assert set(events[0]) == {"seq", "at", "actor", "action", "namespace", "flow_id", "execution_id",
                              "request_id", "data", "hash", "prev_hash"}
    assert svc.history(ALICE, 'actor:"nobody here"') == []


def test_filter_by_action_exact_and_prefix(populated):
    svc, _, ids = populated
    [denied] = svc.history(ALICE, "action:request.denied")
    assert denied["request_id"] == ids["r2"] and denied["data"]["reason"] == "error budget exhausted"
    requests = svc.history(ALICE, "action:request.*", limit=500)
    assert {e["action"] for e in requests} == {"request.created", "request.approved", "request.denied",
                                              "request.cancelled"}
    assert svc.history(ALICE, "action:request") == []  # exact unless *


def test_filter_by_namespace_exact_and_prefix(populated):
    svc, _, _ = populated
    exact = svc.history(ALICE, "ns:prod.payments", limit=500)
    assert exact and {e["namespace"] for e in exact} == {"prod.payments"}
    prefix = svc.history(ALICE, "ns:prod*", limit=500)
    assert {e["namespace"] for e in prefix} == {"prod.payments", "prodweb"}
    dotted = svc.history(ALICE, "ns:prod.*", limit=500)
    assert {e["namespace"] for e in dotted} == {"prod.payments"}
    assert {e["namespace"] for e in svc.history(ALICE, "ns:staging*", limit=500)} == {"staging.payments"}


def test_filter_by_flow_request_execution(populated):
    svc, _, ids = populated
    flows = svc.history(ALICE, "flow:deploy", limit=500)
    assert {e["namespace"] for e in flows} == {"prod.payments", "staging.payments"}
    assert {e["flow_id"] for e in flows} == {"deploy"}
    by_request = svc.history(ALICE, f"request:{ids['r1']}")
    assert {e["action"] for e in by_request} == {"request.created", "request.approved"}
    assert {e["request_id"] for e in by_request} == {ids["r1"]}
    by_execution = svc.history(ALICE, f"execution:{ids['e2']}")
    assert [e["action"] for e in by_execution][::-1][:3] == ["execution.started", "request.created",
                                                              "request.denied"]
    assert {e["execution_id"] for e in by_execution} == {ids["e2"]}
    both = svc.history(ALICE, "ns:prod.payments flow:deploy action:request.approved")
    assert [e["request_id"] for e in both] == [ids["r1"]]


def test_free_text_in_reason_context_inputs_and_ids(populated):
    svc, _, ids = populated
    [hit] = svc.history(ALICE, "quokka")  # a decision's reason
    assert hit["action"] == "request.approved" and hit["request_id"] == ids["r1"]
    marmalade = svc.history(ALICE, "marmalade", limit=500)  # the frozen context's details
    assert {e["action"] for e in marmalade} >= {"request.created", "request.approved", "request.denied"}
    assert {e["request_id"] for e in marmalade} == {ids["r1"], ids["r2"]}
    phrase = svc.history(ALICE, '"budget exhausted"')  # the reason, and the killed execution's error
    assert [e["action"] for e in phrase] == ["execution.ended", "request.denied"]
    assert {e["execution_id"] for e in phrase} == {ids["e2"]}
    assert svc.history(ALICE, '"exhausted budget"') == []
    assert [e["request_id"] for e in svc.history(ALICE, "QUOKKA")] == [ids["r1"]]  # case-insensitive
    assert [e["request_id"] for e in svc.history(ALICE, "quok*")] == [ids["r1"]]  # prefix
    assert {e["request_id"] for e in svc.history(ALICE, "chg-7")} == {ids["r1"]}  # form values
    assert ids["r3"] in {e["request_id"] for e in svc.history(ALICE, ids["r3"])}  # ids
    summary = svc.history(ALICE, "Ship v1.3", limit=500)  # context summary
    assert {e["request_id"] for e in summary} == {ids["r2"]}
    assert svc.history(ALICE, "quokka action:request.denied") == []
    assert svc.history(ALICE, "zanzibar") == []


def test_since_and_until(populated):
    svc, clock, ids = populated
    # the clock started at 09:00 and moved +2h twice; "now" is 13:00
    assert clock.now() == parse_time("2026-01-05T13:00:00Z")
    recent = svc.history(ALICE, "since:1h", limit=500)
    assert recent and {e["at"][:13] for e in recent} == {"2026-01-05T13"}
    assert ids["r3"] in {e["request_id"] for e in recent} and ids["r1"] not in {e["request_id"] for e in recent}
    assert _seqs(svc.history(ALICE, "since:PT1H", limit=500)) == _seqs(recent)
    early = svc.history(ALICE, "until:2026-01-05T09:30:00Z", limit=500)
    assert early and all(e["at"] < "2026-01-05T09:30" for e in early)
    assert ids["r1"] in {e["request_id"] for e in early} and ids["r2"] not in {e["request_id"] for e in early}
    window = svc.history(ALICE, "since:2026-01-05T10:00:00Z until:2026-01-05T12:00:00Z", limit=500)
    assert window and {e["request_id"] for e in window if e["request_id"]} == {ids["r2"]}
    day = svc.history(ALICE, "since:2026-01-05 until:2026-01-05", limit=500)  # a date includes the whole day
    assert len(day) == svc.db.query("SELECT count(*) FROM audit")[0][0]
    assert svc.history(ALICE, "until:2026-01-04") == []
    assert svc.history(ALICE, "since:2026-01-06") == []
    assert len(svc.history(ALICE, "since:3h action:request.denied")) == 1
    assert svc.history(ALICE, "since:1h action:request.denied") == []


def test_paging_with_before_seq(populated):
    svc, _, _ = populated
    everything = svc.history(ALICE, "", limit=1000)
    total = svc.db.query("SELECT count(*) FROM audit")[0][0]
    assert _seqs(everything) == list(range(total, 0, -1))
    pages, before = [], None
    while True:
        page = svc.history(ALICE, "", limit=4, before_seq=before)
        if not page:
            break
        assert len(page) <= 4
        pages.extend(page)
        before = page[-1]["seq"]
    assert _seqs(pages) == _seqs(everything)
    alice = svc.history(ALICE, "actor:alice", limit=1000)
    first = svc.history(ALICE, "actor:alice", limit=2)
    second = svc.history(ALICE, "actor:alice", limit=2, before_seq=first[-1]["seq"])
    assert _seqs(first + second) == _seqs(alice)[:4]
    text = svc.history(ALICE, "marmalade", limit=2)
    more = svc.history(ALICE, "marmalade", limit=100, before_seq=text[-1]["seq"])
    assert _seqs(text + more) == _seqs(svc.history(ALICE, "marmalade", limit=100))


@pytest.mark.parametrize("query, message", [
    ("foo:bar", "unknown field `foo:` in `foo:bar`; valid fields are actor:, action:, ns:, flow:, request:, "
                "execution:, since:, until:"),
    ("since:yesterday", "`since:yesterday` is not a time; write an ISO date (2026-01-05)"),
    ("until:2026-13-45", "`until:2026-13-45` is not a valid date"),
    ("since:P1Y", "`since:P1Y`: invalid duration `P1Y`"),
    ("actor:", "`actor:` needs a value, e.g. actor:alice"),
    ("actor:a actor:b", "field `actor:` given twice"),
    ('"unclosed', "unbalanced quote"),
    ("ns:pr*od", "`ns:pr*od`: `*` may only end the value"),
    ("request:r12*", "only action: and ns: take a prefix with *"),
    ("since:2026-01-06 until:2026-01-05", "`since:` is not before `until:`"),
])
def test_bad_queries_are_usage_errors(populated, query, message):
    svc, _, _ = populated
    with pytest.raises(UsageError) as err:
        svc.history(ALICE, query)
    assert message in str(err.value)
    assert err.value.exit_code == 2


def test_parse_query_shapes():
    q = parse_query('deploy "disk full" actor:alice action:request.* ns:prod* flow:f request:r1 execution:e1 '
                    'since:2026-01-01 until:2026-01-02T10:00:00Z', now=parse_time("2026-01-05T00:00:00Z"))
    assert q.terms == ('"deploy"', '"disk full"') and q.words == ("deploy", "disk full")
    assert (q.actor, q.action, q.action_prefix, q.namespace, q.namespace_prefix) == \
        ("alice", "request.", True, "prod", True)
    assert (q.flow, q.request, q.execution) == ("f", "r1", "e1")
    assert q.since == "2026-01-01T00:00:00.000000Z" and q.until_before == "2026-01-02T10:00:00.000001Z"
    rel = parse_query("since:2d until:1h30m", now=parse_time("2026-01-05T00:00:00Z"))
    assert rel.since == "2026-01-03T00:00:00.000000Z" and rel.until_before == "2026-01-04T22:30:00.000001Z"
    assert parse_query("", now=None).empty and parse_query("action:* ns:*").empty
    assert parse_query('say "he said ""hi"""').terms == ('"say"', '"he said ""hi"""')
    assert parse_query("-- !!").terms == ()  # punctuation only: no constraint
    assert parse_query('actor:"svc deploy"').actor == "svc deploy"
    assert isinstance(parse_query("x"), AuditQuery)
    with pytest.raises(UsageError, match="relative but no current time"):
        parse_query("since:1d")


def test_search_directly_and_visibility(tmp_path, populated):
    svc, _, _ = populated
    with svc.db.write() as tx:
        append_event(tx, at=svc.engine.now(), actor="signoff", action="system.note", data={"note": "no namespace"})
    everything = search(svc.db, "", limit=1000)
    only_prod = search(svc.db, "", limit=1000, visible=lambda ns: ns is not None and ns.startswith("prod."))
    assert only_prod and {e["namespace"] for e in only_prod} == {"prod.payments"}
    assert len(search(svc.db, "", limit=3, visible=lambda ns: ns == "prod.payments")) == 3
    assert everything[0]["action"] == "system.note"
    with pytest.raises(UsageError):
        search(svc.db, "", limit=0)


def _policy(tmp_path, text):
    from signoff.engine.policy import load_policy

    path = tmp_path / "policy.yaml"
    path.write_text(textwrap.dedent(text).lstrip())
    return load_policy(path)


def test_policy_visibility_and_refusal(tmp_path):
    policy = _policy(tmp_path, """
        fourEyes: false
        bindings:
          - role: admin
            subjects: [user:alice, user:bob]
            namespaces: ["*"]
          - role: viewer
            subjects: [user:carol]
            namespaces: ["*"]
          - role: viewer
            subjects: [user:dave]
            namespaces: [prod.payments]
        """)
    svc = _svc(tmp_path, policy=policy)
    _populate(svc)
    with svc.db.write() as tx:
        append_event(tx, at=svc.engine.now(), actor="signoff", action="system.note", data={})
    carol, dave = Identity("carol"), Identity("dave")
    admin_view = svc.history(ALICE, "", limit=1000)
    carol_view = svc.history(carol, "", limit=1000)
    assert "system.note" in {e["action"] for e in admin_view}
    assert "system.note" not in {e["action"] for e in carol_view}  # no namespace: admins only
    assert len(carol_view) == len(admin_view) - 1
    # a viewer of one namespace audits that namespace only
    dave_view = svc.history(dave, "", limit=1000)
    assert dave_view and {e["namespace"] for e in dave_view} == {"prod.payments"}
    assert len(dave_view) == sum(1 for e in admin_view if e["namespace"] == "prod.payments")
    # an identity with no role anywhere is refused, and each refusal is audited
    erin = Identity("erin")
    before = svc.db.query("SELECT count(*) FROM audit")[0][0]
    with pytest.raises(Refused):
        svc.history(erin, "")
    with pytest.raises(Refused):
        svc.verify_audit(erin)
    with pytest.raises(Refused):
        svc.export_audit(erin, "")
    denied = svc.db.query("SELECT * FROM audit WHERE seq > ?", (before,))
    assert [r["action"] for r in denied] == ["policy.denied"] * 3 and {r["actor"] for r in denied} == {"erin"}
    assert svc.verify_audit(ALICE)["ok"]


def test_fts_index_follows_appends_and_rebuild_backfills(tmp_path):
    svc = _svc(tmp_path)
    with svc.db.write() as tx:
        append_event(tx, at=svc.engine.now(), actor="ops", action="note", namespace="n", data={"reason": "kumquat"})
    assert [e["data"]["reason"] for e in svc.history(ALICE, "kumquat")] == ["kumquat"]
    conn = svc.db.connection()
    assert conn.execute("PRAGMA user_version").fetchone()[0] >= 2
    conn.execute("INSERT INTO audit_fts(audit_fts) VALUES('delete-all')")
    assert svc.history(ALICE, "kumquat") == []
    conn.execute("INSERT INTO audit_fts(audit_fts) VALUES('rebuild')")
    assert len(svc.history(ALICE, "kumquat")) == 1
    conn.execute("INSERT INTO audit_fts(audit_fts) VALUES('integrity-check')")


def test_migration_from_schema_1_backfills_the_index(tmp_path):
    """A database written at schema 1 gains the index (with its old events) on open."""
    from signoff.engine.store import db as dbmod
    from signoff.engine.store.schema import SCHEMA_VERSION

    data = tmp_path / "old"
    conn = old_schema_db(data, 1)
    conn.execute("BEGIN")
    append_event(conn, at="2026-01-01T00:00:00.000000Z", actor="old", action="legacy.event", namespace="x",
                 data={"reason": "persimmon"})
    conn.execute("COMMIT")
    conn.close()
    database = dbmod.Database(data)
    assert database.connection().execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION >= 2
    [hit] = search(database, "persimmon")
    assert hit["actor"] == "old" and verify_chain(database).ok
    database.close()


# -- export ---------------------------------------------------------------------------------------


def test_export_jsonl_and_csv(populated):
    svc, _, ids = populated
    events = list(svc.export_audit(ALICE, ""))
    total = svc.db.query("SELECT count(*) FROM audit")[0][0]
    assert _seqs(events) == list(range(1, total + 1))  # oldest first
    lines = "".join(jsonl_lines(events)).splitlines()
    assert len(lines) == total
    first = json.loads(lines[0])
    assert first["seq"] == 1 and first["prev_hash"] == GENESIS and set(first) >= set(CSV_HEADER)
    rows = list(csv.reader(io.StringIO("".join(csv_lines(svc.export_audit(ALICE, "action:request.denied"))))))
    assert rows[0] == list(CSV_HEADER)
    [denied] = rows[1:]
    record = dict(zip(CSV_HEADER, denied, strict=True))
    assert record["request_id"] == ids["r2"] and record["actor"] == "alice"
    stored = svc.db.query_one("SELECT * FROM audit WHERE action='request.denied'")
    assert record["data"] == stored["data"] and record["hash"] == stored["hash"]
    assert record["seq"] == str(stored["seq"]) and json.loads(record["data"])["reason"] == "error budget exhausted"
    # many events: streamed in batches, still in order
    many = list(csv.reader(io.StringIO("".join(csv_lines(iter(events), chunk=3)))))
    assert [int(r[0]) for r in many[1:]] == _seqs(events)
    with pytest.raises(UsageError):
        svc.export_audit(ALICE, "bogus:1")


def test_cli_history_and_export(tmp_path):
    clock = FakeClock("2026-01-05T09:00:00Z")
    svc = _svc(tmp_path, clock)
    ids = _populate(svc, clock)
    data_dir = tmp_path / "data"
    svc.db.close()
    as_json = run_cli("history", "quokka", "--json", data_dir=data_dir)
    assert as_json.returncode == 0, as_json
    [hit] = json.loads(as_json.stdout)
    assert hit["request_id"] == ids["r1"] and hit["data"]["reason"] == "checked the quokka dashboard"
    phrase = run_cli("history", "budget exhausted", "--json", data_dir=data_dir)  # one shell word: a phrase
    assert {e["execution_id"] for e in json.loads(phrase.stdout)} == {ids["e2"]}
    as_csv = run_cli("history", "action:request.*", "--csv", "--limit", "2", data_dir=data_dir)
    rows = list(csv.reader(io.StringIO(as_csv.stdout)))
    assert rows[0] == list(CSV_HEADER) and len(rows) == 3
    text = run_cli("history", "actor:alice", "--limit", "2", data_dir=data_dir)
    assert text.returncode == 0 and text.stdout.splitlines()[0].split()[:4] == ["SEQ", "AT", "(UTC)", "ACTOR"]
    assert "more: add --before" in text.stderr
    none = run_cli("history", "zanzibar", data_dir=data_dir)
    assert none.returncode == 0 and none.stdout.strip() == "No matching audit events."
    bad = run_cli("history", "colour:blue", data_dir=data_dir)
    assert bad.returncode == 2 and "unknown field `colour:`" in bad.stderr
    both = run_cli("history", "--json", "--csv", data_dir=data_dir)
    assert both.returncode == 2 and "choose one of --json and --csv" in both.stderr

    jsonl = run_cli("audit", "export", data_dir=data_dir)
    assert jsonl.returncode == 0
    events = [json.loads(line) for line in jsonl.stdout.splitlines()]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    exported_csv = run_cli("audit", "export", "--format", "csv", "ns:prodweb", data_dir=data_dir)
    rows = list(csv.reader(io.StringIO(exported_csv.stdout)))
    assert rows[0] == list(CSV_HEADER) and {r[4] for r in rows[1:]} == {"prodweb"}
