"""Statuses and problem details: 404, 409, 422 with per-field errors, 413, 400, and never a
500 for anything a client sends; paging cursors."""
from __future__ import annotations

import json

import pytest

from tests.server.conftest import both_stores

PROBLEM = "application/problem+json"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(request, server):
    """Every test here runs against the SQLite server and the PostgreSQL one."""
    return both_stores(request, server)


def assert_problem(r, status: int, slug: str | None = None) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    body = r.json()
    assert {"type", "title", "status", "detail"} <= set(body)
    assert body["status"] == status and isinstance(body["title"], str) and isinstance(body["detail"], str)
    assert body["type"] == "about:blank" or body["type"].startswith("https://signoff.dev/problems/")
    if slug:
        assert body["type"].endswith("/" + slug), body["type"]
    return body


@pytest.fixture
def alice(server):
    with server.client("alice") as c:
        yield c


@pytest.fixture
def admin(server):
    with server.client("root-admin") as c:
        yield c


def test_401_carries_a_bearer_challenge(server):
    from tests.server.conftest import fresh_address

    with server.client(address=fresh_address()) as c:
        r = c.get("/api/v1/me")
    assert_problem(r, 401, "unauthorized")
    assert r.headers["www-authenticate"].startswith("Bearer")
    with server.client(token="not-a-signoff-token", address=fresh_address()) as c:
        r = c.get("/api/v1/me")
    assert_problem(r, 401)
    assert 'error="invalid_token"' in r.headers["www-authenticate"]


def test_404_for_unknown_ids_and_routes(alice, admin):
    assert_problem(alice.get("/api/v1/approvals/rnope00000000"), 404, "not-found")
    assert_problem(alice.post("/api/v1/approvals/rnope00000000/approve", json={}), 404)
    assert_problem(alice.post("/api/v1/approvals/rnope00000000/deny", json={}), 404)
    assert_problem(alice.post("/api/v1/approvals/rnope00000000/cancel", json={}), 404)
    assert_problem(alice.post("/api/v1/approvals/rnope00000000/validate", json={}), 404)
    assert_problem(alice.get("/api/v1/executions/nope"), 404)
    assert_problem(alice.get("/api/v1/flows/company.finance/nope"), 404)
    assert_problem(admin.post("/api/v1/executions", json={"namespace": "x", "flow_id": "y"}), 404)
    assert_problem(alice.get("/api/v1/no/such/route"), 404)
    r = alice.delete("/api/v1/executions")
    assert_problem(r, 405)
    assert set(r.headers["allow"].split(", ")) == {"GET", "POST"}


def test_409_when_already_decided(server, alice):
    req = server.wait_request(server.start_payment(5))
    r = alice.post(f"/api/v1/approvals/{req}/approve", json={"inputs": {"approved": True}, "reason": "ok"})
    assert r.status_code == 200, r.text
    assert r.json()["outcome"] == "decided" and r.json()["state"] == "APPROVED"
    again = assert_problem(alice.post(f"/api/v1/approvals/{req}/approve", json={"inputs": {"approved": True}}), 409)
    assert again["outcome"]["outcome"] == "already_decided" and again["outcome"]["by"] == ["alice"]
    assert_problem(alice.post(f"/api/v1/approvals/{req}/deny", json={}), 409)
    with server.client("root-admin") as c:
        assert_problem(c.post(f"/api/v1/approvals/{req}/cancel", json={}), 409)


def test_idempotency_key_makes_a_retry_answer_the_same(server, alice):
    req = server.wait_request(server.start_payment(6))
    body = {"inputs": {"approved": True}, "idempotency_key": "k-123"}
    first = alice.post(f"/api/v1/approvals/{req}/approve", json=body)
    second = alice.post(f"/api/v1/approvals/{req}/approve", json=body)
    assert first.status_code == second.status_code == 200 and first.json() == second.json()
    with server.db() as db:
        assert db.execute("SELECT count(*) FROM decisions WHERE request_id=?", (req,)).fetchone()[0] == 1


