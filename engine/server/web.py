"""The web approval pages: ``/r/<id>`` (one request) and ``/web/pending`` (the signed-in
person's pending list with bulk approve/deny), server-rendered HTML that works on a phone and
without JavaScript.

Sign-in is pasting a token once (a POST body, never a URL); the server keeps a session for it
and sets an HttpOnly, SameSite=Strict cookie (Secure under TLS) that lives at most
``SESSION_LIFETIME`` (``$SIGNOFF_WEB_SESSION``, an ISO 8601 duration such as ``PT8H``, sets
it). Sessions live in the server's memory: a restart signs everyone out. Every state change
carries the session's CSRF token; a post without a session or with a wrong token is refused,
slowed down and audited like a failed token check (``auth.failed``, reasons ``web_session``
and ``csrf``). Pages are sent with a strict Content-Security-Policy (scripts only from this
server: ``/web/static/signoff.js``, an optional enhancement) and ``X-Frame-Options: DENY``.
Jinja2 autoescapes everything; a request's details are Markdown rendered with raw HTML off and
then cleaned by nh3, so flow inputs never become markup or script.

Decisions go through the same ApprovalService as the API and the console (eligibility,
four-eyes, quorum, commentRequired, the form's validation), recorded with ``origin: web
<address>`` and unsigned: where the policy requires signatures the page says to decide from the
console or CLI and shows no form (and the engine refuses an unsigned decision posted anyway).
A viewer sees the request without the form.

Bulk (decisions taken for the web, as the console does them): the list's one form carries the
marks and the verdict; the next page names the count and the flows, asks for the form the
marked requests share (one approval fills one form: requests asking for different forms are
approved one group at a time) and a reason following the strictest ``commentRequired`` among
them, checks the values with the engine before anything is decided, then decides every marked
request and lists per request what happened.
"""
from __future__ import annotations

import json
import re
import secrets
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import anyio
import nh3
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader
from markdown_it import MarkdownIt
from markupsafe import Markup

from signoff.engine import tokens
from signoff.engine.approvals import outcome as oc
from signoff.engine.approvals.outcome import APPROVE, DENY, Outcome, comment_message, comment_mode, comment_required
from signoff.engine.approvals.rows import PENDING_ROW_FIELDS
from signoff.engine.errors import NotFound, Refused, SignoffError, UsageError
from signoff.engine.identity import Identity
from signoff.engine.links import parse_link
from signoff.engine.nul import MESSAGE as NUL_MESSAGE
from signoff.engine.nul import NUL
from signoff.engine.server.auth import Authenticator
from signoff.engine.server.web_form import CUSTOM_SUFFIX, FIELD_PREFIX, FormView, build_form, posted_values
from signoff.engine.server.web_sessions import COOKIE, Session, Sessions, session_lifetime
from signoff.engine.service import ApprovalService

#: how much longer than the session the cookie is kept by the browser (see sign_in)
COOKIE_GRACE = 86400
#: rows per page of the pending list
PAGE_SIZE = 100
#: at most this many requests in one bulk post (a page holds PAGE_SIZE)
MAX_BULK = 1000
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; script-src 'self'; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
HERE = Path(__file__).parent
_SCRIPT = (HERE / "static" / "signoff.js").read_text(encoding="utf-8")

_templates = Environment(loader=FileSystemLoader(str(HERE / "templates")), autoescape=True,
                         trim_blocks=True, lstrip_blocks=True)
_markdown = MarkdownIt("commonmark", {"html": False, "linkify": False})


def _when(value: Any) -> str:
    """A stored UTC time (engine.clock.format_time) as people read it: ``2026-01-31 09:30 UTC``."""
    text = str(value or "")
    if len(text) >= 16 and text[10:11] == "T":
        return f"{text[:10]} {text[11:16]} UTC"
    return text


