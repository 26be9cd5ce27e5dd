"""Every endpoint x {no token, wrong token, revoked token, expired token, viewer, approver of
another namespace, approver, admin} gives the expected status, and every refusal (401, 403)
is in the audit trail."""
from __future__ import annotations

import pytest

from tests.server.conftest import both_stores, fresh_address


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(request, server):
    """Every case on both stores (tests/server/conftest.py, both_stores)."""
    return both_stores(request, server)

CLASSES = ("none", "wrong", "revoked", "expired", "viewer", "other", "approver", "admin")
#: class -> token name in server.tokens (None: no Authorization header)
TOKEN = {"none": None, "wrong": "wrong", "revoked": "revoked", "expired": "expired", "viewer": "victor",
         "other": "bob", "approver": "alice", "admin": "root-admin"}
USER = {"viewer": "victor", "other": "bob", "approver": "alice", "admin": "root-admin"}
#: the reason an unauthenticated class is audited with
REASON = {"none": "missing", "wrong": "unknown", "revoked": "revoked", "expired": "expired"}

#: an admin may register a key for someone else (rita) without proof; nobody else may
MATRIX_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOM1iSvLL7To/wxH61hTbs0mmAiA/jCwlJ1aCBXzTt4B matrix"

# name: (method, path, body, fresh) - {req} a pending company.finance request (a fresh one per
# case when `fresh`), {exe} its execution.
ENDPOINTS = {
    "healthz": ("GET", "/healthz", None, False),
    "me": ("GET", "/api/v1/me", None, False),
    "approvals.list": ("GET", "/api/v1/approvals?status=pending&limit=5", None, False),
    "approvals.ids": ("GET", "/api/v1/approvals?ids={req}", None, False),
    "approvals.get": ("GET", "/api/v1/approvals/{req}", None, False),
    "approvals.validate": ("POST", "/api/v1/approvals/{req}/validate", {"inputs": {"approved": True}}, False),
    "approvals.approve": ("POST", "/api/v1/approvals/{req}/approve", {"inputs": {"approved": True}}, True),
    "approvals.deny": ("POST", "/api/v1/approvals/{req}/deny", {"reason": "no"}, True),
    "approvals.cancel": ("POST", "/api/v1/approvals/{req}/cancel", {"reason": "stop"}, True),
    "approvals.bulk": ("POST", "/api/v1/approvals/bulk",
                       {"ids": ["{req}"], "verdict": "approve", "inputs": {"approved": True}}, True),
    "audit": ("GET", "/api/v1/audit?q=action:request.created&limit=5", None, False),
    "audit.verify": ("GET", "/api/v1/audit/verify", None, False),
    "audit.head": ("GET", "/api/v1/audit/head", None, False),
    "flows.list": ("GET", "/api/v1/flows", None, False),
    "flows.get": ("GET", "/api/v1/flows/company.finance/payment", None, False),
    "flows.validate": ("POST", "/api/v1/flows/company.finance/payment/validate", {"inputs": {"amount": 3}}, False),
    "flows.create": ("POST", "/api/v1/flows", "id: matrix_made\nnamespace: company.finance\ntasks:\n  - id: a\n"
                     "    type: io.kestra.plugin.core.log.Log\n    message: hi\n", False),
    "flows.check": ("POST", "/api/v1/flows/validate", "id: x\nnamespace: company.finance\ntasks: []\n", False),
    "flows.update": ("PUT", "/api/v1/flows/company.finance/payment", "id: payment\nnamespace: company.finance\n"
                     "tasks:\n  - id: a\n    type: io.kestra.plugin.core.log.Log\n    message: hi\n", False),
    "flows.delete": ("DELETE", "/api/v1/flows/company.finance/payment", None, False),
    "flows.revisions": ("GET", "/api/v1/flows/company.finance/payment/revisions", None, False),
    "executions.start": ("POST", "/api/v1/executions",
                         {"namespace": "company.finance", "flow_id": "payment", "inputs": {"amount": 7}}, False),
    "executions.list": ("GET", "/api/v1/executions?limit=5", None, False),
    "executions.get": ("GET", "/api/v1/executions/{exe}", None, False),
    "executions.restart": ("POST", "/api/v1/executions/{exe}/restart", {}, False),
    "executions.replay": ("POST", "/api/v1/executions/{exe}/replay", {"from_task": "approve"}, False),
    "stats": ("GET", "/api/v1/stats?since=30d", None, False),
    "triggers.list": ("GET", "/api/v1/triggers", None, False),
    "triggers.switch": ("POST", "/api/v1/triggers/company.finance/payment/nope/disable", None, False),
    "kv.put": ("PUT", "/api/v1/kv/company.finance/limit", {"value": {"max": 5}}, False),
    "events": ("GET", "/api/v1/events?after=0&limit=10", None, False),
    "keys.list": ("GET", "/api/v1/keys", None, False),
    "keys.challenge": ("POST", "/api/v1/keys/challenge", None, False),
    "keys.add": ("POST", "/api/v1/keys", {"public_key": MATRIX_KEY, "user": "rita"}, False),
    "keys.revoke": ("POST", "/api/v1/keys/revoke", {"fingerprint": "SHA256:" + "A" * 43, "user": "rita"}, False),
    "keys.allowed_signers": ("GET", "/api/v1/keys/allowed-signers", None, False),
    "signing.material": ("POST", "/api/v1/signing/material",
                         {"ids": ["{req}"], "verdict": "approve", "inputs": {"approved": True}}, False),
    "audit.evidence": ("GET", "/api/v1/audit/evidence/{req}", None, False),
}

