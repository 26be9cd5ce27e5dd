"""The HTTP API of `signoff serve`: a thin mapping of engine.service.ApprovalService.

Every endpoint under /api/v1 needs a bearer token (engine.server.auth); the identity it gives
is passed to the service, which enforces the policy. Service calls block on SQLite, so the
endpoints are plain ``def`` functions (FastAPI runs them in its thread pool). Errors are
RFC 9457 problems (engine.server.problems). Lists answer ``{"items": [...], "next_cursor"}``.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import threading
import time
from collections.abc import AsyncIterator
from typing import Any, Literal

import anyio
from fastapi import APIRouter, Depends, FastAPI, Header, Path, Query, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from signoff.engine.approvals import outcome as oc
from signoff.engine.approvals.outcome import Outcome
from signoff.engine.approvals.rows import pending_sort_key
from signoff.engine.audit.actions import CHANGE_ACTIONS
from signoff.engine.errors import SignoffError, log_failure
from signoff.engine.identity import Identity
from signoff.engine.server import models as m
from signoff.engine.server.auth import Authenticator
from signoff.engine.server.nul_guard import NulInUrl
from signoff.engine.server.peer import peer_of
from signoff.engine.server.problems import KINDS, MEDIA_TYPE, ProblemError, install, problem_response
from signoff.engine.service import ApprovalService

log = logging.getLogger("signoff.server")

API = "/api/v1"
#: largest request body accepted (bytes)
MAX_BODY = 1024 * 1024
#: largest body of a start (or its input check): FILE inputs travel in it as base64
#: (engine.inputs.uploads.MAX_FILE_BYTES each)
MAX_START_BODY = 16 * 1024 * 1024
_START_PATHS = re.compile(rf"^{API}/(?:executions|flows/[^/]+/[^/]+/validate)/?$")
#: audit actions sent on /api/v1/events: those after which a request may have entered or
#: left the pending list (the console's live updates)
EVENT_ACTIONS = CHANGE_ACTIONS

KEEPALIVE_S = 15.0
EVENT_POLL_S = 0.25
ExecutionState = Literal["CREATED", "QUEUED", "RESTARTED", "RUNNING", "PAUSED", "SUCCESS", "WARNING", "FAILED",
                         "KILLED", "CANCELLED"]

#: unsuccessful single decision outcome -> (HTTP status, problem type slug, title); the
#: successful ones (outcome.SUCCESSFUL) answer 200
DECISION_PROBLEMS: dict[str, tuple[int, str, str]] = {
    oc.ALREADY_DECIDED: (409, "already-decided", "Already decided"),
    oc.NOT_ELIGIBLE: (403, "not-eligible", "Not eligible"),
    oc.SELF_APPROVAL: (403, "self-approval", "Self-approval refused (four-eyes)"),
    oc.INVALID_INPUTS: (422, *KINDS[422]),
    oc.NOT_FOUND: (404, *KINDS[404]),
    oc.SIGNATURE_REQUIRED: (403, "signature-required", "Signed decision required"),
    oc.BAD_SIGNATURE: (422, "bad-signature", "Signature refused"),
}


# -- request body limit ------------------------------------------------------------------


class BodyLimit:
    """Refuse bodies over ``limit`` bytes with a 413 problem: by Content-Length up front, and
    by counting the bytes of a streamed (chunked) body as they arrive. Starting a flow may
    carry uploaded FILE inputs, so its limit is ``MAX_START_BODY``."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY) -> None:
        self.app = app
        self.default_limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = scope.get("method") == "POST" and _START_PATHS.match(scope.get("path", "")) is not None
        limit = max(self.default_limit, MAX_START_BODY) if start else self.default_limit
        declared = None
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
        if declared is not None and (declared < 0 or declared > limit):
            status = 413 if declared > limit else 400
            detail = (f"the request body is larger than {limit} bytes" if status == 413
                      else "the Content-Length header is not a number")
            return await problem_response(status, detail)(scope, receive, send)
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    from fastapi import HTTPException

                    raise HTTPException(413, f"the request body is larger than {limit} bytes")
            return message

        return await self.app(scope, counted, send)


# -- helpers -----------------------------------------------------------------------------


def _origin(request: Request) -> str:
    """Where a decision came from, for the audit: ``socket uid=N`` on the local socket (the
    kernel's word), ``http <client address>`` on TCP."""
    peer = peer_of(request.scope)
    if peer is not None:
        return peer.origin
    return f"http {request.client.host}" if request.client else "http"