_templates.filters["when"] = _when
#: a fresh idempotency key per rendered decision form: submitting the same page twice (a double
#: tap, a reload that re-posts) gives the first answer again instead of deciding twice
_templates.globals["submit_key"] = lambda: secrets.token_urlsafe(16)
_KEY = re.compile(r"[A-Za-z0-9_-]{8,64}")


def _submit_key(items: Sequence[tuple[str, str]]) -> str | None:
    key = _first(items, "key")
    return f"web-{key}" if _KEY.fullmatch(key) else None

#: what the engine does when a request's due time passes (rules.expireBehavior)
_EXPIRE = {"FAIL": "fail the execution", "APPROVE": "approve it with the form's defaults",
           "RESUME": "resume the execution with the defaults", "DENY": "deny it", "WARN": "end the wait with a warning",
           "CANCEL": "cancel it", "ESCALATE": "escalate it to other approvers", "REISSUE": "issue it again"}
_PAST = {APPROVE: "Approved", DENY: "Denied"}


def safe_markdown(text: str | None) -> Markup:
    """Untrusted Markdown as inert HTML: raw HTML is not rendered, and nh3 keeps only safe
    tags and http(s)/mailto links (no ``javascript:``)."""
    if not text:
        return Markup("")
    html = _markdown.render(str(text))
    return Markup(nh3.clean(html, url_schemes={"http", "https", "mailto"}, link_rel="noopener noreferrer nofollow"))


MAX_FORM_BYTES = 256 * 1024


async def _form_items(request: Request) -> list[tuple[str, str]]:
    """The posted form's fields in order (application/x-www-form-urlencoded, what a plain HTML
    form sends), parsed by the standard library; anything else, or a body over
    MAX_FORM_BYTES, is empty (so its CSRF check fails and nothing happens)."""
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
        return []
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return []
    return parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True)


def _first(items: Sequence[tuple[str, str]], name: str) -> str:
    return next((v for k, v in items if k == name), "")


def _nul_fields(items: Sequence[tuple[str, str]]) -> str:
    """What to say about posted fields holding NUL (U+0000), empty when none does: refused
    before anything is decided, on both stores (engine.nul). Form fields are named by their
    input id."""
    names = sorted({(k[len(FIELD_PREFIX):].removesuffix(CUSTOM_SUFFIX) if k.startswith(FIELD_PREFIX) else k)
                    .replace(NUL, "\\0") for k, v in items if NUL in k or NUL in v})
    if not names:
        return ""
    return f"The field{'s' if len(names) > 1 else ''} {', '.join(f'`{n}`' for n in names)} {NUL_MESSAGE}"


def _page(name: str, status: int = 200, **values: Any) -> HTMLResponse:
    values.setdefault("who", None)
    values.setdefault("csrf", "")
    values.setdefault("title", "signoff")
    return HTMLResponse(_templates.get_template(name).render(**values), status_code=status, headers=HEADERS)


def outcome_text(outcome: Outcome) -> str:
    """What happened to one request, in the words of the outcome page."""
    kind = outcome.outcome
    if kind == oc.DECIDED:
        return {"APPROVED": "approved", "DENIED": "denied"}.get(outcome.state or "", outcome.message)
    if kind == oc.ALREADY_DECIDED:
        if outcome.state == "PENDING":
            return outcome.message  # this person's own earlier vote, waiting for the quorum
        return f"already decided by {', '.join(outcome.by) if outcome.by else 'the engine'}"
    prefix = {oc.NOT_ELIGIBLE: "not eligible", oc.SELF_APPROVAL: "four-eyes rule",
              oc.INVALID_INPUTS: "invalid inputs"}.get(kind)
    return f"{prefix}: {outcome.message}" if prefix else outcome.message


def form_key(form: Sequence[Any]) -> str:
    return json.dumps(list(form or []), sort_keys=True, default=str)


