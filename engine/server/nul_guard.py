"""NUL (U+0000) in a URL is refused before any route runs (engine.nul has the rule).

Path segments and query parameters become ids, namespaces, keys, search queries and webhook
parameters; PostgreSQL cannot compare or store text with NUL while SQLite can, so a lookup by
``/api/v1/approvals/r%00`` would be a 404 on one store and a database error on the other.
One check here covers every route (the API, the webhooks and the web pages): a 422 problem
naming the query parameter, or ``path``. Request bodies are checked by the request models
(engine.server.models) and the web form handling (engine.server.web).
"""
from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Receive, Scope, Send

from signoff.engine.nul import MESSAGE, NUL
from signoff.engine.server.problems import problem_response


def url_errors(path: str, query: bytes) -> dict[str, str]:
    """field -> message for NUL in the (decoded) path or in a query parameter's name or value."""
    errors: dict[str, str] = {}
    if NUL in path:
        errors["path"] = f"the URL path {MESSAGE}"
    if b"%00" in query or b"\x00" in query:
        for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True, encoding="utf-8",
                                     errors="replace"):
            if NUL in name:
                errors["query"] = f"a query parameter name {MESSAGE}"
            elif NUL in value:
                errors[name] = f"{name}: {MESSAGE}"
    return errors


class NulInUrl:
    """ASGI middleware: a request whose URL holds NUL gets a 422 problem, and nothing runs."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            errors = url_errors(scope.get("path", ""), scope.get("query_string", b""))
            if errors:
                return await problem_response(422, "some values are not valid", errors=errors)(scope, receive, send)
        return await self.app(scope, receive, send)
