"""NUL (U+0000) in text a client sends, through a real `signoff serve` on SQLite and on
PostgreSQL side by side: every field is refused with a 4xx that names it, nothing is stored, no
5xx and no traceback, and both stores give the same answer (ARCHITECTURE.md, "Text the stores
keep": PostgreSQL text cannot hold NUL, SQLite can, so without one rule the stores disagree).

Each case is sent to both servers; its answer (status and problem, with the ids of each world
replaced by placeholders) must be equal, and every table's rows must be what they were.
"""
from __future__ import annotations

import json
import re
import shutil
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.server.conftest import FLOWS, USERS, Server, issue_token, make_server

PROBLEM = "application/problem+json"
NUL = "\x00"
HOOK_KEY = "nul-hook-key"
HOOK = f"/api/v1/executions/webhook/company.finance/texts/{HOOK_KEY}"

#: a flow with an input of each text-bearing type, a form with text, JSON and ARRAY fields, and
#: a webhook whose body feeds an input
TEXTS = """id: texts
namespace: company.finance
inputs:
  - {id: name, type: STRING, required: false}
  - {id: doc, type: JSON, required: false}
  - {id: tags, type: ARRAY, itemType: STRING, required: false}
  - {id: conf, type: YAML, required: false}
  - {id: pick, type: SELECT, values: [a, b], allowCustomValue: true, required: false}
  - {id: many, type: MULTISELECT, values: [a, b], required: false}
  - {id: mail, type: EMAIL, required: false}
  - {id: link, type: URI, required: false}
  - {id: pw, type: SECRET, required: false}
  - {id: report, type: FILE, required: false}
triggers:
  - id: hook
    type: io.kestra.plugin.core.trigger.Webhook
    key: nul-hook-key
    inputs:
      name: "{{ trigger.body.name ?? 'x' }}"
tasks:
  - id: review
    type: io.kestra.plugin.core.flow.Pause
    context:
      summary: "Texts {{ inputs.name }}"
    onResume:
      - {id: note, type: STRING, required: false}
      - {id: doc, type: JSON, required: false}
      - {id: tags, type: ARRAY, itemType: STRING, required: false}
  - id: done
    type: io.kestra.plugin.core.log.Log
    message: "done"
"""

#: rows that change without any request of ours (replica heartbeats, the failed-authentication
#: throttle) or mirror the audit (its search index)
VOLATILE = ("heartbeats", "auth_failures")


@dataclass
class World:
    name: str
    server: Server
    execution: str = ""
    request: str = ""
    csrf: str = ""
    web: httpx.Client | None = None
    ids: dict[str, str] = field(default_factory=dict)


def _tables(server: Server, db: Any) -> list[str]:
    if server.env.get("SIGNOFF_DATABASE_URL"):
        sql = ("SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
               " AND table_type = 'BASE TABLE'")
    else:
        sql = "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"
    # (the full-text words, audit_fts* and audit_words, are derived from the audit rows and fed
    # behind the writes by a search or an idle runner at any moment: engine.audit.fulltext_feed)
    derived = ("audit_fts", "audit_words")
    return sorted(r[0] for r in db.execute(sql) if not str(r[0]).startswith((*derived, *VOLATILE)))


def snapshot(server: Server) -> dict[str, Any]:
    """Every table's row count (the audit without failed authentications, which are recorded on
    purpose), the states of requests and executions, and the key-value store's contents."""
    with server.db() as db:
        snap: dict[str, Any] = {}
        for table in _tables(server, db):
            if table == "audit":
                snap[table] = db.execute("SELECT count(*) FROM audit WHERE action != 'auth.failed'").fetchone()[0]
            else:
                snap[table] = db.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
        snap["request_states"] = sorted(tuple(r) for r in db.execute("SELECT id, state FROM requests"))
        snap["execution_states"] = sorted(tuple(r) for r in db.execute("SELECT id, state FROM executions"))
        snap["kv"] = sorted(tuple(r) for r in db.execute("SELECT namespace, key, value FROM kv"))
        return snap