def test_422_invalid_form_values_name_each_field(server, alice):
    req = server.wait_request(server.start_payment(7))
    r = alice.post(f"/api/v1/approvals/{req}/validate", json={"inputs": {"copies": 9}})
    assert r.status_code == 200 and set(r.json()["errors"]) == {"approved", "copies"}
    assert alice.post(f"/api/v1/approvals/{req}/validate", json={"inputs": {"approved": True}}).json() == {"errors": {}}
    problem = assert_problem(alice.post(f"/api/v1/approvals/{req}/approve", json={"inputs": {"copies": 9}}), 422)
    assert set(problem["errors"]) == {"approved", "copies"} and "5" in problem["errors"]["copies"]
    assert alice.get(f"/api/v1/approvals/{req}").json()["state"] == "PENDING"
    with server.client("rita") as c:
        problem = assert_problem(c.post("/api/v1/executions", json={"namespace": "company.finance",
                                                                   "flow_id": "payment", "inputs": {"amount": 0}}), 422)
        assert set(problem["errors"]) == {"amount"}
        r = c.post("/api/v1/flows/company.finance/payment/validate", json={"inputs": {"amount": "x"}})
        assert r.status_code == 200 and set(r.json()["errors"]) == {"amount"}


@pytest.mark.parametrize("body, field", [
    ({"inputs": {}, "surprise": 1}, "surprise"),
    ({"inputs": []}, "inputs"),
    ({"reason": 5}, "reason"),
    ({"idempotency_key": ""}, "idempotency_key"),
    ({"inputs": {"x": "\ud800"}}, "inputs"),
    ({"reason": "r" * 10_001}, "reason"),
])
def test_422_body_validation_is_a_problem_with_per_field_errors(server, alice, body, field):
    req = server.wait_request(server.start_payment(8)) if field == "surprise" else "rwhatever"
    r = alice.post(f"/api/v1/approvals/{req}/approve", content=json.dumps(body),
                   headers={"content-type": "application/json"})
    problem = assert_problem(r, 422)
    assert field in problem["errors"], problem


def test_422_for_bad_query_values(alice):
    for path, field in [("/api/v1/approvals?limit=0", "limit"), ("/api/v1/approvals?limit=-5", "limit"),
                        ("/api/v1/approvals?limit=999999999999999999999999", "limit"),
                        ("/api/v1/approvals?status=done", "status"), ("/api/v1/audit?limit=abc", "limit"),
                        ("/api/v1/executions?state=nope", "state"), ("/api/v1/events?after=-1", "after"),
                        ("/api/v1/audit?cursor=-3", "cursor"), ("/api/v1/audit?cursor=abc", "cursor"),
                        ("/api/v1/approvals?cursor=%E2%98%83", "cursor"),
                        ("/api/v1/approvals?q=a%00b", "q")]:
        problem = assert_problem(alice.get(path), 422)
        assert field in problem["errors"], (path, problem)
    r = alice.get("/api/v1/events", headers={"Last-Event-ID": "garbage", "Accept": "application/json"})
    assert "last-event-id" in assert_problem(r, 422)["errors"]


def test_400_for_malformed_json(alice):
    for raw in (b'{"inputs": {', b"\xff\xfe", b'{"inputs": ' + b"9" * 5000 + b"}", b"nul\x00"):
        r = alice.post("/api/v1/approvals/rwhatever/approve", content=raw, headers={"content-type": "application/json"})
        assert_problem(r, 400, "malformed-json")


