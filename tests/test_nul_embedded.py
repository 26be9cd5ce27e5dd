"""NUL (U+0000) through the embedded engine, on SQLite and on PostgreSQL: the service, the flow
loader, token issuing and the `signoff` command line refuse it with the same message naming
the field, and write nothing (ARCHITECTURE.md, "Text the stores keep"). The HTTP side is
tests/server/test_nul_text.py."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from signoff.engine import tokens
from signoff.engine.errors import InvalidInputs, NotFound, UsageError
from signoff.engine.nul import input_errors, nul_problem
from tests.support import ALICE, BOB, REPO, SIGNOFF, clean_env, make_service

NUL = "\x00"
FLOW = """
id: texts
namespace: company
inputs:
  - {id: name, type: STRING, required: false}
  - {id: doc, type: JSON, required: false}
  - {id: conf, type: YAML, required: false}
triggers:
  - id: hook
    type: io.kestra.plugin.core.trigger.Webhook
    key: the-webhook-key
tasks:
  - id: review
    type: io.kestra.plugin.core.flow.Pause
    onResume:
      - {id: note, type: STRING, required: false}
      - {id: doc, type: JSON, required: false}
  - id: done
    type: io.kestra.plugin.core.log.Log
    message: done
"""
#: a flow file written with NUL escapes: it does not load on either store
BAD_FLOW = """
id: bad
namespace: company
labels:
  team: "a\\0b"
tasks:
  - id: say
    type: io.kestra.plugin.core.log.Log
    message: "hi\\x00"
"""
ESCAPED = '{"a": {"b": ["x\\u0000"]}}'
MESSAGE = "must not contain the NUL character (U+0000)"


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request) -> str | None:
    """Both stores: None (the SQLite file) or a fresh database of the tests' PostgreSQL."""
    return request.getfixturevalue("pg_url") if request.param == "postgresql" else None


@pytest.fixture
def svc(tmp_path: Path, database: str | None):
    service = make_service(tmp_path, {"texts.yaml": FLOW, "bad.yaml": BAD_FLOW}, database=database)
    yield service
    service.engine.close()


def counts(svc) -> dict[str, Any]:
    tables = ("executions", "requests", "decisions", "audit", "kv", "tokens", "idempotency", "work", "input_files")
    snap: dict[str, Any] = {t: svc.db.query_one(f"SELECT count(*) FROM {t}")[0] for t in tables}
    snap["states"] = sorted(tuple(r) for r in svc.db.query("SELECT id, state FROM requests"))
    return snap


def refused(call, *args: Any, **kw: Any) -> dict[str, str]:
    with pytest.raises(InvalidInputs) as caught:
        call(*args, **kw)
    return caught.value.errors


# -- the walk ---------------------------------------------------------------------------------


def test_nul_problem_names_the_first_place() -> None:
    assert nul_problem("plain", "x") is None
    assert nul_problem({"a": [1, 2.5, None, True, {"b": "ok"}]}, "x") is None
    assert nul_problem("a" + NUL, "reason") == f"reason: {MESSAGE}"
    assert nul_problem({"a": {"b": ["ok", "x" + NUL]}}, "doc") == f"doc.a.b.1: {MESSAGE}"
    assert nul_problem({"a": {"k" + NUL: 1}}, "doc") == f"doc.a: a key {MESSAGE}"
    assert nul_problem([("t", ["u", {"v": NUL}])], "t") == f"t.0.1.1.v: {MESSAGE}"
    assert input_errors({"ok": "x", "na" + NUL: 1}) == {"inputs": f"inputs: an input name {MESSAGE}"}
    # deeper than Python's recursion limit: walked without recursion
    deep: Any = NUL
    for _ in range(5000):
        deep = [deep]
    assert nul_problem(deep, "d") == "d" + ".0" * 5000 + f": {MESSAGE}"


# -- the service on both stores ---------------------------------------------------------------


def test_start_refuses_nul_in_given_and_parsed_values(svc) -> None:
    before = counts(svc)
    start = svc.start_execution
    assert refused(start, BOB, "company", "texts", {"name": "a" + NUL}) == {"name": f"name: {MESSAGE}"}
    assert refused(start, BOB, "company", "texts", {"doc": ESCAPED}) == {"doc": f"doc.a.b.0: {MESSAGE}"}
    assert refused(start, BOB, "company", "texts", {"doc": {"a": {"k" + NUL: 1}}}) == {
        "doc": f"doc.a: a key {MESSAGE}"}
    assert refused(start, BOB, "company", "texts", {"conf": 'a: ["\\0"]'}) == {"conf": f"conf.a.0: {MESSAGE}"}
    assert refused(start, BOB, "company", "texts", {"x" + NUL: 1}) == {"inputs": f"inputs: an input name {MESSAGE}"}
    assert svc.check_flow_inputs(BOB, "company", "texts", {"doc": ESCAPED}) == {"doc": f"doc.a.b.0: {MESSAGE}"}
    assert counts(svc) == before