def _settled(server: Server, timeout: float = 20) -> dict[str, Any]:
    """A snapshot once the background runner has nothing left to do (two equal in a row)."""
    deadline = time.monotonic() + timeout
    last = snapshot(server)
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = snapshot(server)
        if now == last:
            return now
        last = now
    raise AssertionError("the server kept writing on its own")


def _web_session(world: World) -> None:
    client = httpx.Client(base_url=world.server.url, timeout=30, follow_redirects=True)
    page = client.post("/web/sign-in", data={"token": world.server.tokens["alice"], "next": f"/r/{world.request}"})
    assert page.status_code == 200, page.text[:2000]
    world.csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    world.web = client


def _make_world(name: str, base: Path, pg_url: str | None) -> World:
    flows = base / "flows"
    shutil.copytree(FLOWS, flows)
    (flows / "texts.yaml").write_text(TEXTS)
    server = make_server(base, tokens=pg_url is None)
    if pg_url is not None:
        server.env["SIGNOFF_DATABASE_URL"] = pg_url
        for user in USERS:
            server.tokens[user] = issue_token(user, server.env, "--name", f"{user} (tests)")
    server.start()
    world = World(name, server)
    with server.client("rita") as rita:
        r = rita.post("/api/v1/executions", json={"namespace": "company.finance", "flow_id": "texts",
                                                  "inputs": {"name": "plain"}})
        assert r.status_code == 201, r.text
        world.execution = r.json()["id"]
    world.request = server.wait_request(world.execution)
    with server.client("root-admin") as admin:
        assert admin.put("/api/v1/kv/company.finance/kept", json={"value": "before"}).status_code == 200
    _web_session(world)
    world.ids = {world.execution: "{execution}", world.request: "{request}"}
    return world


@pytest.fixture(scope="module")
def worlds(tmp_path_factory: pytest.TempPathFactory, pg_cluster) -> Iterator[dict[str, World]]:
    """The same server, flows and pending request on SQLite and on PostgreSQL."""
    made: dict[str, World] = {}
    try:
        made["sqlite"] = _make_world("sqlite", tmp_path_factory.mktemp("nul-sqlite"), None)
        made["postgresql"] = _make_world("postgresql", tmp_path_factory.mktemp("nul-pg"),
                                         pg_cluster.new_database("nul"))
        yield made
    finally:
        for world in made.values():
            if world.web is not None:
                world.web.close()
            code = world.server.stop()
            assert code == 0, world.server.log[-4000:]
            assert "Traceback" not in world.server.log, world.server.log[-4000:]


# -- the cases -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One request. ``field``: what the answer must name; ``status``: the expected status."""

    id: str
    method: str
    path: str
    field: str
    who: str | None = "alice"
    json: Any = None
    content: bytes | None = None
    content_type: str | None = None
    status: int = 422
    web: dict[str, Any] | None = None  # a form posted with the web session (csrf added)


def _start(inputs: dict[str, Any]) -> dict[str, Any]:
    return {"namespace": "company.finance", "flow_id": "texts", "inputs": inputs}


def _flow_text(**extra: str) -> str:
    head = "".join(f"{k}: {v}\n" for k, v in extra.items())
    return ("id: pushed\nnamespace: company.finance\n" + head +
            "tasks:\n  - id: say\n    type: io.kestra.plugin.core.log.Log\n    message: hi\n")


DEEP = {"a": {"b": ["x" + NUL]}}
DEEP_KEY = {"a": {"k" + NUL: 1}}
#: JSON text whose parsed value holds a NUL (the escape is six plain characters on the wire)
ESCAPED = '{"a": {"b": ["x\\u0000"]}}'

