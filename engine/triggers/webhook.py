"""Webhook triggers: ``/api/v1/executions/webhook/{namespace}/{flowId}/{key}`` starts the flow.

The key in the URL is the only secret (Kestra's design), compared in constant time. A wrong
key, an unknown flow and a disabled trigger all answer the same 404, so the endpoint says
nothing about which flows exist; the server counts a wrong key like a failed authentication
(slowed down and audited as ``auth.failed``). The request's body (parsed when it is JSON),
headers and query parameters become ``trigger.body``, ``trigger.headers`` and
``trigger.parameters`` (headers and parameters map a name to its list of values, as in
Kestra); ``Authorization`` and ``Cookie`` headers are not kept. A request holding NUL (U+0000)
in its body (a byte, or a JSON escape), a header or a parameter is refused once its key is
known to be right (engine.nul; a URL holding NUL is refused before, by engine.server.nul_guard):
nothing starts, and the caller gets a 422 naming the place.
"""
from __future__ import annotations

import hmac
from typing import Any

from signoff.engine.errors import NotFound
from signoff.engine.flows.trigger_parse import WEBHOOK
from signoff.engine.nul import refuse_nul
from signoff.engine.triggers.start import start_in_tx

NOT_FOUND = "no webhook at this address"
DROPPED_HEADERS = {"authorization", "cookie", "proxy-authorization"}


def fire_webhook(engine: Any, namespace: str, flow_id: str, key: str, variables: dict[str, Any]) -> str:
    flow = engine.flows.current.get((namespace, flow_id))
    found = None
    for trigger in flow.triggers if flow is not None else ():
        if trigger.type == WEBHOOK and hmac.compare_digest(str(trigger.props["key"]).encode(), key.encode()):
            found = trigger
    if flow is None or found is None or found.disabled or flow.disabled:
        raise NotFound(NOT_FOUND)
    with engine.db.foreground(), engine.db.write() as tx:
        row = tx.execute("SELECT disabled FROM triggers WHERE namespace=? AND flow_id=? AND trigger_id=?",
                         (namespace, flow_id, found.id)).fetchone()
        if row is not None and row[0]:
            raise NotFound(NOT_FOUND)
        refuse_nul(**variables)  # only now: a wrong key or a disabled trigger is the same 404 whatever the body holds
        execution_id: str = start_in_tx(engine, tx, flow, found, variables, engine.now())
    return execution_id


def request_variables(body: bytes, content_type: str, headers: list[tuple[str, str]],
                      params: list[tuple[str, str]]) -> dict[str, Any]:
    """``trigger.body`` / ``headers`` / ``parameters`` from an HTTP request."""
    import json

    text = body.decode("utf-8", errors="replace")
    parsed: Any = text if body else None
    if body and "json" in content_type.lower():
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = text
    header_map: dict[str, list[str]] = {}
    for name, value in headers:
        if name.lower() not in DROPPED_HEADERS:
            header_map.setdefault(name.lower(), []).append(value)
    param_map: dict[str, list[str]] = {}
    for name, value in params:
        param_map.setdefault(name, []).append(value)
    return {"body": parsed, "headers": header_map, "parameters": param_map}