def test_413_for_bodies_over_one_mib(alice):
    big = json.dumps({"inputs": {"blob": "x" * (1024 * 1024 + 10)}}).encode()
    r = alice.post("/api/v1/approvals/rwhatever/validate", content=big, headers={"content-type": "application/json"})
    assert_problem(r, 413, "payload-too-large")

    def chunks():  # no Content-Length: the middleware counts streamed bytes
        yield b'{"inputs": {"blob": "'
        for _ in range(40):
            yield b"y" * 32768
        yield b'"}}'

    r = alice.post("/api/v1/approvals/rwhatever/validate", content=chunks(),
                   headers={"content-type": "application/json"})
    assert "content-length" not in r.request.headers
    assert_problem(r, 413)
    # just under the limit is fine (and then 404: no such request)
    ok = json.dumps({"inputs": {"blob": "z" * (1024 * 1024 - 100)}}).encode()
    assert_problem(alice.post("/api/v1/approvals/rwhatever/validate", content=ok,
                              headers={"content-type": "application/json"}), 404)


@pytest.mark.parametrize("path", [
    "/api/v1/approvals?q=%F0%9F%98%80%E2%80%AE%25_%5C&namespace=%C3%A9*&flow=%00x".replace("%00x", "x"),
    "/api/v1/approvals?ids=,,%E2%98%83,%ED%A0%80," + ",".join(["r" * 30] * 50),
    "/api/v1/approvals/%ED%A0%80%F0%9F%98%80",
    "/api/v1/approvals/" + "a" * 200,
    "/api/v1/executions/%E2%98%83",
    "/api/v1/flows/%E2%98%83/%F0%9F%98%80",
    "/api/v1/audit?q=%22unterminated",
    "/api/v1/audit?q=since:notadate",
    "/api/v1/audit?q=AND%20OR%20NOT%20*%20%22%22%20(%20)",
    "/api/v1/audit?q=actor:%00",
    "/api/v1/audit?cursor=99999999999999999",
    "/api/v1/events?after=9223372036854775806",
])
def test_garbage_from_clients_never_gives_a_500(admin, path):
    r = admin.get(path, headers={"Accept": "application/json"})
    assert r.status_code < 500, (path, r.status_code, r.text)
    if r.status_code >= 400:
        assert_problem(r, r.status_code)


def test_garbage_bodies_never_give_a_500(server, admin):
    req = server.wait_request(server.start_payment(9))
    bodies = [
        ("POST", f"/api/v1/approvals/{req}/approve", {"inputs": {"approved": "maybe", "copies": 10**30}}),
        ("POST", f"/api/v1/approvals/{req}/approve", {"inputs": {"approved": True, "copies": 1.5e300}}),
        ("POST", f"/api/v1/approvals/{req}/validate", {"inputs": {"\u202e": [[[[]]]], "": None}}),
        ("POST", "/api/v1/approvals/bulk", {"ids": ["\u2603", req, req, "x" * 200], "verdict": "deny"}),
        ("POST", "/api/v1/approvals/bulk", {"ids": [], "verdict": "approve"}),
        ("POST", "/api/v1/approvals/bulk", {"ids": [req], "verdict": "maybe"}),
        ("POST", "/api/v1/executions", {"namespace": "company.finance", "flow_id": "payment",
                                        "inputs": {"amount": 10**20}}),
        ("POST", "/api/v1/executions", {"namespace": "company.finance", "flow_id": "payment",
                                        "inputs": {"amount": "\u0661\u0662"}}),
        ("PUT", "/api/v1/kv/company.finance/%E2%98%83", {"value": {"deep": [[[["x"]]]]}}),
        ("PUT", "/api/v1/kv/company.finance/k", {"value": 1e400}),
    ]
    for method, path, body in bodies:
        raw = json.dumps(body, allow_nan=True)
        r = admin.request(method, path, content=raw, headers={"content-type": "application/json"})
        assert r.status_code < 500, (path, body, r.status_code, r.text)


