"""The hot paths made faster for the high-availability benchmark give what their plain versions
gave: the PostgreSQL full-text column, a decision's outcome as a dict, canonical JSON, the
answer to a start left to the runner."""
from __future__ import annotations

import json
import random
from dataclasses import asdict
from pathlib import Path

import pytest

from signoff.engine import jsonutil
from signoff.engine.approvals.outcome import Outcome
from signoff.engine.audit.fulltext import _grouped_literal, tokens, tsvector_literal
from signoff.engine.clock import parse_time
from signoff.engine.service import ApprovalService
from tests.support import ALICE, make_service


def reference_tsvector(fields: list[str | None]) -> str:
    """The tsvector as first written: a position per token, clamped, a gap after each field."""
    positions: dict[str, list[int]] = {}
    pos = 1
    for text in fields:
        if not text:
            continue
        for token in tokens(text):
            positions.setdefault(token, []).append(min(pos, 16383))
            pos += 1
        pos += 1
    return " ".join(f"'{t}':{','.join(map(str, p[:256]))}" for t, p in positions.items())


def varied_fields(count: int, seed: int = 7) -> list[list[str | None]]:
    rnd = random.Random(seed)
    words = ["alpha", "Beta", "café", "x", "CHG-12", "a.b@c", "", "ü", "naïve", "_", "1", "Ærø", "api"]
    ascii_words = [w for w in words if w.isascii()]
    out = []
    for _ in range(count):
        pool = rnd.choice([words, ascii_words])  # half all-ASCII (the flat literal), half not
        out.append([rnd.choice([None, "", " ".join(rnd.choice(pool) for _ in range(rnd.randint(0, 40)))])
                    for _ in range(rnd.randint(0, 8))])
    return out


#: past PostgreSQL's position limit, and with words repeated past its 256 positions per word
EDGE_FIELDS: list[list[str | None]] = [["a b " * 9000], ["x " * 300, "y " * 16000, "z"], ["w " * 16380, "v u"],
                                       ["w " * 16381, "", "v u"], ["same " * 400]]


def test_grouped_tsvector_literal_matches_the_reference_on_varied_text() -> None:
    """(The flat literal, what ASCII text gets, is compared on a real server:
    tests/test_pg_fulltext_literal.py.)"""
    for fields in varied_fields(3000):
        assert _grouped_literal([f for f in fields if f]) == reference_tsvector(fields), fields
        if not all((f or "").isascii() for f in fields):
            assert tsvector_literal(fields) == reference_tsvector(fields), fields


def test_grouped_tsvector_literal_past_the_position_limit_and_with_many_repeats() -> None:
    for fields in EDGE_FIELDS:
        assert _grouped_literal([f for f in fields if f]) == reference_tsvector(fields)


def test_a_long_word_is_left_out_as_before() -> None:
    long_word = "a" * 3000
    assert tokens(f"short {long_word} end") == ["short", "end"]
    assert tsvector_literal([f"short {long_word}"]) == "'short':1"


def test_outcome_to_dict_is_asdict() -> None:
    full = Outcome("r1", "decided", "done", "APPROVED", ["ann"], {"note": "bad"}, "e1",
                   {"fingerprint": "SHA256:x", "key_type": "ssh-ed25519"})
    for outcome in (full, Outcome("r2", "not_found", "no such request")):
        as_dict = outcome.to_dict()
        assert as_dict == asdict(outcome) and list(as_dict) == list(asdict(outcome))
    copied = full.to_dict()
    copied["by"].append("bob")
    assert full.by == ["ann"]  # a copy, as asdict made


def test_canonical_json_is_unchanged() -> None:
    value = {"b": [1, 2.5, None, True], "a": "é €", "c": {"z": 1, "y": parse_time("2026-01-01T00:00:00.000000Z")}}
    assert jsonutil.dumps(value) == json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True,
                                               default=str)


def test_parse_time_gives_the_same_moment_cached_or_not() -> None:
    text = "2026-03-04T05:06:07.123456Z"
    assert parse_time(text) == parse_time(text) and parse_time(text).isoformat() == "2026-03-04T05:06:07.123456+00:00"


def test_dumps_with_raw_gives_what_dumps_gives() -> None:
    """A decision's audit event splices the request's stored context text in unparsed: the
    text is what canonical JSON of the whole event would have been."""
    rnd = random.Random(5)
    leaves = [0, -1, 2.5, 1e-07, 10**20, True, False, None, "", "é €", 'quote " and \\ and \n\t\x01', "\u2028"]
    keys = ["context", "a", "zz", "é", "", "Context", "inputs", "verdict", "signature", "automatic"]

    def value(depth: int) -> object:
        kind = rnd.randint(0, 3 if depth < 3 else 0)
        if kind == 1:
            return [value(depth + 1) for _ in range(rnd.randint(0, 3))]
        if kind == 2:
            return {rnd.choice(keys): value(depth + 1) for _ in range(rnd.randint(0, 4))}
        return rnd.choice(leaves)

    for _ in range(2000):
        whole = {rnd.choice(keys): value(1) for _ in range(rnd.randint(0, 7))}
        spliced = {k: jsonutil.dumps(v) for k, v in whole.items() if rnd.random() < 0.4}
        if not spliced:
            spliced = {"context": jsonutil.dumps(value(1))}
            whole["context"] = json.loads(spliced["context"])
        plain = {k: v for k, v in whole.items() if k not in spliced}
        assert jsonutil.dumps_with_raw(plain, spliced) == jsonutil.dumps(whole), whole