def test_decisions_refuse_nul_in_reasons_keys_and_form_values(svc) -> None:
    execution = svc.start_execution(BOB, "company", "texts", {"name": "plain"})
    [request] = execution["requests"]
    before = counts(svc)
    rid = request["id"]
    assert refused(svc.decide, ALICE, [rid], "deny", reason="no" + NUL) == {"reason": f"reason: {MESSAGE}"}
    assert refused(svc.decide, ALICE, [rid], "approve", idempotency_key="k" + NUL) == {
        "idempotency_key": f"idempotency_key: {MESSAGE}"}
    assert refused(svc.decide, ALICE, [rid, "r" + NUL], "deny") == {"ids": f"ids.1: {MESSAGE}"}
    assert refused(svc.decide, ALICE, [rid], "approve", inputs={"note": NUL}) == {"note": f"note: {MESSAGE}"}
    assert refused(svc.cancel, ALICE, [rid], reason=NUL) == {"reason": f"reason: {MESSAGE}"}
    # a form value that holds NUL once parsed: the request's invalid_inputs outcome
    [outcome] = svc.decide(ALICE, [rid], "approve", inputs={"doc": ESCAPED})
    assert outcome.outcome == "invalid_inputs" and outcome.errors == {"doc": f"doc.a.b.0: {MESSAGE}"}
    assert svc.validate(ALICE, rid, {"doc": ESCAPED}) == {"doc": f"doc.a.b.0: {MESSAGE}"}
    assert counts(svc) == before
    # without NUL the same decision goes through
    [outcome] = svc.decide(ALICE, [rid], "approve", inputs={"doc": '{"a": "x\\u0001"}'}, reason="tab\there")
    assert outcome.outcome == "decided", outcome


def test_kv_search_tokens_and_webhooks_refuse_nul(svc) -> None:
    before = counts(svc)
    assert refused(svc.kv_set, ALICE, "company", "K", {"a": ["ok", NUL]}) == {"value": f"value.a.1: {MESSAGE}"}
    assert refused(svc.kv_set, ALICE, "company", "K" + NUL, 1) == {"key": f"key: {MESSAGE}"}
    assert refused(svc.history, ALICE, "actor:al" + NUL) == {"query": f"query: {MESSAGE}"}
    now = svc.engine.clock.now()
    with pytest.raises(UsageError, match=r"--name: must not contain the NUL character"):
        tokens.issue(svc.db, "alice", now=now, created_by="root", name="laptop" + NUL)
    with pytest.raises(UsageError, match=r"USER: must not contain the NUL character"):
        tokens.issue(svc.db, "ali" + NUL + "ce", now=now, created_by="root")
    variables = {"body": {"a": "x" + NUL}, "headers": {}, "parameters": {}}
    assert refused(svc.webhook, "company", "texts", "the-webhook-key", variables) == {"body": f"body.a: {MESSAGE}"}
    with pytest.raises(NotFound):  # a wrong key says nothing else, whatever the body
        svc.webhook("company", "texts", "not-the-key", variables)
    assert counts(svc) == before


def test_a_flow_file_with_nul_escapes_does_not_load(svc) -> None:
    problems = [p for p in svc.flow_problems() if "bad.yaml" in p]
    assert [p.split("bad.yaml:", 1)[1] for p in problems] == [
        f"4:9: `labels.team` {MESSAGE}", f"8:14: `tasks.0.message` {MESSAGE}"]
    assert [f["id"] for f in svc.list_flows(ALICE)] == ["texts"]


# -- the command line on both stores ----------------------------------------------------------


def _signoff(tmp_path: Path, database: str | None, *args: str) -> subprocess.CompletedProcess[str]:
    flows = tmp_path / "cli-flows"
    if not flows.exists():
        flows.mkdir()
        (flows / "texts.yaml").write_text(FLOW.lstrip())
    config = tmp_path / "config"
    config.mkdir(exist_ok=True)
    store = ["--database", database] if database else []
    proc = subprocess.run([*SIGNOFF, "--data-dir", str(tmp_path / "data"), "--flows", str(flows), *store, *args],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, cwd=REPO, timeout=120,
                          env=clean_env(SIGNOFF_CONFIG_DIR=str(config)))
    assert "Traceback" not in proc.stdout + proc.stderr, proc
    return proc


def test_the_command_line_refuses_nul_with_exit_2(tmp_path: Path, database: str | None) -> None:
    run = _signoff(tmp_path, database, "run", "company", "texts", "-i", f"doc={ESCAPED}")
    assert run.returncode == 2, run
    assert run.stderr.strip() == f"signoff: doc.a.b.0: {MESSAGE}"
    kv = _signoff(tmp_path, database, "kv", "set", "--json", "K", '{"a": ["\\u0000"]}')
    assert kv.returncode == 2, kv
    assert kv.stderr.strip() == f"signoff: value.a.0: {MESSAGE}"
    listed = _signoff(tmp_path, database, "executions", "list", "--json")
    assert listed.returncode == 0 and json.loads(listed.stdout) == [], listed
