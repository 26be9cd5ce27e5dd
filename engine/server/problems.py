"""Errors as RFC 9457 problem details (``application/problem+json``).

Every error the server sends has ``type`` (a URI under https://signoff.dev/problems/),
``title``, ``status`` and ``detail``; invalid values add ``errors`` (field -> message).
Nothing a client sends may produce a 500: engine errors map to 4xx here, request validation
to 422 (400 for a body that is not JSON), and only real server faults become a 500 (logged
with their traceback, never with the request body).
"""
from __future__ import annotations

import logging
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from signoff.engine.errors import Conflict, FlowLoadError, InvalidInputs, NotFound, Refused, SignoffError, StorageError

log = logging.getLogger("signoff.server")

MEDIA_TYPE = "application/problem+json"
BASE = "https://signoff.dev/problems/"

#: status -> (type slug, title)
KINDS: dict[int, tuple[str, str]] = {
    400: ("bad-request", "Bad request"),
    401: ("unauthorized", "Authentication required"),
    403: ("forbidden", "Forbidden"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    406: ("not-acceptable", "Not acceptable"),
    409: ("conflict", "Already decided"),
    413: ("payload-too-large", "Request body too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
    422: ("invalid-inputs", "Invalid inputs"),
    500: ("internal", "Internal server error"),
    503: ("unavailable", "Service unavailable"),
}


class ProblemError(Exception):
    """Raise anywhere in a request to answer with this problem."""

    def __init__(self, status: int, detail: str, *, title: str | None = None, slug: str | None = None,
                 errors: dict[str, str] | None = None, headers: dict[str, str] | None = None,
                 extra: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.title = title
        self.slug = slug
        self.errors = errors
        self.headers = headers
        self.extra = extra


def problem_body(status: int, detail: str, *, title: str | None = None, slug: str | None = None,
                 errors: dict[str, str] | None = None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    default_slug, default_title = KINDS.get(status, (None, None))
    slug = slug or default_slug
    body: dict[str, Any] = {
        "type": BASE + slug if slug else "about:blank",
        "title": title or default_title or "Error",
        "status": status,
        "detail": detail,
    }
    if errors is not None:
        body["errors"] = errors
    if extra:
        body.update(extra)
    return body


def problem_response(status: int, detail: str, *, headers: dict[str, str] | None = None, **kw: Any) -> JSONResponse:
    return JSONResponse(problem_body(status, detail, **kw), status_code=status, headers=headers,
                        media_type=MEDIA_TYPE)


def from_error(exc: SignoffError) -> JSONResponse:
    """The problem for an engine error."""
    if isinstance(exc, InvalidInputs):
        return problem_response(422, "some values are not valid", errors=exc.errors)
    if isinstance(exc, FlowLoadError):
        return problem_response(422, exc.message, extra={"problems": [
            {"line": p.location.line, "col": p.location.col, "message": p.message} for p in exc.problems]})
    if isinstance(exc, NotFound):
        return problem_response(404, exc.message)
    if isinstance(exc, Refused):
        return problem_response(403, exc.message)
    if isinstance(exc, Conflict):
        return problem_response(409, exc.message, title="Conflict")
    if isinstance(exc, StorageError):
        log.error("storage error: %s", exc.message)
        return problem_response(503, "the server cannot use its database right now; try again later",
                                slug="storage")
    return problem_response(400, exc.message)  # a UsageError or another engine refusal


def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header", "cookie") and len(parts) > 1:
        parts = parts[1:]
    return ".".join(parts) or "body"


def _clean(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def validation_errors(exc: RequestValidationError) -> dict[str, str]:
    errors: dict[str, str] = {}
    for err in exc.errors():
        key = _field(err.get("loc", ()))
        message = _clean(str(err.get("msg", "invalid value")))
        errors[key] = f"{errors[key]}; {message}" if key in errors else message
    return errors


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route accepts at this path (Starlette names only the first route's).
    The app lists its routes in ``app.state.plain_routes`` (FastAPI nests included routers)."""
    path = request.scope.get("path", "")
    literal: set[str] = set()
    templated: set[str] = set()
    for route in getattr(request.app.state, "plain_routes", ()):
        regex = getattr(route, "path_regex", None)
        if regex is not None and regex.match(path):
            (templated if getattr(route, "param_convertors", None) else literal).update(
                getattr(route, "methods", None) or ())
    # a literal path (/approvals/bulk) is its own resource, not an id of /approvals/{id}
    return sorted(literal or templated)


def install(app: FastAPI) -> None:
    """Register the handlers that turn every error into a problem response."""

    @app.exception_handler(ProblemError)
    async def _problem(_request: Request, exc: ProblemError) -> JSONResponse:
        return problem_response(exc.status, exc.detail, title=exc.title, slug=exc.slug, errors=exc.errors,
                                headers=exc.headers, extra=exc.extra)

    @app.exception_handler(SignoffError)
    async def _signoff(_request: Request, exc: SignoffError) -> JSONResponse:
        return from_error(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errs = exc.errors()
        hook = getattr(request.app.state, "on_validation_error", None)
        if hook is not None:
            await anyio.to_thread.run_sync(hook, request, list(errs))
        bad_json = [e for e in errs if e.get("type") == "json_invalid"]
        if bad_json:
            ctx = bad_json[0].get("ctx") or {}
            reason = ctx.get("error") if isinstance(ctx, dict) else None
            return problem_response(400, f"the body is not valid JSON{': ' + _clean(str(reason)) if reason else ''}",
                                    slug="malformed-json", title="Malformed JSON")
        return problem_response(422, "some values are not valid", errors=validation_errors(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else KINDS.get(exc.status_code, ("", "Error"))[1]
        if exc.status_code == 400 and detail == "There was an error parsing the body":
            return problem_response(400, "the body could not be read as JSON", slug="malformed-json",
                                    title="Malformed JSON")
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(_allowed_methods(request))
        return problem_response(exc.status_code, detail, headers=headers or None)

    @app.exception_handler(UnicodeError)
    async def _unicode(_request: Request, exc: UnicodeError) -> JSONResponse:
        return problem_response(400, "the request holds text that is not valid Unicode")

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return problem_response(500, "unexpected server error; it was logged on the server")
