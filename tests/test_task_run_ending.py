"""A task that ends as WARNING or FAILED after its after-decision block (denyBehavior WARN/FAIL,
expireBehavior WARN) says so in ``task_runs.ends_as``, not in a "WARN:" prefix on ``error``;
databases written before (schema 4) are converted by the migration, and a run paused in that
block then ends the same way. Real SQLite files, the real runner."""
from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from signoff.engine.core import Engine
from signoff.engine.service import ApprovalService
from signoff.engine.store.db import DB_FILENAME
from signoff.engine.store.schema import SCHEMA_VERSION
from tests.support import ALICE, BOB, make_service, pending_ids

FLOW = """
id: guarded
namespace: t.ns
tasks:
  - id: review
    type: io.kestra.plugin.core.flow.Approval
    denyBehavior: {behavior}
    onDeny:
      - id: cleanup
        type: io.kestra.plugin.core.flow.Pause
  - id: after
    type: io.kestra.plugin.core.log.Log
    message: next
"""


def review_run(data_dir: Path) -> tuple[str, str | None, str | None]:
    conn = sqlite3.connect(data_dir / DB_FILENAME)
    try:
        row = conn.execute("SELECT state, error, ends_as FROM task_runs WHERE task_id='review'").fetchone()
    finally:
        conn.close()
    return row


def deny_into_the_block(tmp_path: Path, behavior: str) -> tuple[ApprovalService, str]:
    svc = make_service(tmp_path, {"guarded.yaml": FLOW.format(behavior=behavior)})
    ex = svc.start_execution(BOB, "t.ns", "guarded", {})
    [outcome] = svc.deny(ALICE, [ex["requests"][0]["id"]], reason="not now")
    assert outcome.ok
    return svc, ex["id"]


@pytest.mark.parametrize(("behavior", "ends", "execution"), [("WARN", "WARNING", "WARNING"),
                                                             ("FAIL", "FAILED", "FAILED")])
def test_the_ending_is_a_column_while_the_block_runs(tmp_path, behavior, ends, execution) -> None:
    svc, execution_id = deny_into_the_block(tmp_path, behavior)
    assert review_run(tmp_path / "data") == ("RUNNING", "denied by alice: not now", ends)
    [cleanup] = pending_ids(svc)
    [outcome] = svc.approve(ALICE, [cleanup], {})
    assert outcome.ok
    ex = svc.get_execution(ALICE, execution_id)
    review = next(r for r in ex["task_runs"] if r["task_id"] == "review")
    assert (review["state"], review["error"]) == (ends, "denied by alice: not now")
    assert ex["state"] == execution
    svc.engine.close()


def test_a_schema_4_database_is_converted_and_resumes_the_same(tmp_path) -> None:
    svc, execution_id = deny_into_the_block(tmp_path, "WARN")
    svc.engine.close()
    data_dir = tmp_path / "data"
    # write the run back as schema 4 had it: no column, the ending as a prefix on the error
    conn = sqlite3.connect(data_dir / DB_FILENAME)
    conn.execute("UPDATE task_runs SET error = 'WARN:' || error WHERE task_id='review'")
    conn.execute("ALTER TABLE task_runs DROP COLUMN ends_as")
    conn.execute("ALTER TABLE executions DROP COLUMN outputs")  # schema 6 (flow outputs)
    conn.execute("ALTER TABLE executions DROP COLUMN original_id")  # schema 7 (restart and replay)
    conn.execute("ALTER TABLE executions DROP COLUMN origin")
    conn.execute("DROP TABLE triggers")  # schema 8
    conn.execute("DROP TABLE api_flows")  # schema 9
    conn.execute("DROP INDEX decisions_by_actor")  # schema 15 (and it widened requests_pending)
    conn.execute("DROP INDEX requests_pending")
    conn.execute("CREATE INDEX requests_pending ON requests(state, due_at, created_at)")
    for index in ("requests_by_flow", "requests_by_decided", "decisions_by_at"):  # schema 10 (15 remade two)
        conn.execute(f"DROP INDEX {index}")
    for table, column in (("requests", "decision_s"), ("requests", "escalations"), ("decisions", "response_s")):
        conn.execute(f"ALTER TABLE {table} DROP COLUMN {column}")  # schema 15
    for table in ("signing_keys", "signing_nonces", "audit_checkpoints", "signed_batches"):  # 11, 12
        conn.execute(f"DROP TABLE {table}")
    for column in ("statement", "signature", "key_fingerprint", "batch_sha256"):  # schema 11, 12
        conn.execute(f"ALTER TABLE decisions DROP COLUMN {column}")
    for table in ("auth_failures", "input_files"):  # schema 13
        conn.execute(f"DROP TABLE {table}")
    conn.execute("DROP INDEX executions_by_flow_state")
    conn.execute("DROP TABLE heartbeats")  # schema 14
    conn.execute("DROP TABLE audit_fts_through")  # schema 16
    conn.execute("PRAGMA user_version=4")
    conn.commit()
    conn.close()

    engine = Engine(data_dir, [tmp_path / "flows"])
    svc = ApprovalService(engine)
    version = engine.db.connection().execute("PRAGMA user_version").fetchone()[0]
    assert version == SCHEMA_VERSION
    assert review_run(data_dir) == ("RUNNING", "denied by alice: not now", "WARNING")
    [cleanup] = pending_ids(svc)
    svc.approve(ALICE, [cleanup], {})
    ex = svc.get_execution(ALICE, execution_id)
    review = next(r for r in ex["task_runs"] if r["task_id"] == "review")
    assert (review["state"], review["error"]) == ("WARNING", "denied by alice: not now")
    assert ex["state"] == "WARNING"
    engine.close()


def test_no_error_carries_a_prefix(tmp_path) -> None:
    svc, _ = deny_into_the_block(tmp_path, "WARN")
    conn = sqlite3.connect(tmp_path / "data" / DB_FILENAME)
    try:
        assert conn.execute("SELECT count(*) FROM task_runs WHERE error LIKE 'WARN:%'").fetchone()[0] == 0
    finally:
        conn.close()
    svc.engine.close()