API_CASES = [
    # flow inputs at start: each input type, deep inside JSON, in object keys, in input names
    Case("start-string", "POST", "/api/v1/executions", "inputs.name", who="rita", json=_start({"name": "a" + NUL})),
    Case("start-json-deep", "POST", "/api/v1/executions", "inputs.doc.a.b.0", who="rita", json=_start({"doc": DEEP})),
    Case("start-json-key", "POST", "/api/v1/executions", "inputs.doc.a", who="rita", json=_start({"doc": DEEP_KEY})),
    Case("start-json-escaped", "POST", "/api/v1/executions", "doc.a.b.0", who="rita", json=_start({"doc": ESCAPED})),
    Case("start-array", "POST", "/api/v1/executions", "inputs.tags.1", who="rita",
         json=_start({"tags": ["ok", "x" + NUL]})),
    Case("start-array-escaped", "POST", "/api/v1/executions", "tags.1", who="rita",
         json=_start({"tags": '["ok", "x\\u0000"]'})),
    Case("start-yaml-escaped", "POST", "/api/v1/executions", "conf.a", who="rita",
         json=_start({"conf": 'a: "x\\0y"'})),
    Case("start-select-custom", "POST", "/api/v1/executions", "inputs.pick", who="rita",
         json=_start({"pick": "c" + NUL})),
    Case("start-multiselect", "POST", "/api/v1/executions", "inputs.many.0", who="rita",
         json=_start({"many": ["a" + NUL]})),
    Case("start-email", "POST", "/api/v1/executions", "inputs.mail", who="rita", json=_start({"mail": "a@b.c" + NUL})),
    Case("start-uri", "POST", "/api/v1/executions", "inputs.link", who="rita",
         json=_start({"link": "https://x/" + NUL})),
    Case("start-secret", "POST", "/api/v1/executions", "inputs.pw", who="rita", json=_start({"pw": "s" + NUL})),
    Case("start-file-name", "POST", "/api/v1/executions", "inputs.report.name", who="rita",
         json=_start({"report": {"name": "q3" + NUL + ".csv", "content_base64": "eA=="}})),
    Case("start-input-name", "POST", "/api/v1/executions", "inputs", who="rita", json=_start({"na" + NUL: "x"})),
    Case("start-namespace", "POST", "/api/v1/executions", "namespace", who="rita",
         json={"namespace": "company.finance" + NUL, "flow_id": "texts", "inputs": {}}),
    Case("start-flow-id", "POST", "/api/v1/executions", "flow_id", who="rita",
         json={"namespace": "company.finance", "flow_id": "texts" + NUL, "inputs": {}}),
    Case("validate-flow-inputs", "POST", "/api/v1/flows/company.finance/texts/validate", "inputs.name", who="rita",
         json={"inputs": {"name": NUL}}),
    Case("validate-flow-inputs-escaped", "POST", "/api/v1/flows/company.finance/texts/validate", "doc.a.b.0",
         who="rita", json={"inputs": {"doc": ESCAPED}}, status=200),
    Case("replay-from-task", "POST", "/api/v1/executions/{execution}/replay", "from_task", who="root-admin",
         json={"from_task": "rev" + NUL + "iew"}),
    # decisions: reasons, form values, ids, idempotency keys
    Case("approve-reason", "POST", "/api/v1/approvals/{request}/approve", "reason", json={"reason": "ok" + NUL}),
    Case("approve-note", "POST", "/api/v1/approvals/{request}/approve", "inputs.note", json={"inputs": {"note": NUL}}),
    Case("approve-json-deep", "POST", "/api/v1/approvals/{request}/approve", "inputs.doc.a.b.0",
         json={"inputs": {"doc": DEEP}}),
    Case("approve-json-key", "POST", "/api/v1/approvals/{request}/approve", "inputs.doc.a",
         json={"inputs": {"doc": DEEP_KEY}}),
    Case("approve-json-escaped", "POST", "/api/v1/approvals/{request}/approve", "doc.a.b.0",
         json={"inputs": {"doc": ESCAPED}}),
    Case("approve-array-escaped", "POST", "/api/v1/approvals/{request}/approve", "tags.0",
         json={"inputs": {"tags": '["\\u0000"]'}}),
    Case("approve-idempotency-key", "POST", "/api/v1/approvals/{request}/approve", "idempotency_key",
         json={"idempotency_key": "k" + NUL}),
    Case("deny-reason", "POST", "/api/v1/approvals/{request}/deny", "reason", json={"reason": NUL}),
    Case("cancel-reason", "POST", "/api/v1/approvals/{request}/cancel", "reason", who="root-admin",
         json={"reason": "stop" + NUL}),
    Case("bulk-reason", "POST", "/api/v1/approvals/bulk", "reason",
         json={"ids": ["{request}"], "verdict": "deny", "reason": NUL}),
    Case("bulk-ids", "POST", "/api/v1/approvals/bulk", "ids.0", json={"ids": ["r" + NUL], "verdict": "deny"}),
    Case("bulk-inputs-escaped", "POST", "/api/v1/approvals/bulk", "doc.a.b.0",
         json={"ids": ["{request}"], "verdict": "approve", "inputs": {"doc": ESCAPED}}, status=200),
    Case("form-validate", "POST", "/api/v1/approvals/{request}/validate", "inputs.note",
         json={"inputs": {"note": NUL}}),
    Case("form-validate-escaped", "POST", "/api/v1/approvals/{request}/validate", "doc.a.b.0",
         json={"inputs": {"doc": ESCAPED}}, status=200),
    Case("signing-material", "POST", "/api/v1/signing/material", "ids.0", json={"ids": [NUL], "verdict": "deny"}),
    # keys
    Case("key-public-key", "POST", "/api/v1/keys", "public_key", json={"public_key": "ssh-ed25519 AAAA" + NUL}),
    Case("key-user", "POST", "/api/v1/keys", "user", who="root-admin",
         json={"public_key": "ssh-ed25519 AAAA", "user": "bob" + NUL}),
    Case("key-revoke", "POST", "/api/v1/keys/revoke", "fingerprint", json={"fingerprint": "SHA256:" + NUL}),
    # the key-value store
    Case("kv-value", "PUT", "/api/v1/kv/company.finance/k", "value", who="root-admin", json={"value": "v" + NUL}),
    Case("kv-value-deep", "PUT", "/api/v1/kv/company.finance/k", "value.a.b.0", who="root-admin",
         json={"value": DEEP}),
    Case("kv-value-key", "PUT", "/api/v1/kv/company.finance/k", "value.a", who="root-admin", json={"value": DEEP_KEY}),
    Case("kv-key", "PUT", "/api/v1/kv/company.finance/k%00", "path", who="root-admin", json={"value": 1}),
    Case("kv-namespace", "PUT", "/api/v1/kv/company%00/k", "path", who="root-admin", json={"value": 1}),
    # flow YAML pushed over the API: NUL written as an escape, and as a byte
    Case("flow-description", "POST", "/api/v1/flows", "flow.yaml:3:14: `description`", who="root-admin",
         content=_flow_text(description='"x\\0y"').encode(), content_type="application/x-yaml"),
    Case("flow-label-value", "POST", "/api/v1/flows", "`labels.team`", who="root-admin",
         content=_flow_text(labels='{team: "a\\0"}').encode(), content_type="application/x-yaml"),
    Case("flow-label-key", "POST", "/api/v1/flows", "a key in `labels`", who="root-admin",
         content=_flow_text(labels='{"t\\0": a}').encode(), content_type="application/x-yaml"),
    Case("flow-byte", "POST", "/api/v1/flows", "flow.yaml:3:15: the text must not contain", who="root-admin",
         content=_flow_text(description="x\x00y").encode(), content_type="application/x-yaml"),
    Case("flow-update", "PUT", "/api/v1/flows/company.finance/pushed", "`description`", who="root-admin",
         content=_flow_text(description='"x\\x00"').encode(), content_type="application/x-yaml"),
    Case("flow-validate", "POST", "/api/v1/flows/validate", "3:14: `description`", who="root-admin",
         content=_flow_text(description='"x\\0y"').encode(), content_type="application/x-yaml"),
    # webhooks: no token, the key is the secret
    Case("webhook-json-body", "POST", HOOK, "body.name", who=None, json={"name": "x" + NUL}),
    Case("webhook-json-key", "POST", HOOK, "body", who=None, json={"na" + NUL + "me": "x"}),
    Case("webhook-text-body", "POST", HOOK, "body", who=None, content=b"x\x00y", content_type="text/plain"),
    Case("webhook-parameter", "POST", HOOK + "?ref=a%00b", "ref", who=None, json={"name": "x"}),
    Case("webhook-wrong-key", "POST", HOOK + "x", "no webhook at this address", who=None, json={"name": NUL},
         status=404),
    # query strings and paths
    Case("audit-query", "GET", "/api/v1/audit?q=actor%3Aal%00ice", "q", who="root-admin"),
    Case("approvals-query", "GET", "/api/v1/approvals?q=%00", "q"),
    Case("approvals-namespace", "GET", "/api/v1/approvals?namespace=company%00", "namespace"),
    Case("approvals-ids", "GET", "/api/v1/approvals?ids=r%00", "ids"),
    Case("stats-namespace", "GET", "/api/v1/stats?namespace=%00", "namespace", who="root-admin"),
    Case("keys-user", "GET", "/api/v1/keys?user=%00", "user"),
    Case("query-name", "GET", "/api/v1/approvals?q%00=x", "query"),
    Case("request-path", "GET", "/api/v1/approvals/r%00", "path"),
    Case("execution-path", "GET", "/api/v1/executions/e%00", "path"),
    Case("approve-path", "POST", "/api/v1/approvals/r%00/approve", "path", json={}),
    Case("flow-path", "GET", "/api/v1/flows/company.finance/te%00xts", "path"),
    Case("trigger-path", "POST", "/api/v1/triggers/company.finance/texts/ho%00ok/disable", "path", who="root-admin"),
    Case("web-request-path", "GET", "/r/r%00", "path", web={}),
    Case("web-pending-page", "GET", "/web/pending?page=1%00", "page", web={}),
]