FLOW_WITH_LABELS = {"change.yaml": """
    id: change
    namespace: ops
    labels:
      team: ops
    inputs:
      - id: ticket
        type: STRING
    tasks:
      - id: approve
        type: io.kestra.plugin.core.flow.Pause
    """}


@pytest.mark.parametrize("store", ["sqlite", "pg"])
def test_a_start_left_to_the_runner_answers_what_get_execution_reads(tmp_path: Path, store: str,
                                                                     request: pytest.FixtureRequest) -> None:
    """A start queued whole for the runner (start_inline=False) answers from the row it stored
    instead of reading it back; the answer is what reading it back gives, field for field."""
    url = request.getfixturevalue("pg_url") if store == "pg" else None
    engine = make_service(tmp_path, FLOW_WITH_LABELS, database=url).engine
    svc = ApprovalService(engine, run_inline=False, start_inline=False)
    try:
        started = svc.start_execution(ALICE, "ops", "change", {"ticket": "CHG-1"}, labels={"why": "test"})
        assert started == svc.get_execution(ALICE, started["id"])
        assert started["state"] == "CREATED" and started["labels"] == {"team": "ops", "why": "test"}
        assert started["inputs"] == {"ticket": "CHG-1"} and started["requests"] == []
    finally:
        engine.close()


SELF_RESUMING = {"self.yaml": """
    id: self_resume
    namespace: ops
    tasks:
      - id: both
        type: io.kestra.plugin.core.flow.Parallel
        tasks:
          - id: gate
            type: io.kestra.plugin.core.flow.Pause
          - id: go
            type: io.kestra.plugin.core.execution.Resume
            executionId: "{{ execution.id }}"
      - id: after
        type: io.kestra.plugin.core.log.Log
        message: resumed
    """, **FLOW_WITH_LABELS}


@pytest.mark.parametrize("store", ["sqlite", "pg"])
def test_an_execution_that_queues_itself_in_its_first_run_goes_on(tmp_path: Path, store: str,
                                                                  request: pytest.FixtureRequest) -> None:
    """An embedded start no longer looks for its own work row after its first run: it knows
    whether the run queued the execution again (work.noting_enqueues). Here the run resumes its
    own pause, which queues it: the start goes on to the end at once, as before."""
    url = request.getfixturevalue("pg_url") if store == "pg" else None
    svc = make_service(tmp_path, SELF_RESUMING, database=url)
    try:
        started = svc.start_execution(ALICE, "ops", "self_resume", {})
        assert started["state"] == "SUCCESS", started["error"]
        assert {t["path"]: t["state"] for t in started["task_runs"]}["after"] == "SUCCESS"
        assert [r["state"] for r in started["requests"]] == ["APPROVED"]
        assert svc.engine.db.query("SELECT * FROM work") == []
    finally:
        svc.engine.close()


def test_an_embedded_start_reads_neither_work_nor_a_quiet_outbox(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """After the first, a start of a process without notifications sends no statement to the
    work or outbox tables (it looks for others' due notifications at most once a second)."""
    from signoff.engine.notify import outbox

    monkeypatch.setattr(outbox, "IDLE_LOOK_S", 3600.0)  # (no second look however slow the machine)
    svc = make_service(tmp_path, FLOW_WITH_LABELS)
    try:
        svc.start_execution(ALICE, "ops", "change", {"ticket": "CHG-0"})  # the first looks
        statements: list[str] = []
        svc.engine.db.connection().set_trace_callback(statements.append)
        started = svc.start_execution(ALICE, "ops", "change", {"ticket": "CHG-1"})
        assert started["state"] == "PAUSED" and len(started["requests"]) == 1
        assert any("INSERT INTO requests" in s for s in statements), statements  # (the trace works)
        assert [s for s in statements if " work" in s or "outbox" in s] == []
    finally:
        svc.engine.close()


def test_a_process_without_notifications_still_sends_what_others_left_due(tmp_path: Path) -> None:
    """... once its look is due again: a message left due in the outbox (here: stored by hand,
    as a process that stopped before sending would leave it) goes out after the next change."""
    from signoff.engine.notify import outbox

    svc = make_service(tmp_path, FLOW_WITH_LABELS)
    try:
        svc.start_execution(ALICE, "ops", "change", {"ticket": "CHG-0"})
        first = svc.engine.outbox_looked_at
        assert first is not None
        with svc.engine.db.write() as tx:
            tx.execute("INSERT INTO outbox(event, request_id, namespace, target, payload, next_at)"
                       " VALUES ('decided', 'r-none', 'ops', 'nowhere', ?, '2000-01-01T00:00:00.000000Z')",
                       (json.dumps({"kind": "slack", "setting": "{{ secret('NO_SUCH_SECRET') }}",
                                    "title": "t", "text": "x"}),))
        svc.engine.outbox_looked_at = first - outbox.IDLE_LOOK_S  # a second went by
        svc.start_execution(ALICE, "ops", "change", {"ticket": "CHG-1"})
        (attempts, error), = svc.engine.db.query("SELECT attempts, error FROM outbox")
        assert attempts == 1 and "NO_SUCH_SECRET" in error
    finally:
        svc.engine.close()
