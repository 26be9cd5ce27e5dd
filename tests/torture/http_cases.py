"""The ``http`` cases of the bad input corpus: one request to a real `signoff serve`.

Header keys: ``method``, ``path`` (``{request}`` is the pending request), ``token`` (``alice``,
``none``, ``garbage``, ``revoked``, ``wrong-secret``, or ``raw:<Authorization header>``),
``content_type`` (default application/json), ``body_repeat`` ({"prefix", "fill", "times",
"suffix"}: a generated body, for sizes a file should not hold), ``chunked`` (send the body in
pieces without a Content-Length), then ``status`` and ``contains`` (fragments of the problem
JSON). The body after ``--- body`` is sent as is.

Checks: the status, an RFC 9457 problem body with the fragments, no traceback and no 5xx, the
server still healthy, nothing written. A failed authentication is recorded as an
``auth.failed`` audit event (security logging, on purpose): those are the only rows allowed
to appear.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.support import fresh_address
from tests.torture.support import db_snapshot


def _snapshot(world) -> dict[str, Any]:
    # the audit's full-text index tables mirror the audit rows, auth.failed ones included
    snap = {k: v for k, v in db_snapshot(world.data).items() if not k.startswith("audit_fts")}
    conn = __import__("sqlite3").connect(world.data / "signoff.db", timeout=30)
    try:
        snap["audit"] = conn.execute("SELECT count(*) FROM audit WHERE action != 'auth.failed'").fetchone()[0]
    finally:
        conn.close()
    return snap


def run_http_case(header: dict[str, Any], body: bytes, world) -> None:
    token = header.get("token", "alice")
    headers = {"Content-Type": header.get("content_type", "application/json")}
    if token.startswith("raw:"):
        headers["Authorization"] = token[4:]
    elif token != "none":
        value = {"alice": world.tokens["alice"]["token"], "revoked": world.tokens["revoked"]["token"],
                 "garbage": "so_notatoken", "wrong-secret": f"so_{world.tokens['alice']['id']}_{'A' * 43}"}[token]
        headers["Authorization"] = f"Bearer {value}"
    if "body_repeat" in header:
        spec = header["body_repeat"]
        body = spec.get("prefix", "").encode() + spec["fill"].encode() * spec["times"] + spec.get("suffix", "").encode()
    body = body.replace(b"{request}", world.request_id.encode())
    content: Any = body
    if header.get("chunked"):
        pieces = [body[i:i + 65536] for i in range(0, len(body), 65536)]
        content = iter(pieces)
    path = header["path"].replace("{request}", world.request_id)
    before = _snapshot(world)
    # failed authentications are slowed down per client address: each case uses its own
    transport = httpx.HTTPTransport(local_address=fresh_address())
    with httpx.Client(base_url=world.server.url, timeout=60, transport=transport) as client:
        response = client.request(header.get("method", "POST"), path, headers=headers,
                                  content=content if header.get("method", "POST") != "GET" else None)
    text = response.text
    assert "Traceback" not in text, text
    assert response.status_code == header["status"], f"{header.get('about')}: {response.status_code} {text[:2000]}"
    assert response.headers.get("content-type", "").startswith("application/problem+json"), response.headers
    problem = response.json()
    assert problem.get("status") == response.status_code and problem.get("title"), problem
    for fragment in header.get("contains", []):
        assert fragment in text, f"{header.get('about')}: `{fragment}` not in {text[:2000]}"
    assert httpx.get(world.server.url + "/healthz", timeout=30).status_code == 200
    after = _snapshot(world)
    changed = {k: (before.get(k), after.get(k)) for k in set(before) | set(after) if before.get(k) != after.get(k)}
    # a refused authentication is counted by the shared throttle (engine.server.throttle): that
    # one row is the refusal's record, not a change made by the bad input
    if response.status_code == 401 and "auth_failures" in changed:
        failures_before, failures_after = changed.pop("auth_failures")
        assert failures_after == (failures_before or 0) + 1, (failures_before, failures_after)
    assert not changed, f"{header.get('about')}: bad input changed the database: {changed}"
    assert "Traceback" not in world.server.log, world.server.log[-4000:]


def make_world(root: Path, flows: Path):
    """A server on a data directory with one pending request of torture.corpus.typed and tokens
    for alice and for a revoked user."""
    import json
    from types import SimpleNamespace

    from tests.torture.server_support import Serve, issue_token, revoke_token
    from tests.torture.support import signoff

    data = root / "data"
    r = signoff("run", "torture.corpus", "typed", "--json", data_dir=data, flows=flows)
    assert r.returncode == 0, r.stderr
    request_id = json.loads(r.stdout)["requests"][0]["id"]
    tokens = {"alice": issue_token(data, "alice"), "revoked": issue_token(data, "mallory")}
    revoke_token(data, tokens["revoked"]["id"])
    server = Serve(data, flows, root).start()
    return SimpleNamespace(data=data, request_id=request_id, tokens=tokens, server=server)