def strictest_comment_mode(modes: Sequence[str]) -> str:
    """The strictest commentRequired rule among marked requests decides whether a reason is needed."""
    return next((m for m in ("ALWAYS", "ON_APPROVE", "ON_DENY") if m in set(modes)), "NEVER")


def mount_web(app: FastAPI, service: ApprovalService, auth: Authenticator) -> Sessions:
    """Add the web pages to ``app``; the session store (tests read its lifetime)."""
    sessions = Sessions(session_lifetime())

    def current(request: Request) -> Session | None:
        return sessions.get(request.cookies.get(COOKIE))

    def sign_in_page(request: Request, target: str, status: int = 200) -> HTMLResponse:
        ended = request.cookies.get(COOKIE) is not None
        return _page("sign_in.html", status, next=target, title="Sign in",
                     error="Your session has ended: sign in again." if ended or status == 401 else None)

    def error_page(session: Session, status: int, message: str) -> HTMLResponse:
        return _page("error.html", status, who=session.identity.name, csrf=session.csrf, message=message)

    async def refused(request: Request, target: str) -> tuple[Session | None, list[tuple[str, str]], Response | None]:
        """The session and the posted form, or the refusal to send (audited): no session, or a
        CSRF token that is not this session's."""
        items = await _form_items(request)
        session = current(request)
        if session is None:
            await auth.failed_elsewhere(request, "web_session")
            return None, items, sign_in_page(request, target, 401)
        if not secrets.compare_digest(_first(items, "csrf"), session.csrf):
            await auth.failed_elsewhere(request, "csrf")
            return session, items, error_page(session, 403, "This form did not come from this page (CSRF check "
                                                            "failed); nothing was decided.")
        with_nul = _nul_fields(items)
        if with_nul:
            return session, items, error_page(session, 422, f"{with_nul}; nothing was decided.")
        return session, items, None

    def form_context(item: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        context = item.get("context") or {}
        variables = {"inputs": context.get("inputs") or {}, "outputs": context.get("outputs") or {}}
        return variables, service.form_functions(item)

    def form_view(item: dict[str, Any], raw: dict[str, Any], errors: dict[str, str]) -> FormView:
        variables, functions = form_context(item)
        return build_form(item.get("form") or [], raw, errors, variables=variables, functions=functions)

    def reason_values(mode: str, verdict: str | None) -> dict[str, Any]:
        """The reason field's required mark: required for this verdict, or for which one."""
        required = comment_required(mode, verdict) if verdict else mode != "NEVER"
        rule = {"ON_DENY": "to deny", "ON_APPROVE": "to approve"}.get(mode, "") if not verdict else ""
        return {"reason_required": required, "reason_rule": rule}

    def request_page(session: Session, target: str, *, status: int = 200, message: str | None = None,
                     errors: dict[str, str] | None = None, raw: dict[str, Any] | None = None,
                     reason: str = "") -> HTMLResponse:
        identity = session.identity
        item = service.get_request(identity, target)
        context = item.get("context") or {}
        rules = item.get("rules") or {}
        limits = service.decision_limits(identity, target)
        errors = errors or {}
        behavior = str(rules.get("expireBehavior") or "").upper()
        return _page("request.html", status, who=identity.name, csrf=session.csrf, title=str(item["summary"])[:80],
                     request=item, rules=rules, expire_text=_EXPIRE.get(behavior, behavior.lower()),
                     details=safe_markdown(context.get("details")), impact=safe_markdown(context.get("impact")),
                     inputs=context.get("inputs") or {}, outputs=context.get("outputs") or {},
                     decisions=item.get("decisions") or [], signatures_required=item.get("signatures") == "required",
                     view_only=limits["refusal"], four_eyes=limits["four_eyes"], link=target,
                     view=form_view(item, raw or {}, errors), message=message, reason=reason,
                     reason_error=errors.get("reason"), **reason_values(comment_mode(rules), None))

    def resolve(identity: Identity, link_id: str) -> str:
        """A request id, or an execution id resolved to its pending (else latest) request."""
        target = parse_link(link_id)
        try:
            return str(service.get_request(identity, target)["id"])
        except NotFound:
            pass
        execution = service.get_execution(identity, target)
        requests = execution.get("requests") or []
        if not requests:
            raise NotFound(f"execution {target} has not asked for a decision yet")
        pending = [r for r in requests if r.get("state") == "PENDING"]
        return str((pending[0] if pending else requests[-1])["id"])

    async def guarded(session: Session, run: Callable[[], Response]) -> Response:
        try:
            return await anyio.to_thread.run_sync(run)
        except NotFound as exc:
            return error_page(session, 404, str(exc))
        except Refused as exc:
            return error_page(session, 403, str(exc))
        except SignoffError as exc:
            return error_page(session, 400, str(exc))

    @app.get("/web/static/signoff.js", include_in_schema=False)
    async def script() -> Response:
        return Response(_SCRIPT, media_type="text/javascript",
                        headers={**HEADERS, "Cache-Control": "public, max-age=3600"})

    @app.get("/web", include_in_schema=False)
    async def web_home() -> Response:
        return RedirectResponse("/web/pending", status_code=303, headers=HEADERS)

    @app.get("/r/{link_id}", include_in_schema=False)
    async def show(request: Request, link_id: str) -> Response:
        session = current(request)
        if session is None:
            return sign_in_page(request, f"/r/{link_id}")

        def run() -> Response:
            target = resolve(session.identity, link_id)
            if target != link_id:
                return RedirectResponse(f"/r/{target}", status_code=303, headers=HEADERS)
            return request_page(session, target)

        return await guarded(session, run)

    @app.get("/web/pending", include_in_schema=False)
    async def pending(request: Request, page: str = "1") -> Response:
        session = current(request)
        if session is None:
            return sign_in_page(request, "/web/pending")
        number = int(page) if page.isdigit() and len(page) <= 6 else 1  # a hand-edited URL: the first page
        return await guarded(session, lambda: pending_page(session, max(1, number)))

    def pending_page(session: Session, page: int, *, status: int = 200, message: str | None = None,
                     marked: Sequence[str] = ()) -> HTMLResponse:
        """The pending list: the console's rows, in the console's order (engine.approvals.rows)."""
        start = (page - 1) * PAGE_SIZE
        rows = service.pending_rows(session.identity, limit=start + PAGE_SIZE + 1)
        shown = [dict(zip(PENDING_ROW_FIELDS, r, strict=True)) for r in rows[start:start + PAGE_SIZE]]
        decidable = service.decide_filter(session.identity)
        for row in shown:  # a row the person may only view gets no mark (and no bulk buttons if none may be)
            row["can_decide"] = decidable(row["namespace"])
        return _page("pending.html", status, who=session.identity.name, csrf=session.csrf, title="Pending",
                     rows=shown, page=page, more=len(rows) > start + PAGE_SIZE, message=message,
                     marked=set(marked), any_decidable=any(r["can_decide"] for r in shown))

    @app.post("/web/sign-in", include_in_schema=False)
    async def sign_in(request: Request) -> Response:
        items = await _form_items(request)
        token = _first(items, "token").strip()
        target = _first(items, "next") or "/web/pending"
        if not target.startswith(("/r/", "/web/pending")) or NUL in target:
            target = "/web/pending"
        check = await anyio.to_thread.run_sync(lambda: tokens.verify(service.db, token, now=service.engine.clock.now()))
        if not check.ok or check.user is None:
            await auth.failed_elsewhere(request, check.reason or tokens.UNKNOWN)
            return _page("sign_in.html", 401, next=target, title="Sign in", error="That token is not valid.")
        identity = await anyio.to_thread.run_sync(auth.identity_for_user, check.user)
        sid, _session = sessions.create(identity)
        response = RedirectResponse(target, status_code=303, headers=HEADERS)
        # the cookie outlives the session by a day (the server ends the session; a stale id is
        # worthless), so a visit after the end can say "your session has ended"
        response.set_cookie(COOKIE, sid, max_age=int(sessions.lifetime) + COOKIE_GRACE, httponly=True,
                            samesite="strict", secure=request.url.scheme == "https", path="/")
        return response

    @app.post("/web/sign-out", include_in_schema=False)
    async def sign_out(request: Request) -> Response:
        session = current(request)
        items = await _form_items(request)
        if session is not None and secrets.compare_digest(_first(items, "csrf"), session.csrf):
            sessions.end(request.cookies.get(COOKIE))
        response = _page("sign_in.html", next="/web/pending", title="Sign in", error="Signed out.")
        response.delete_cookie(COOKIE, path="/")
        return response

    def origin_of(request: Request) -> str:
        return f"web {request.client.host}" if request.client else "web"

    @app.post("/r/{request_id}/decide", include_in_schema=False)
    async def decide(request: Request, request_id: str) -> Response:
        session, items, refusal = await refused(request, f"/r/{request_id}")
        if refusal is not None or session is None:
            return refusal or Response(status_code=500)
        verdict = _first(items, "verdict")
        reason_text = _first(items, "reason")
        reason = reason_text.strip() or None
        origin = origin_of(request)

        def run() -> Response:
            item = service.get_request(session.identity, request_id)
            raw = posted_values(items, item.get("form") or [])
            if verdict == "refresh":
                return request_page(session, request_id, raw=raw, reason=reason_text)
            if verdict not in (APPROVE, DENY):
                raise UsageError("choose Approve or Deny")
            [outcome] = service.decide(session.identity, [request_id], verdict,
                                       inputs=raw if verdict == APPROVE else None, reason=reason, origin=origin,
                                       idempotency_key=_submit_key(items))
            if outcome.outcome == oc.INVALID_INPUTS:
                return request_page(session, request_id, status=422, message=outcome.message,
                                    errors=dict(outcome.errors), raw=raw, reason=reason_text)
            return outcome_page(session, verdict, [outcome], {request_id: str(item["summary"])})

        return await guarded(session, run)

    def outcome_page(session: Session, verdict: str, outcomes: list[Outcome], labels: dict[str, str]) -> HTMLResponse:
        done = sum(1 for o in outcomes if o.ok)
        if len(outcomes) == 1:
            heading = outcomes[0].message[:1].upper() + outcomes[0].message[1:]
        else:
            heading = f"{_PAST[verdict]} {done} of {len(outcomes)} requests"
        items = [{"id": o.id, "outcome": o.outcome, "ok": o.ok, "state": o.state, "text": outcome_text(o),
                  "label": labels.get(o.id, o.id)} for o in outcomes]
        status = 200 if done == len(outcomes) else (409 if len(outcomes) == 1 else 200)
        return _page("outcome.html", status, who=session.identity.name, csrf=session.csrf, title=heading,
                     heading=heading, items=items, single=len(outcomes) == 1)

    @app.post("/web/bulk", include_in_schema=False)
    async def bulk(request: Request) -> Response:
        session, items, refusal = await refused(request, "/web/pending")
        if refusal is not None or session is None:
            return refusal or Response(status_code=500)
        ids = list(dict.fromkeys(v for k, v in items if k == "id" and v))
        verdict = _first(items, "verdict")
        step = _first(items, "step")
        reason_text = _first(items, "reason")
        origin = origin_of(request)

        def run() -> Response:
            if not ids:
                return pending_page(session, 1, status=400, message="Mark at least one request first.")
            if len(ids) > MAX_BULK:
                return pending_page(session, 1, status=400,
                                    message=f"At most {MAX_BULK} requests at once; mark fewer.")
            return bulk_step(session, ids, verdict, step, items, reason_text, origin)

        return await guarded(session, run)

    def bulk_step(session: Session, ids: list[str], verdict: str, step: str, items: Sequence[tuple[str, str]],
                  reason_text: str, origin: str) -> Response:
        identity = session.identity
        summaries = {s["id"]: s for s in service.request_summaries(identity, ids)}
        if not summaries:
            return pending_page(session, 1, status=404, message="None of the marked requests is known here "
                                                                "(or you may not see them).")
        labels = {i: f"{s['flow_id']}: {s['summary']}" for i, s in summaries.items()}
        # one full request per (namespace, flow, task): requests of one task ask for one form
        reps: dict[tuple[Any, ...], dict[str, Any]] = {}
        group_of: dict[str, tuple[Any, ...]] = {}
        for request_id in ids:
            summary = summaries.get(request_id)
            if summary is None:
                continue
            key = (summary["namespace"], summary["flow_id"], summary["task_id"])
            group_of[request_id] = key
            if key not in reps:
                reps[key] = service.get_request(identity, request_id)
        intent = verdict if verdict in (APPROVE, DENY) else _first(items, "intent") or APPROVE
        mode = strictest_comment_mode([comment_mode(r.get("rules")) for r in reps.values()])
        flows = Counter(f"{s['namespace']}.{s['flow_id']}" for s in summaries.values()).most_common()
        noun = "request" if len(ids) == 1 else "requests"
        heading = f"{'Approve' if intent == APPROVE else 'Deny'} {len(ids)} {noun}"
        by_form: dict[str, list[str]] = {}
        forms: dict[str, list[Any]] = {}
        for request_id in ids:
            group = group_of.get(request_id)
            if group is None:
                continue  # unknown here (or not visible): the decision reports it as not found
            form = reps[group].get("form") or []
            by_form.setdefault(form_key(form), []).append(request_id)
            forms[form_key(form)] = form
        base = dict(who=identity.name, csrf=session.csrf, title=heading, heading=heading, flows=flows, ids=ids,
                    verdict=intent, reason=reason_text, labels=[(i, labels.get(i, i)) for i in ids])
        if intent == APPROVE and len(by_form) > 1:
            groups = []
            for key_text, group_ids in by_form.items():
                group_flows = Counter(f"{summaries[i]['namespace']}.{summaries[i]['flow_id']}"
                                      for i in group_ids if i in summaries).most_common()
                groups.append({"ids": group_ids, "label": ", ".join(f"{n} × {c}" for c, n in group_flows),
                               "fields": ", ".join(str(f.get("id")) for f in forms[key_text])})
            return _page("bulk.html", 409 if step == "form" else 200, groups=groups, **base)
        first_key = next((group_of[i] for i in ids if i in group_of), None)
        rep = reps.get(first_key) if first_key is not None else None
        form = (rep or {}).get("form") or []
        raw = posted_values(items, form) if step == "form" else {}

        def confirm_page(status: int, errors: dict[str, str], message: str | None = None) -> HTMLResponse:
            view = form_view(rep, raw, errors) if rep is not None else FormView([], [], False)
            return _page("bulk.html", status, view=view, errors=errors, message=message,
                         reason_error=errors.get("reason"), groups=None,
                         **reason_values(mode, intent), **base)

        if step != "form" or verdict not in (APPROVE, DENY):
            return confirm_page(200, {})
        reason = reason_text.strip() or None
        errors: dict[str, str] = {}
        if verdict == APPROVE and rep is not None and form:
            errors.update(service.validate(identity, str(rep["id"]), raw))
        if comment_required(mode, verdict) and not reason:
            errors["reason"] = comment_message(mode, verdict)
        if errors:
            return confirm_page(422, errors, "Nothing was decided: correct the fields below.")
        outcomes = service.decide(identity, ids, verdict, inputs=raw if verdict == APPROVE else None,
                                  reason=reason, origin=origin, idempotency_key=_submit_key(items))
        return outcome_page(session, verdict, outcomes, labels)

    return sessions