#: the web approval page (a signed-in session posting its forms)
WEB_CASES = [
    Case("web-reason", "POST", "/r/{request}/decide", "reason", who=None,
         web={"verdict": "deny", "reason": "no" + NUL}),
    Case("web-form-value", "POST", "/r/{request}/decide", "note", who=None,
         web={"verdict": "approve", "in-note": "x" + NUL}),
    Case("web-form-escaped", "POST", "/r/{request}/decide", "doc.a.b.0", who=None,
         web={"verdict": "approve", "in-doc": ESCAPED}),
    Case("web-bulk-reason", "POST", "/web/bulk", "reason", who=None,
         web={"step": "form", "verdict": "deny", "id": "{request}", "reason": NUL}),
    Case("web-bulk-id", "POST", "/web/bulk", "id", who=None, web={"step": "form", "verdict": "deny", "id": "r" + NUL}),
]


def _fill(value: Any, world: World) -> Any:
    if isinstance(value, str):
        return value.replace("{request}", world.request).replace("{execution}", world.execution)
    if isinstance(value, dict):
        return {_fill(k, world): _fill(v, world) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, world) for v in value]
    return value


def _send(case: Case, world: World) -> httpx.Response:
    server = world.server
    path = _fill(case.path, world)
    if case.web is not None:
        assert world.web is not None
        if case.method == "GET":
            return world.web.get(path)
        form = {**_fill(case.web, world), "csrf": world.csrf}
        return world.web.post(path, data=form)
    headers = {"Content-Type": case.content_type} if case.content_type else {}
    # httpx would quote a raw NUL in the URL: the cases write it as %00 themselves
    with server.client(case.who) as client:
        if case.json is not None:
            return client.request(case.method, path, content=json.dumps(_fill(case.json, world)).encode(),
                                  headers={"Content-Type": "application/json", **headers})
        return client.request(case.method, path, content=case.content, headers=headers)


