"""The web approval page at ``/r/<id>``: server-rendered HTML that works without JavaScript.

Sign-in is pasting a token once (a POST body, never a URL); the server keeps a session for it
and sets an HttpOnly, SameSite=Strict cookie (Secure under TLS) that lives at most
``SESSION_LIFETIME``. Sessions live in the server's memory: a restart signs everyone out.
Every state change carries the session's CSRF token; pages are sent with a strict
Content-Security-Policy and ``X-Frame-Options: DENY``. Jinja2 autoescapes everything; the
request's details are Markdown rendered with raw HTML off and then cleaned by nh3, so flow
inputs never become markup or script. Decisions go through the same ApprovalService as the
API, recorded with ``origin: web <address>``.
"""
from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import anyio
import nh3
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import DictLoader, Environment, select_autoescape
from markdown_it import MarkdownIt
from markupsafe import Markup

from signoff.engine import tokens
from signoff.engine.errors import NotFound, Refused, SignoffError
from signoff.engine.identity import Identity
from signoff.engine.links import parse_link
from signoff.engine.server.auth import Authenticator
from signoff.engine.service import ApprovalService

COOKIE = "signoff_session"
SESSION_LIFETIME = 8 * 3600.0
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

_BASE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{{ title }} · signoff</title>
<style>body{font-family:system-ui,sans-serif;margin:0 auto;max-width:48rem;padding:1rem;overflow-wrap:anywhere}
pre,code{white-space:pre-wrap;overflow-wrap:anywhere}label{display:block;margin-top:.8rem;font-weight:600}
input,select,textarea{width:100%;box-sizing:border-box;font-size:1rem;padding:.4rem}
.error{color:#b00020}.field-error{color:#b00020;font-weight:400}
button{font-size:1rem;padding:.5rem 1rem;margin:.8rem .5rem 0 0}
</style></head><body>
{% if who %}<form method="post" action="/web/sign-out"><input type="hidden" name="csrf" value="{{ csrf }}">
<p>Signed in as <b id="who">{{ who }}</b> <button type="submit" id="sign-out">Sign out</button></p></form>{% endif %}
{% block body %}{% endblock %}</body></html>"""

_SIGN_IN = """{% extends "base" %}{% block body %}<h1>Sign in to signoff</h1>
{% if error %}<p class="error" id="error">{{ error }}</p>{% endif %}
<form method="post" action="/web/sign-in"><input type="hidden" name="next" value="{{ next }}">
<label for="token">Your signoff token (from <code>signoff token issue</code>)</label>
<input type="password" id="token" name="token" autocomplete="off" required>
<button type="submit" id="sign-in">Sign in</button></form>{% endblock %}"""

_REQUEST = """{% extends "base" %}{% block body %}
<h1 id="summary">{{ request.summary }}</h1>
<p>{{ request.namespace }}.{{ request.flow_id }} · request <code>{{ request.id }}</code>
 · <b id="state">{{ request.state }}</b>
{% if request.due_at %} · due <time>{{ request.due_at }}</time>
{% if rules.expireBehavior %} (then {{ rules.expireBehavior }}){% endif %}{% endif %}</p>
{% if details %}<section id="details">{{ details }}</section>{% endif %}
{% if impact %}<h2>Impact</h2><section id="impact">{{ impact }}</section>{% endif %}
<h2>Inputs</h2><dl id="inputs">{% for k, v in inputs.items() %}<dt>{{ k }}</dt><dd><code>{{ v }}</code></dd>
{% endfor %}</dl>
{% if decisions %}<h2>Decisions</h2><ul id="decisions">{% for d in decisions %}
<li>{{ d.verdict }} by {{ d.by }} at {{ d.at }}{% if d.reason %}: {{ d.reason }}
{% endif %} ({{ d.origin }})</li>{% endfor %}</ul>{% endif %}
{% if request.state == "PENDING" %}
{% if message %}<p class="error" id="message">{{ message }}</p>{% endif %}
<form method="post" action="/r/{{ request.id }}/decide"><input type="hidden" name="csrf" value="{{ csrf }}">
{% for f in form %}<label for="in-{{ f.id }}">{{ f.id }}{% if f.required %} *{% endif %}
{% if f.description %} — {{ f.description }}{% endif %}
{% if errors.get(f.id) %}<span class="field-error" id="error-{{ f.id }}">{{ errors[f.id] }}</span>{% endif %}</label>
{% if f.type == "BOOLEAN" %}<select id="in-{{ f.id }}" name="in-{{ f.id }}"><option value=""></option>
<option value="true" {% if values.get(f.id) == "true" %}selected{% endif %}>yes</option>
<option value="false" {% if values.get(f.id) == "false" %}selected{% endif %}>no</option></select>
{% else %}<input id="in-{{ f.id }}" name="in-{{ f.id }}" value="{{ values.get(f.id, '') }}">{% endif %}{% endfor %}
<label for="decision-reason">Reason, kept in the audit trail{% if rules.commentRequired %} *{% endif %}</label>
<textarea id="decision-reason" name="reason">{{ values.get('__reason', '') }}</textarea>
<button type="submit" name="verdict" value="approve" id="approve">Approve</button>
<button type="submit" name="verdict" value="deny" id="deny">Deny</button></form>{% endif %}{% endblock %}"""

_OUTCOME = """{% extends "base" %}{% block body %}<h1 id="outcome">{{ outcome.message }}</h1>
<p>Request <a href="/r/{{ outcome.id }}">{{ outcome.id }}</a>: <b id="state">{{ outcome.state }}</b></p>
{% endblock %}"""

_ERROR = """{% extends "base" %}{% block body %}<h1 id="error">{{ message }}</h1>{% endblock %}"""

_templates = Environment(loader=DictLoader({"base": _BASE, "sign_in": _SIGN_IN, "request": _REQUEST,
                                            "outcome": _OUTCOME, "error": _ERROR}),
                         autoescape=select_autoescape(default=True, default_for_string=True))
_markdown = MarkdownIt("commonmark", {"html": False, "linkify": False})


def safe_markdown(text: str | None) -> Markup:
    """Untrusted Markdown as inert HTML: raw HTML is not rendered, and nh3 keeps only safe
    tags and http(s)/mailto links (no ``javascript:``)."""
    if not text:
        return Markup("")
    html = _markdown.render(str(text))
    return Markup(nh3.clean(html, url_schemes={"http", "https", "mailto"}, link_rel="noopener noreferrer nofollow"))


@dataclass
class Session:
    identity: Identity
    csrf: str
    expires: float


class Sessions:
    """Sign-in sessions in memory: random ids, bounded lifetime."""

    def __init__(self, lifetime: float = SESSION_LIFETIME) -> None:
        self.lifetime = lifetime
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def create(self, identity: Identity) -> tuple[str, Session]:
        sid = secrets.token_urlsafe(32)
        session = Session(identity, secrets.token_urlsafe(32), time.monotonic() + self.lifetime)
        with self._lock:
            now = time.monotonic()
            self._sessions = {k: v for k, v in self._sessions.items() if v.expires > now}
            self._sessions[sid] = session
        return sid, session

    def get(self, sid: str | None) -> Session | None:
        if not sid:
            return None
        with self._lock:
            session = self._sessions.get(sid)
            if session is not None and session.expires <= time.monotonic():
                del self._sessions[sid]
                return None
            return session

    def end(self, sid: str | None) -> None:
        with self._lock:
            self._sessions.pop(sid or "", None)


MAX_FORM_BYTES = 64 * 1024


async def _form(request: Request) -> dict[str, str]:
    """The posted form (application/x-www-form-urlencoded, what a plain HTML form sends),
    parsed by the standard library; anything else, or a body over MAX_FORM_BYTES, is empty
    (so its CSRF check fails and nothing happens)."""
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
        return {}
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return {}
    return dict(parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True))


def _page(name: str, status: int = 200, **values: Any) -> HTMLResponse:
    values.setdefault("who", None)
    values.setdefault("csrf", "")
    values.setdefault("title", "signoff")
    return HTMLResponse(_templates.get_template(name).render(**values), status_code=status, headers=HEADERS)


def mount_web(app: FastAPI, service: ApprovalService, auth: Authenticator) -> Sessions:
    """Add the web pages to ``app``; the session store (tests read its lifetime)."""
    sessions = Sessions()

    def current(request: Request) -> Session | None:
        return sessions.get(request.cookies.get(COOKIE))

    def request_page(session: Session, target: str, *, status: int = 200, message: str | None = None,
                     errors: dict[str, str] | None = None, values: dict[str, str] | None = None) -> HTMLResponse:
        item = service.get_request(session.identity, target)
        context = item.get("context") or {}
        return _page("request", status, who=session.identity.name, csrf=session.csrf, title=item["summary"],
                     request=item, rules=item.get("rules") or {}, form=item.get("form") or [],
                     details=safe_markdown(context.get("details")), impact=safe_markdown(context.get("impact")),
                     inputs=context.get("inputs") or {}, decisions=item.get("decisions") or [],
                     message=message, errors=errors or {}, values=values or {})

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

    @app.get("/r/{link_id}", include_in_schema=False)
    async def show(request: Request, link_id: str) -> Response:
        session = current(request)
        if session is None:
            return _page("sign_in", next=f"/r/{link_id}", title="Sign in")
        try:
            target = await anyio.to_thread.run_sync(resolve, session.identity, link_id)
            if target != link_id:
                return RedirectResponse(f"/r/{target}", status_code=303, headers=HEADERS)
            return await anyio.to_thread.run_sync(lambda: request_page(session, target))
        except NotFound as exc:
            return _page("error", 404, who=session.identity.name, csrf=session.csrf, message=str(exc))
        except Refused as exc:
            return _page("error", 403, who=session.identity.name, csrf=session.csrf, message=str(exc))
        except SignoffError as exc:
            return _page("error", 400, who=session.identity.name, csrf=session.csrf, message=str(exc))

    @app.post("/web/sign-in", include_in_schema=False)
    async def sign_in(request: Request) -> Response:
        form = await _form(request)
        token = str(form.get("token") or "").strip()
        target = str(form.get("next") or "/")
        if not target.startswith("/r/"):
            target = "/"
        check = await anyio.to_thread.run_sync(lambda: tokens.verify(service.db, token, now=service.engine.clock.now()))
        if not check.ok or check.user is None:
            await auth.failed_elsewhere(request, check.reason or tokens.UNKNOWN)
            return _page("sign_in", 401, next=target, title="Sign in", error="That token is not valid.")
        identity = await anyio.to_thread.run_sync(auth._identity, check.user)
        sid, _session = sessions.create(identity)
        response = RedirectResponse(target, status_code=303, headers=HEADERS)
        response.set_cookie(COOKIE, sid, max_age=int(sessions.lifetime), httponly=True, samesite="strict",
                            secure=request.url.scheme == "https", path="/")
        return response

    @app.post("/web/sign-out", include_in_schema=False)
    async def sign_out(request: Request) -> Response:
        session = current(request)
        form = await _form(request)
        if session is not None and secrets.compare_digest(str(form.get("csrf") or ""), session.csrf):
            sessions.end(request.cookies.get(COOKIE))
        response = _page("sign_in", next="/", title="Sign in", error="Signed out.")
        response.delete_cookie(COOKIE, path="/")
        return response

    @app.post("/r/{request_id}/decide", include_in_schema=False)
    async def decide(request: Request, request_id: str) -> Response:
        session = current(request)
        form = await _form(request)
        if session is None:
            return _page("sign_in", 401, next=f"/r/{request_id}", title="Sign in",
                         error="Your session has ended: sign in again.")
        if not secrets.compare_digest(str(form.get("csrf") or ""), session.csrf):
            await auth.failed_elsewhere(request, "csrf")
            return _page("error", 403, who=session.identity.name, csrf=session.csrf,
                         message="This form did not come from this page (CSRF check failed); nothing was decided.")
        verdict = str(form.get("verdict") or "")
        reason = str(form.get("reason") or "").strip() or None
        values = {str(k)[3:]: str(v) for k, v in form.items() if str(k).startswith("in-")}
        inputs = {k: v for k, v in values.items() if v != ""}
        origin = f"web {request.client.host}" if request.client else "web"

        def run() -> Response:
            [outcome] = service.decide(session.identity, [request_id], verdict, inputs=inputs if verdict == "approve"
                                       else None, reason=reason, origin=origin)
            if outcome.outcome == "invalid_inputs":
                return request_page(session, request_id, status=422, message=outcome.message,
                                    errors=dict(outcome.errors), values={**values, "__reason": reason or ""})
            return _page("outcome", 200 if outcome.ok else 409, who=session.identity.name, csrf=session.csrf,
                         outcome=outcome)

        try:
            return await anyio.to_thread.run_sync(run)
        except SignoffError as exc:
            return _page("error", 400, who=session.identity.name, csrf=session.csrf, message=str(exc))

    return sessions