# The expectation table for authenticated classes:      viewer other approver admin
EXPECTED_AUTHENTICATED = {
    "healthz":              (200, 200, 200, 200),
    "me":                   (200, 200, 200, 200),
    "approvals.list":       (200, 200, 200, 200),
    "approvals.ids":        (200, 200, 200, 200),
    "approvals.get":        (200, 403, 200, 200),
    "approvals.validate":   (200, 403, 200, 200),
    "approvals.approve":    (403, 403, 200, 200),
    "approvals.deny":       (403, 403, 200, 200),
    "approvals.cancel":     (403, 403, 403, 200),
    "approvals.bulk":       (200, 200, 200, 200),  # per-item outcomes: see BULK_OUTCOME
    "audit":                (200, 200, 200, 200),  # a role somewhere: own namespaces only
    "audit.verify":         (200, 200, 200, 200),  # a role somewhere: own namespaces only
    "audit.head":           (200, 200, 200, 200),  # a role somewhere: own namespaces only
    "flows.list":           (200, 200, 200, 200),
    "flows.get":            (200, 403, 200, 200),
    "flows.validate":       (200, 403, 200, 200),
    "flows.create":         (403, 403, 403, 201),  # editors and admins
    "flows.check":          (422, 422, 422, 422),  # anyone signed in; `tasks: []` is a problem
    "flows.update":         (403, 403, 403, 409),  # a folder flow is read-only through the API
    "flows.delete":         (403, 403, 403, 409),
    "flows.revisions":      (200, 403, 200, 200),
    "executions.start":     (403, 403, 403, 201),
    "executions.list":      (200, 200, 200, 200),
    "executions.get":       (200, 403, 200, 200),
    "executions.restart":   (403, 403, 403, 409),  # the requester or an admin; a paused one cannot
    "executions.replay":    (403, 403, 403, 409),
    "stats":                (200, 200, 200, 200),  # over the namespaces each may see
    "triggers.list":        (200, 200, 200, 200),
    "triggers.switch":      (403, 403, 403, 404),  # admins only; the payment flow has no trigger `nope`
    "kv.put":               (403, 403, 403, 200),
    "events":               (200, 200, 200, 200),
    "keys.list":            (200, 200, 200, 200),  # your own keys
    "keys.challenge":       (200, 200, 200, 200),
    "keys.add":             (403, 403, 403, 201),  # for someone else: admins only
    "keys.revoke":          (403, 403, 403, 404),  # someone else's: admins only (no such key here)
    "keys.allowed_signers": (200, 200, 200, 200),  # public keys: anyone with a role
    "signing.material":     (200, 200, 200, 200),  # per item: requests you may not see are `found: false`
    "audit.evidence":       (200, 403, 200, 200),
}
BULK_OUTCOME = {"viewer": "not_eligible", "other": "not_eligible", "approver": "decided", "admin": "decided"}


def expected(endpoint: str, cls: str) -> int:
    if cls in REASON:  # no valid token
        return 200 if endpoint == "healthz" else 401
    return EXPECTED_AUTHENTICATED[endpoint][("viewer", "other", "approver", "admin").index(cls)]


def test_the_table_covers_every_endpoint_of_the_api(server):
    with server.client("root-admin") as c:
        paths = c.get("/openapi.json").json()["paths"]
    documented = {(method.upper(), path) for path, ops in paths.items() for method in ops}
    covered = {(method, path.split("?")[0].replace("{req}", "{request_id}").replace("{exe}", "{execution_id}")
                .replace("company.finance/payment/nope/disable", "{namespace}/{flow_id}/{trigger_id}/{switch}")
                .replace("company.finance/payment", "{namespace}/{flow_id}")
                .replace("company.finance/limit", "{namespace}/{key}"))
               for method, path, _body, _fresh in ENDPOINTS.values()}
    assert documented == covered
    assert set(EXPECTED_AUTHENTICATED) == set(ENDPOINTS)


@pytest.fixture(scope="module")
def shared(server):
    execution = server.start_payment(1)
    return {"exe": execution, "req": server.wait_request(execution)}


def _head(server) -> int:
    with server.client("root-admin") as c:
        head = c.get("/api/v1/audit/head").json()
    return head["seq"] if head else 0