def _normal(text: str, world: World) -> str:
    for value, name in world.ids.items():
        text = text.replace(value, name)
    return text


def _page_message(response: httpx.Response) -> str:
    """The message a web page shows (the error page's heading, a form page's message)."""
    found = re.search(r'id="(?:error|message)"[^>]*>(.*?)</', response.text, re.S)
    return found.group(1) if found else ""


def _named(body: dict[str, Any]) -> str:
    """Where a problem names fields: per-field errors, a flow's problems, the detail, the
    outcomes' errors (bulk)."""
    parts = [body.get("errors"), body.get("problems"), body.get("detail"),
             [o.get("errors") for o in body.get("outcomes") or []]]
    return json.dumps(parts)


def _answer(case: Case, world: World, response: httpx.Response) -> Any:
    """What must be equal on both stores: the status and the problem (or the page's message)."""
    if case.web is not None and not response.headers["content-type"].startswith(PROBLEM):
        return response.status_code, _normal(_page_message(response), world)
    return response.status_code, json.loads(_normal(response.text, world))


@pytest.mark.parametrize("case", API_CASES + WEB_CASES, ids=lambda c: c.id)
def test_nul_is_refused_the_same_way_on_both_stores(case: Case, worlds: dict[str, World]) -> None:
    answers = {}
    for name, world in worlds.items():
        before = _settled(world.server)
        response = _send(case, world)
        text = response.text
        assert "Traceback" not in text, text[:3000]
        assert response.status_code == case.status, f"{name}: {response.status_code} {text[:3000]}"
        if response.headers["content-type"].startswith(PROBLEM) or case.status == 200:
            named = _named(response.json())
            assert case.field in named, f"{name}: `{case.field}` not named in {text[:3000]}"
            assert case.status == 404 or "NUL" in named, text[:3000]
        else:  # a web page
            message = _page_message(response)
            assert case.field in message and "NUL" in message, f"{name}: {message!r} in {text[:5000]}"
        after = _settled(world.server)
        assert after == before, f"{name}: the refused request changed the database"
        answers[name] = _answer(case, world, response)
    assert answers["sqlite"] == answers["postgresql"]