#: body fields that would name who acts; the bodies do not have them (extra fields are
#: refused), and on the local socket sending one is audited as an attempt to act as someone else
IDENTITY_FIELDS = frozenset({"by", "actor", "user", "username", "identity", "as", "as_user", "on_behalf_of",
                             "requested_by", "started_by", "approver", "uid", "decided_by"})


def _signatures(signed: dict[str, m.SignedIn] | None,
                batches: list[m.SignedIn] | None = None) -> dict[str, dict[str, str]] | None:
    """request id -> {statement, signature}; a batch statement serves every request it lists."""
    from signoff.engine.signing.statement import StatementError, index, parse

    out = {k: v.model_dump() for k, v in (signed or {}).items()}
    for batch in batches or []:
        try:
            named = index(parse(batch.statement))
        except StatementError as exc:
            raise ProblemError(422, f"a signed bulk statement is not valid: {exc}", slug="bad-signature",
                               title="Signature refused") from None
        shared = batch.model_dump()
        for request_id in named:
            out.setdefault(request_id, shared)
    return out or None


def _one_signature(request_id: str, signed: m.SignedIn | None) -> dict[str, dict[str, str]] | None:
    return {request_id: signed.model_dump()} if signed is not None else None


def _outcome_response(result: Outcome) -> JSONResponse:
    """One decision's outcome as its HTTP answer: 200 with the outcome, or a problem."""
    body = result.to_dict()
    if result.ok:
        return JSONResponse(body)
    kind = DECISION_PROBLEMS.get(result.outcome)
    if kind is None:  # "error": an unexpected failure while deciding - a server fault
        log.error("decision on %s failed: %s", result.id, result.message)
        return problem_response(500, "the decision could not be recorded; it was logged on the server",
                                extra={"outcome": body})
    status, slug, title = kind
    return problem_response(status, result.message, slug=slug, title=title,
                            errors=result.errors if result.outcome == oc.INVALID_INPUTS else None,
                            extra={"outcome": body})


# -- OpenAPI -----------------------------------------------------------------------------

_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
_ERROR_TEXT = {
    400: "Malformed request (e.g. a body that is not JSON, a bad cursor or query)",
    401: "No valid bearer token",
    403: "The policy does not allow this",
    404: "Unknown id",
    409: "Already decided, or a state that does not allow the operation (restart, a folder flow)",
    413: "Request body over 1 MiB",
    422: "Invalid values (per-field `errors`)",
    500: "Unexpected server fault",
    503: "The database is unavailable",
}


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's schema with problem responses, bearer security, and the models only
    hand-written response docs refer to (Problem, ChangePage, Change); built once."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    for model in (m.Problem, m.ChangePage, m.Change):
        if model.__name__ not in schemas:
            definition = model.model_json_schema(ref_template="#/components/schemas/{model}")
            for name, sub in definition.pop("$defs", {}).items():
                schemas.setdefault(name, sub)
            schemas[model.__name__] = definition
    components["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "so_<id>_<secret>",
                                                "description": "A token from `signoff token issue USER`"}}
    for path, item in schema.get("paths", {}).items():
        for method, op in item.items():
            if not isinstance(op, dict) or "responses" not in op:
                continue
            statuses = [400, 413, 422, 500, 503]
            if path.startswith(API):
                op["security"] = [{"bearer": []}]
                statuses += [401, 403, 404]
                if method == "post" and path.endswith(("/approve", "/deny", "/cancel")):
                    statuses.append(409)
                elif path.endswith(("/restart", "/replay")) or (path.startswith(f"{API}/flows")
                                                                and method in ("post", "put", "delete")):
                    statuses.append(409)  # a state that does not allow it / a folder flow
            for status in statuses:
                op["responses"][str(status)] = {"description": _ERROR_TEXT[status],
                                                "content": {MEDIA_TYPE: {"schema": _PROBLEM_REF}}}
    app.openapi_schema = schema
    return schema


def _ok(model: object, description: str = "OK", status: int = 200) -> dict[int | str, Any]:
    return {status: {"model": model, "description": description}}


# -- the app -----------------------------------------------------------------------------