def _fill(value, ids):
    if isinstance(value, str):
        return value.format(**ids)
    if isinstance(value, list):
        return [_fill(v, ids) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    return value


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
def test_authorization_matrix(server, shared, endpoint, cls):
    method, path, body, fresh = ENDPOINTS[endpoint]
    ids = dict(shared)
    if fresh:
        ids["exe"] = server.start_payment(2)
        ids["req"] = server.wait_request(ids["exe"])
    address = fresh_address() if cls in REASON else None
    before = _head(server)
    with server.client(token=server.tokens[TOKEN[cls]] if TOKEN[cls] else None, address=address,
                       headers={"Accept": "application/json"}) as c:
        if isinstance(body, str):  # a flow's YAML text
            r = c.request(method, _fill(path, ids), content=body, headers={"Content-Type": "application/x-yaml"})
        else:
            r = c.request(method, _fill(path, ids), json=_fill(body, ids) if body is not None else None)
    want = expected(endpoint, cls)
    assert r.status_code == want, f"{method} {path} as {cls}: {r.status_code} {r.text}"

    if r.status_code >= 400:
        assert r.headers["content-type"].startswith("application/problem+json")
        problem = r.json()
        assert problem["status"] == want and problem["type"].startswith("https://signoff.dev/problems/")
        assert problem["title"] and problem["detail"]
    if fresh and r.status_code in (401, 403):  # a refusal changes nothing
        with server.client("root-admin") as c:
            assert c.get(f"/api/v1/approvals/{ids['req']}").json()["state"] == "PENDING"
    if endpoint == "approvals.bulk" and r.status_code == 200:
        [outcome] = r.json()["outcomes"]
        assert outcome["id"] == ids["req"] and outcome["outcome"] == BULK_OUTCOME[cls], outcome

    # every refusal is in the audit trail
    with server.client("root-admin") as c:
        if r.status_code == 401:
            events = c.get("/api/v1/audit", params={"q": "action:auth.failed", "limit": 20}).json()["items"]
            mine = [e for e in events if e["seq"] > before and e["data"]["client"] == address]
            assert len(mine) == 1, events[:3]
            assert mine[0]["actor"] == "anonymous" and mine[0]["data"]["reason"] == REASON[cls]
            assert mine[0]["data"]["count"] == 1
            assert "so_" not in str(mine[0])  # never the token
        refused = r.status_code == 403 or (endpoint == "approvals.bulk" and BULK_OUTCOME.get(cls) == "not_eligible")
        if refused:
            events = c.get("/api/v1/audit", params={"q": f"action:policy.denied actor:{USER[cls]}",
                                                    "limit": 5}).json()["items"]
            assert events and events[0]["seq"] > before, f"no policy.denied after seq {before}: {events[:1]}"
            assert events[0]["actor"] == USER[cls]
        if r.status_code < 400 and not refused:
            new = c.get("/api/v1/audit", params={"q": "action:policy.denied", "limit": 1}).json()["items"]
            assert not new or new[0]["seq"] <= before


def test_requester_may_cancel_what_she_started_but_not_decide(server):
    req = server.wait_request(server.start_payment(3))
    with server.client("rita") as c:
        r = c.post(f"/api/v1/approvals/{req}/approve", json={"inputs": {"approved": True}})
        assert r.status_code == 403 and r.json()["outcome"]["outcome"] == "not_eligible"
        r = c.post(f"/api/v1/approvals/{req}/cancel", json={"reason": "changed my mind"})
        assert r.status_code == 200 and r.json()["outcome"] == "cancelled"
        assert c.get(f"/api/v1/approvals/{req}").json()["state"] == "CANCELLED"


def test_four_eyes_refusal_is_403_and_audited(server):
    with server.client("root-admin") as c:
        r = c.post("/api/v1/executions", json={"namespace": "company.finance", "flow_id": "payment",
                                               "inputs": {"amount": 4}})
        assert r.status_code == 201
    req = server.wait_request(r.json()["id"])
    before = _head(server)
    with server.client("root-admin") as c:
        r = c.post(f"/api/v1/approvals/{req}/approve", json={"inputs": {"approved": True}})
        assert r.status_code == 403, r.text
        assert r.json()["outcome"]["outcome"] == "self_approval"
        events = c.get("/api/v1/audit", params={"q": "action:policy.denied actor:root-admin", "limit": 1}).json()
        assert events["items"][0]["seq"] > before and events["items"][0]["request_id"] == req


def test_audit_is_refused_to_an_identity_without_any_role(server):
    from tests.server.conftest import issue_token

    token = issue_token("nobody", server.env)
    before = _head(server)
    with server.client(token=token) as c:
        for path in ("/api/v1/audit", "/api/v1/audit/verify", "/api/v1/audit/head"):
            assert c.get(path).status_code == 403, path
        assert c.get("/api/v1/approvals").json()["items"] == []
        assert c.get("/api/v1/me").json()["roles"] == {}
    with server.client("root-admin") as c:
        events = c.get("/api/v1/audit", params={"q": "action:policy.denied actor:nobody", "limit": 10}).json()["items"]
    assert len([e for e in events if e["seq"] > before]) == 3


def test_audit_shows_an_approver_only_the_events_of_her_namespaces(server):
    server.start_restart()  # a company.ops event alice may not see
    with server.client("alice") as c:
        items = c.get("/api/v1/audit", params={"limit": 200}).json()["items"]
    assert items and all(e["namespace"] and e["namespace"].startswith("company.finance") for e in items)