def test_a_nul_in_a_header_is_refused_by_the_protocol(worlds: dict[str, World]) -> None:
    """HTTP/1.1 forbids NUL in a header: the server answers 400 before any of our code runs."""
    for name, world in worlds.items():
        before = _settled(world.server)
        host, port = world.server.url.split("//", 1)[1].rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=30) as conn:
            conn.sendall(f"POST {HOOK} HTTP/1.1\r\nHost: x\r\nX-Ref: a\x00b\r\nContent-Length: 0\r\n"
                         "Connection: close\r\n\r\n".encode())
            reply = b""
            while chunk := conn.recv(65536):
                reply += chunk
        assert reply.startswith(b"HTTP/1.1 400"), (name, reply[:500])
        assert _settled(world.server) == before, name


def test_the_same_texts_without_nul_are_stored(worlds: dict[str, World]) -> None:
    """The refusals above are about NUL alone: the same fields with other control characters
    (tab, U+0001, U+FFFD) are taken on both stores."""
    odd = "tab\there \x01 \ufffd"
    for name, world in worlds.items():
        with world.server.client("root-admin") as admin:
            r = admin.put("/api/v1/kv/company.finance/odd", json={"value": {"a": [odd]}})
            assert r.status_code == 200, (name, r.text)
        with world.server.client("rita") as rita:
            r = rita.post("/api/v1/executions", json=_start({"name": odd, "doc": {"k\x01": [odd]}}))
            assert r.status_code == 201, (name, r.text)
            assert r.json()["inputs"]["name"] == odd