def test_bulk_outcomes_one_per_id_in_order(server, alice):
    reqs = server.pending_payments(3)
    other = server.start_restart()
    r = alice.post("/api/v1/approvals/bulk", json={"ids": [reqs[0], "rmissing", other, reqs[1], reqs[2]],
                                                   "verdict": "approve", "inputs": {"approved": True},
                                                   "idempotency_key": "bulk-1"})
    assert r.status_code == 200, r.text
    outcomes = r.json()["outcomes"]
    assert [o["id"] for o in outcomes] == [reqs[0], "rmissing", other, reqs[1], reqs[2]]
    assert [o["outcome"] for o in outcomes] == ["decided", "not_found", "not_eligible", "decided", "decided"]


def test_approvals_paging_with_cursor(server, admin):
    mine = set(server.pending_payments(5, amount=424242))
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": 2, "q": "424242"}
        if cursor:
            params["cursor"] = cursor
        page = admin.get("/api/v1/approvals", params=params).json()
        seen += [i["id"] for i in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert set(seen) == mine and len(seen) == 5 and pages == 3
    # a cursor whose request was decided meanwhile still continues after it
    first = admin.get("/api/v1/approvals", params={"limit": 2, "q": "424242"}).json()
    with server.client("alice") as c:
        assert c.post(f"/api/v1/approvals/{first['next_cursor']}/approve",
                      json={"inputs": {"approved": True}}).status_code == 200
    rest = admin.get("/api/v1/approvals", params={"q": "424242", "cursor": first["next_cursor"]}).json()
    assert [i["id"] for i in rest["items"]] == seen[2:]
    assert_problem(admin.get("/api/v1/approvals", params={"cursor": "rnosuchrequest"}), 404)
    # ids: any state, in the order given
    by_ids = admin.get("/api/v1/approvals", params={"ids": f"{seen[3]},{first['next_cursor']},rnope"}).json()
    assert [i["id"] for i in by_ids["items"]] == [seen[3], first["next_cursor"]]
    assert by_ids["items"][1]["state"] == "APPROVED" and by_ids["next_cursor"] is None


def test_audit_paging_with_cursor(admin):
    first = admin.get("/api/v1/audit", params={"limit": 3}).json()
    assert len(first["items"]) == 3 and first["next_cursor"] == str(first["items"][-1]["seq"])
    second = admin.get("/api/v1/audit", params={"limit": 3, "cursor": first["next_cursor"]}).json()
    assert second["items"][0]["seq"] < first["items"][-1]["seq"]
    assert admin.get("/api/v1/audit/verify").json()["ok"] is True
    head = admin.get("/api/v1/audit/head").json()
    assert head["seq"] >= first["items"][0]["seq"] and len(head["hash"]) == 64


def test_me_flows_executions_and_kv(server, admin):
    me = admin.get("/api/v1/me").json()
    assert me["name"] == "root-admin" and me["roles"] == {"*": ["admin"]} and me["single_user"] is False
    with server.client("alice") as c:
        me = c.get("/api/v1/me").json()
        assert "finance" in me["groups"] and me["roles"]["company.finance"] == ["approver"]
    with server.client("bob") as c:
        assert [f["id"] for f in c.get("/api/v1/flows").json()["items"]] == ["restart"]
    flows = admin.get("/api/v1/flows").json()
    # the folder's flows, in order (other tests on this shared server may add flows through the API)
    folder = [f["id"] for f in flows["items"] if f["id"] in ("payment", "restart")]
    assert folder == ["payment", "restart"] and flows["next_cursor"] is None
    assert "source" in admin.get("/api/v1/flows/company.finance/payment").json()
    ex = admin.get("/api/v1/executions", params={"state": "PAUSED", "limit": 3}).json()
    assert ex["items"] and all(e["state"] == "PAUSED" for e in ex["items"])
    r = admin.put("/api/v1/kv/company.finance/limit", json={"value": {"max": 7}})
    assert r.status_code == 200 and r.json() == {"namespace": "company.finance", "key": "limit"}
    from signoff.engine.store.schema import SCHEMA_VERSION

    assert admin.get("/healthz").json() == {"status": "ok", "schema": SCHEMA_VERSION}