def create_app(service: ApprovalService, *, single_user: bool) -> FastAPI:
    """The ASGI app over ``service`` (an ApprovalService, normally with ``run_inline=False``);
    while it runs, a thread runs the executions and timers (engine.server.runner).

    ``single_user``: the service's policy allows everything to every valid token holder; it
    must be said explicitly, so a server never runs without a policy by accident.
    """
    from signoff.engine.policy import SingleUserPolicy
    from signoff.engine.server.head import HeadWatcher
    from signoff.engine.server.runner import Runner

    policy = service.engine.policy
    if not single_user and isinstance(policy, SingleUserPolicy):
        raise ValueError("no policy: give the engine a policy file, or create the app with single_user=True")
    auth = Authenticator(service, clock=service.engine.clock)
    stopping = threading.Event()
    runner = Runner(service)
    #: the audit head and the newest events, followed once for every feed of this process
    head = HeadWatcher(service.engine.db, EVENT_ACTIONS, poll_s=EVENT_POLL_S)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        from signoff.engine.server.warmup import preload

        await anyio.to_thread.run_sync(preload)  # before the first request, not inside it
        runner.start()
        await anyio.to_thread.run_sync(head.start)

        async def flush_failures() -> None:
            while True:
                await asyncio.sleep(5)
                await anyio.to_thread.run_sync(auth.flush)

        flusher = asyncio.create_task(flush_failures())
        try:
            yield
        finally:
            stopping.set()
            flusher.cancel()
            with contextlib.suppress(BaseException):
                await flusher
            await anyio.to_thread.run_sync(lambda: auth.flush(force=True))
            await anyio.to_thread.run_sync(runner.stop)
            await anyio.to_thread.run_sync(head.stop)

    app = FastAPI(title="signoff", version=_version(), lifespan=lifespan,
                  description="Human approvals for automated workflows. Every /api/v1 call over TCP needs "
                              "`Authorization: Bearer <token>` (tokens: `signoff token issue USER`); on the "
                              "local Unix socket the caller is the connecting account and a token is refused. "
                              "Errors are RFC 9457 problem details.",
                  docs_url=None, redoc_url=None)
    app.state.stopping = stopping
    app.state.head = head

    def identity_fields_refused(request: Request, errors: list[dict[str, Any]]) -> None:
        names = sorted({str(e["loc"][-1]) for e in errors if e.get("type") == "extra_forbidden" and e.get("loc")
                        and str(e["loc"][-1]) in IDENTITY_FIELDS})
        if names:
            auth.refused_on_socket(request, "identity_field", {"fields": names, "path": request.url.path})

    app.state.on_validation_error = identity_fields_refused
    install(app)
    app.add_middleware(BodyLimit)
    app.add_middleware(NulInUrl)  # outermost: a URL with NUL reaches no route (engine.server.nul_guard)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]  # FastAPI's documented way to extend the schema

    me_dep = Depends(auth)
    router = APIRouter(prefix=API)

    # -- health ----------------------------------------------------------------------------
    @app.get("/healthz", tags=["health"], responses=_ok(m.Health), response_model=None,
             summary="Liveness and schema version (no token needed)")
    def healthz() -> Any:
        try:
            version = service.db.schema_version()
        except SignoffError as exc:  # a known state (database restarting): one line, no traceback
            log.warning("health check: database unavailable: %s", exc)
            return problem_response(503, "the database is unavailable")
        return {"status": "ok", "schema": version}

    # -- identity ------------------------------------------------------------------------
    @router.get("/me", tags=["identity"], responses=_ok(m.Me), response_model=None,
                summary="Who the token belongs to: name, groups, roles by namespace")
    def me(identity: Identity = me_dep) -> Any:
        return service.engine.policy.describe(identity)

    # -- approvals -----------------------------------------------------------------------
    @router.get("/approvals", tags=["approvals"], responses=_ok(m.RequestPage), response_model=None,
                summary="Pending requests you may see (soonest due first), or the requests named by `ids`")
    def list_approvals(
        identity: Identity = me_dep,
        status: Literal["pending"] = Query("pending", description="Only pending requests are listed"),
        q: str | None = Query(None, max_length=500, description="Text in summary, flow, namespace or requester"),
        namespace: str | None = Query(None, max_length=500, description="A namespace; a trailing * matches a prefix"),
        flow: str | None = Query(None, max_length=500, description="A flow id"),
        limit: int = Query(100, ge=1, le=1000),
        cursor: str | None = Query(None, pattern=r"^[A-Za-z0-9._-]{1,200}$",
                                   description="`next_cursor` of the previous page"),
        ids: str | None = Query(None, max_length=20_000,
                                description="Comma-separated request ids: their summaries in any state (no paging)"),
    ) -> Any:
        if ids is not None:
            wanted = [i.strip() for i in ids.split(",") if i.strip()]
            if len(wanted) > 1000:
                raise ProblemError(422, "too many ids", errors={"ids": "at most 1000 ids per call"})
            return {"items": service.request_summaries(identity, wanted), "next_cursor": None}
        items = service.list_pending(identity, namespace=namespace, flow=flow, q=q)
        if cursor is not None:
            found = service.request_summaries(identity, [cursor])
            if not found:
                raise ProblemError(404, "`cursor` names no request you may see; start again without it",
                                   slug="unknown-cursor", title="Unknown cursor")
            after = pending_sort_key(found[0])
            items = [i for i in items if pending_sort_key(i) > after]
        page = items[:limit]
        more = len(items) > limit
        return {"items": page, "next_cursor": page[-1]["id"] if more and page else None}

    @router.post("/approvals/bulk", tags=["approvals"], responses=_ok(m.BulkResult), response_model=None,
                 summary="Approve or deny many requests; one outcome per id, in order (each item atomic)")
    def bulk(body: m.BulkBody, request: Request, identity: Identity = me_dep) -> Any:
        outcomes = service.decide(identity, body.ids, body.verdict, inputs=body.inputs, reason=body.reason,
                                  idempotency_key=body.idempotency_key, origin=_origin(request),
                                  signatures=_signatures(body.signatures, body.batches))
        # performance: the answer as it is (plain JSON types), without FastAPI's generic
        # jsonable_encoder walk (~25 us per outcome: a quarter second for a 10,000-item bulk)
        return JSONResponse({"outcomes": [o.to_dict() for o in outcomes]})

    RequestId = Path(..., max_length=200, description="An approval request id")

    @router.get("/approvals/{request_id}", tags=["approvals"], responses=_ok(m.RequestDetail), response_model=None,
                summary="One request with its context, form and decisions")
    def get_approval(request_id: str = RequestId, identity: Identity = me_dep) -> Any:
        return service.get_request(identity, request_id)

    @router.post("/approvals/{request_id}/validate", tags=["approvals"], responses=_ok(m.Errors),
                 response_model=None, summary="Check form values without deciding (per-field errors)")
    def validate(body: m.ValidateBody, request_id: str = RequestId, identity: Identity = me_dep) -> Any:
        return {"errors": service.validate(identity, request_id, body.inputs)}

    @router.post("/approvals/{request_id}/approve", tags=["approvals"], responses=_ok(m.OutcomeOut),
                 response_model=None, summary="Approve with form values")
    def approve(body: m.ApproveBody, request: Request, request_id: str = RequestId,
                identity: Identity = me_dep) -> Any:
        [result] = service.decide(identity, [request_id], "approve", inputs=body.inputs, reason=body.reason,
                                  idempotency_key=body.idempotency_key, origin=_origin(request),
                                  signatures=_one_signature(request_id, body.signature))
        return _outcome_response(result)

    @router.post("/approvals/{request_id}/deny", tags=["approvals"], responses=_ok(m.OutcomeOut),
                 response_model=None, summary="Deny (the execution is killed unless the task says otherwise)")
    def deny(body: m.DenyBody, request: Request, request_id: str = RequestId, identity: Identity = me_dep) -> Any:
        [result] = service.decide(identity, [request_id], "deny", reason=body.reason,
                                  idempotency_key=body.idempotency_key, origin=_origin(request),
                                  signatures=_one_signature(request_id, body.signature))
        return _outcome_response(result)

    @router.post("/approvals/{request_id}/cancel", tags=["approvals"], responses=_ok(m.OutcomeOut),
                 response_model=None, summary="Cancel a pending request (its requester or an admin)")
    def cancel(body: m.CancelBody, request: Request, request_id: str = RequestId,
               identity: Identity = me_dep) -> Any:
        [result] = service.cancel(identity, [request_id], body.reason, origin=_origin(request),
                                  signatures=_one_signature(request_id, body.signature))
        return _outcome_response(result)

    # -- signed decisions: keys and signing material (engine.signing) ----------------------
    @router.get("/keys", tags=["keys"], responses=_ok(m.KeyPage), response_model=None,
                summary="Your SSH keys for signing decisions (`user`: someone's; `all`: everyone's)")
    def list_keys(identity: Identity = me_dep, user: str | None = Query(None, max_length=128),
                  all_users: bool = Query(False, alias="all", description="Every user's keys")) -> Any:
        return {"items": service.list_keys(identity, user, all_users)}

    @router.post("/keys/challenge", tags=["keys"], responses=_ok(m.Challenge), response_model=None,
                 summary="A fresh, single-use nonce to sign when registering a key (proof of possession)")
    def key_challenge(identity: Identity = me_dep) -> Any:
        return service.key_challenge(identity)

    @router.post("/keys", tags=["keys"], status_code=201, responses={201: {"model": m.KeyOut}},
                 response_model=None, summary="Register a key: yours with proof of possession, or (admins) "
                                              "someone else's")
    def add_key(body: m.KeyBody, identity: Identity = me_dep) -> Any:
        return JSONResponse(service.add_key(identity, body.public_key, nonce=body.nonce, signature=body.signature,
                                            user=body.user), status_code=201)

    @router.post("/keys/revoke", tags=["keys"], responses=_ok(m.KeyOut), response_model=None,
                 summary="Revoke a key from now on (dated; old signatures stay verifiable)")
    def revoke_key(body: m.RevokeBody, identity: Identity = me_dep) -> Any:
        return service.revoke_key(identity, body.fingerprint, body.user)

    @router.get("/keys/allowed-signers", tags=["keys"], response_model=None,
                responses={200: {"content": {"text/plain": {}}, "description": "OpenSSH allowed_signers file"}},
                summary="Every registered key as an OpenSSH allowed_signers file, with validity dates")
    def allowed_signers(identity: Identity = me_dep, user: str | None = Query(None, max_length=128)) -> Any:
        from fastapi.responses import PlainTextResponse

        return PlainTextResponse(service.allowed_signers(identity, user))

    @router.post("/signing/material", tags=["keys"], responses=_ok(m.Material), response_model=None,
                 summary="What a client needs to sign a decision on these requests (nonce, context hashes, "
                         "validated form values)")
    def signing_material(body: m.MaterialBody, identity: Identity = me_dep) -> Any:
        return service.signing_material(identity, body.ids, body.verdict, body.inputs)

    @router.get("/audit/evidence/{request_id}", tags=["audit"], responses=_ok(m.Evidence), response_model=None,
                summary="One request's decisions as evidence checkable with OpenSSH alone")
    def audit_evidence(request_id: str = RequestId, identity: Identity = me_dep) -> Any:
        return service.audit_evidence(identity, request_id)

    # -- audit ---------------------------------------------------------------------------
    @router.get("/audit", tags=["audit"], responses=_ok(m.AuditPage), response_model=None,
                summary="Search the audit trail, newest first (the `signoff history` query syntax)")
    def audit(identity: Identity = me_dep,
              q: str | None = Query(None, max_length=2000, description="e.g. `actor:alice action:request.*`"),
              limit: int = Query(50, ge=1, le=1000),
              cursor: str | None = Query(None, pattern=r"^[1-9][0-9]{0,17}$",
                                         description="`next_cursor` of the previous page")) -> Any:
        before = int(cursor) if cursor is not None else None
        items = service.history(identity, q, limit=limit, before_seq=before)
        return {"items": items, "next_cursor": str(items[-1]["seq"]) if len(items) == limit else None}

    @router.get("/audit/verify", tags=["audit"], responses=_ok(m.VerifyResult), response_model=None,
                summary="Verify the whole hash chain")
    def audit_verify(identity: Identity = me_dep,
                     head: str | None = Query(None, max_length=100, pattern=r"^[0-9]{1,18}:[0-9a-f]{64}$",
                                              description="A head kept elsewhere, SEQ:HASH (`signoff audit head`)"),
                     ) -> Any:
        expect = None
        if head:
            seq, _, digest = head.partition(":")
            expect = (int(seq), digest)
        return service.verify_audit(identity, expect_head=expect)

    @router.get("/audit/head", tags=["audit"], responses=_ok(m.AuditHead | None), response_model=None,
                summary="Sequence and hash of the newest event (null when the trail is empty)")
    def audit_head(identity: Identity = me_dep) -> Any:
        return service.audit_head(identity)

    # -- flows ---------------------------------------------------------------------------
    @router.get("/flows", tags=["flows"], responses=_ok(m.FlowPage), response_model=None,
                summary="Flows you may see; `problems` lists flow files that do not load (admins only)")
    def flows(identity: Identity = me_dep) -> Any:
        items = service.list_flows(identity)
        problems = service.flow_problems() if service.engine.policy.allows(identity, "admin", "*") else []
        return {"items": items, "next_cursor": None, "problems": problems}

    Namespace = Path(..., max_length=500)
    FlowId = Path(..., max_length=500)

    @router.get("/flows/{namespace}/{flow_id}", tags=["flows"], responses=_ok(m.FlowDetail), response_model=None,
                summary="One flow with its source (the current one, or ?revision=N)")
    def get_flow(namespace: str = Namespace, flow_id: str = FlowId, identity: Identity = me_dep,
                 revision: int | None = Query(None, ge=1, le=2**31)) -> Any:
        return service.get_flow(identity, namespace, flow_id, revision=revision)

    yaml_body = {"requestBody": {"required": True, "description": "The flow's YAML text",
                                 "content": {"application/x-yaml": {"schema": {"type": "string"}}}}}

    async def _yaml_text(request: Request) -> str:
        try:
            return (await request.body()).decode("utf-8")
        except UnicodeDecodeError:
            raise ProblemError(400, "the flow text is not UTF-8") from None

    @router.post("/flows", tags=["flows"], status_code=201, responses=_ok(m.FlowDetail, "Created", 201),
                 response_model=None, openapi_extra=yaml_body,
                 summary="Create a flow from its YAML (an editor or admin of its namespace; audited)")
    async def create_flow(request: Request, identity: Identity = me_dep) -> Any:
        text = await _yaml_text(request)
        flow = await anyio.to_thread.run_sync(lambda: service.save_flow(identity, text, mode="create"))
        return JSONResponse(flow, status_code=201)

    @router.post("/flows/validate", tags=["flows"], responses=_ok(m.FlowProblems), response_model=None,
                 openapi_extra=yaml_body, summary="Every problem of a flow's YAML with line and column (422 if any)")
    async def validate_flow_text(request: Request, identity: Identity = me_dep) -> Any:
        problems = await anyio.to_thread.run_sync(service.check_flow_text, await _yaml_text(request))
        if problems:
            return problem_response(422, "; ".join(f"{p['line']}:{p['col']}: {p['message']}" for p in problems),
                                    extra={"problems": problems})
        return {"valid": True, "problems": []}

    @router.put("/flows/{namespace}/{flow_id}", tags=["flows"], responses=_ok(m.FlowDetail), response_model=None,
                openapi_extra=yaml_body, summary="A new revision of a flow made through the API (editor or admin)")
    async def update_flow(request: Request, namespace: str = Namespace, flow_id: str = FlowId,
                          identity: Identity = me_dep) -> Any:
        text = await _yaml_text(request)
        return await anyio.to_thread.run_sync(
            lambda: service.save_flow(identity, text, mode="update", target=(namespace, flow_id)))

    @router.delete("/flows/{namespace}/{flow_id}", tags=["flows"], responses=_ok(m.FlowDeleted),
                   response_model=None, summary="Delete a flow made through the API (its executions keep their "
                                                "revision; editor or admin)")
    def delete_flow(namespace: str = Namespace, flow_id: str = FlowId, identity: Identity = me_dep) -> Any:
        return service.delete_flow(identity, namespace, flow_id)

    @router.get("/flows/{namespace}/{flow_id}/revisions", tags=["flows"], responses=_ok(m.RevisionPage),
                response_model=None, summary="Every recorded revision of a flow, oldest first")
    def flow_revisions(namespace: str = Namespace, flow_id: str = FlowId, identity: Identity = me_dep) -> Any:
        return {"items": service.flow_revisions(identity, namespace, flow_id)}

    @router.post("/flows/{namespace}/{flow_id}/validate", tags=["flows"], responses=_ok(m.Errors),
                 response_model=None, summary="Check flow inputs without starting (per-field errors)")
    def validate_flow(body: m.ValidateBody, namespace: str = Namespace, flow_id: str = FlowId,
                      identity: Identity = me_dep) -> Any:
        return {"errors": service.check_flow_inputs(identity, namespace, flow_id, body.inputs)}

    # -- executions ----------------------------------------------------------------------
    @router.post("/executions", tags=["executions"], status_code=201,
                 responses=_ok(m.ExecutionDetail, "Started", 201), response_model=None,
                 summary="Start an execution (it runs in the background)")
    def start(body: m.StartBody, identity: Identity = me_dep) -> Any:
        execution = service.start_execution(identity, body.namespace, body.flow_id, body.inputs)
        return JSONResponse(execution, status_code=201)

    StateFilter = Query(None, description="Only executions in this state")

    @router.get("/executions", tags=["executions"], responses=_ok(m.ExecutionPage), response_model=None,
                summary="Recent executions you may see, newest first")
    def list_executions(identity: Identity = me_dep, state: ExecutionState | None = StateFilter,
                        limit: int = Query(100, ge=1, le=1000)) -> Any:
        items = service.list_executions(identity, state=state, limit=limit)
        return {"items": items, "next_cursor": None}

    @router.get("/executions/{execution_id}", tags=["executions"], responses=_ok(m.ExecutionDetail),
                response_model=None, summary="State, inputs, task runs, outputs, logs and requests")
    def get_execution(execution_id: str = Path(..., max_length=200), identity: Identity = me_dep) -> Any:
        return service.get_execution(identity, execution_id)

    @router.post("/executions/{execution_id}/restart", tags=["executions"], responses=_ok(m.ExecutionDetail),
                 response_model=None, summary="Continue a FAILED or KILLED execution from its failed tasks "
                                              "(decisions are kept; the requester or an admin)")
    def restart(execution_id: str = Path(..., max_length=200), identity: Identity = me_dep) -> Any:
        return service.restart_execution(identity, execution_id)

    @router.post("/executions/{execution_id}/replay", tags=["executions"], status_code=201,
                 responses=_ok(m.ExecutionDetail, "Started", 201), response_model=None,
                 summary="Start a new execution copying this one up to a task (the requester or an admin)")
    def replay(body: m.ReplayBody, execution_id: str = Path(..., max_length=200),
               identity: Identity = me_dep) -> Any:
        execution = service.replay_execution(identity, execution_id, from_task=body.from_task,
                                             revision=body.revision)
        return JSONResponse(execution, status_code=201)

    # -- insights ------------------------------------------------------------------------
    @router.get("/stats", tags=["insights"], responses=_ok(m.Stats), response_model=None,
                summary="Approval statistics per flow, approver and day (namespaces you may see)")
    def stats(identity: Identity = me_dep, since: str = Query("30d", max_length=100,
                                                              description="An age (30d, 24h, PT1H), a date or a time"),
              namespace: str | None = Query(None, max_length=500, description="Exact, or a prefix ending in *")) -> Any:
        return service.stats(identity, since=since, namespace=namespace)

    # -- triggers ------------------------------------------------------------------------
    @router.get("/triggers", tags=["triggers"], responses=_ok(m.TriggerPage), response_model=None,
                summary="Triggers of the flows you may see: next due time, last firing, disabled by whom")
    def triggers(identity: Identity = me_dep) -> Any:
        return {"items": service.list_triggers(identity)}

    @router.post("/triggers/{namespace}/{flow_id}/{trigger_id}/{switch}", tags=["triggers"],
                 responses=_ok(m.TriggerOut), response_model=None,
                 summary="Disable or enable a trigger (an admin of the namespace; audited)")
    def trigger_switch(namespace: str = Namespace, flow_id: str = FlowId,
                       trigger_id: str = Path(..., max_length=500),
                       switch: Literal["enable", "disable"] = Path(...),
                       identity: Identity = me_dep) -> Any:
        return service.set_trigger_enabled(identity, namespace, flow_id, trigger_id, switch == "enable")

    # -- key-value store -----------------------------------------------------------------
    @router.put("/kv/{namespace}/{key}", tags=["kv"], responses=_ok(m.KvResult), response_model=None,
                summary="Set a key of the namespace key-value store (admin)")
    def kv_put(body: m.KvBody, namespace: str = Namespace, key: str = Path(..., max_length=500),
               identity: Identity = me_dep) -> Any:
        service.kv_set(identity, namespace, key, body.value)
        return {"namespace": namespace, "key": key}

    # -- live updates --------------------------------------------------------------------
    def _changes_window(identity: Identity, after: int, limit: int) -> tuple[list[dict[str, Any]], int]:
        """Changes in (after, last]: last = min(head, after + limit). Audit seqs are dense, so
        the window holds at most ``limit`` events and the service's limit never cuts it. From
        the head watcher's memory (engine.server.head); a client further behind is answered
        from the database, never past the watcher's head (so its next window is in memory)."""
        shown = ("seq", "action", "request_id", "execution_id", "actor")
        answer = head.window(after, limit)
        if answer is not None:
            events, last = answer
            if events:
                visible = service.view_filter(identity)
                events = [e for e in events if e["namespace"] is None or visible(e["namespace"])]
            return [{k: e[k] for k in shown} for e in events], last
        newest = service.last_change()
        if head.ready:
            newest = min(newest, head.head)
        if newest <= after:
            return [], newest
        last = min(newest, after + limit)
        rows = service.changes(identity, after, limit=limit, actions=EVENT_ACTIONS)
        return [{k: r[k] for k in shown} for r in rows if r["seq"] <= last], last

    @router.get("/events", tags=["events"], response_model=None,
                summary="Changes as server-sent events (or one JSON page with Accept: application/json)",
                responses={200: {"description": "`text/event-stream`: events `id: <seq>`, `event: <action>`, "
                                                "`data: {seq, action, request_id, execution_id, actor}` and a "
                                                "keep-alive comment every 15 s. With `Accept: application/json`: "
                                                "one page `{items, last_seq}`.",
                                 "content": {"application/json": {
                                                 "schema": {"$ref": "#/components/schemas/ChangePage"}},
                                             "text/event-stream": {"schema": {"type": "string"}}}}})
    async def events(request: Request, identity: Identity = me_dep,
                     after: int | None = Query(None, ge=0, lt=2**63,
                                               description="Last seq seen (default: now, i.e. only new events)"),
                     limit: int = Query(1000, ge=1, le=1000, description="Page size (JSON mode)"),
                     accept: str | None = Header(None, include_in_schema=False),
                     last_event_id: str | None = Header(None, pattern=r"^[0-9]{1,18}$",
                                                        description="Resume after this event (sent by "
                                                                    "EventSource on reconnection); wins over `after`")
                     ) -> Any:
        if last_event_id is not None:
            after = int(last_event_id)
        since = after if after is not None else (head.head if head.ready else
                                                  await anyio.to_thread.run_sync(service.last_change))
        wants_json = accept is not None and "application/json" in accept and "text/event-stream" not in accept
        if wants_json:
            items, last = await anyio.to_thread.run_sync(_changes_window, identity, since, limit)
            return JSONResponse({"items": items, "last_seq": last})
        token = getattr(request.state, "token", None)
        return StreamingResponse(_stream(request, identity, token, since), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    async def _stream(request: Request, identity: Identity, token: str | None, after: int) -> AsyncIterator[str]:
        last = after
        yield "retry: 2000\n\n"
        quiet_since = time.monotonic()
        while not stopping.is_set():
            if await request.is_disconnected():
                return
            if head.ready and head.head <= last and time.monotonic() - quiet_since < KEEPALIVE_S:
                await asyncio.sleep(EVENT_POLL_S)  # nothing new on any replica: no work at all
                continue
            try:
                items, window = await anyio.to_thread.run_sync(_changes_window, identity, last, 500)
            except Exception as exc:  # noqa: BLE001 - log_failure: known ones in one line
                log_failure(log, logging.WARNING, "event stream ended", exc)
                return
            for item in items:
                yield f"id: {item['seq']}\nevent: {item['action']}\ndata: {json.dumps(item)}\n\n"
            if window > last:
                last = window
            if items:
                quiet_since = time.monotonic()
                continue
            if time.monotonic() - quiet_since >= KEEPALIVE_S:
                # a token is re-checked; the socket's kernel identity (token None) stays valid
                if token is not None and not await anyio.to_thread.run_sync(auth.still_valid, token):
                    yield "event: unauthorized\ndata: {}\n\n"
                    return
                yield ": keep-alive\n\n"
                quiet_since = time.monotonic()
            await asyncio.sleep(EVENT_POLL_S)

    # -- webhooks (Kestra's path; no token: the key in the URL is the secret) ------------------
    async def webhook(request: Request, namespace: str = Path(..., max_length=500),
                      flow_id: str = Path(..., max_length=500), key: str = Path(..., max_length=500)) -> Any:
        from signoff.engine.errors import NotFound
        from signoff.engine.triggers.webhook import request_variables

        body = await request.body()
        variables = request_variables(body, request.headers.get("content-type", ""),
                                      list(request.headers.items()), list(request.query_params.multi_items()))
        try:
            return await anyio.to_thread.run_sync(service.webhook, namespace, flow_id, key, variables)
        except NotFound as exc:
            await auth.failed_elsewhere(request, "webhook_key")
            return problem_response(404, exc.message)

    app.add_api_route(f"{API}/executions/webhook/{{namespace}}/{{flow_id}}/{{key}}", webhook,
                      methods=["GET", "POST", "PUT"], include_in_schema=False, response_model=None)

    app.include_router(router)
    from signoff.engine.server.web import mount_web

    app.state.web_sessions = mount_web(app, service, auth)
    app.state.plain_routes = [*router.routes, *app.router.routes]
    return app


def _version() -> str:
    try:
        from importlib.metadata import PackageNotFoundError, version

        return version("signoff")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "0"


__all__ = ["create_app", "EVENT_ACTIONS", "MAX_BODY", "MAX_START_BODY"]
