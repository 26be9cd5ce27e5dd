"""``io.kestra.plugin.core.http.Request``: one HTTP call with httpx.

Properties (as Kestra): ``uri``, ``method`` (GET), ``headers``, ``body`` (a string, or a
map/list sent as JSON), ``contentType`` (default application/json for a string body),
``formData`` (urlencoded, or multipart/form-data when ``contentType`` says so) and
``options`` (``connectTimeout``, ``readTimeout`` as ISO durations or seconds,
``allowFailed``, ``followRedirects``, ``basicAuthUser``/``basicAuthPassword``). Every request
carries ``Idempotency-Key: <ctx.idempotency_key>`` unless the flow sets its own.

Outputs as Kestra: ``{"code", "headers" (name -> list of values), "body" (text), "uri"}``.
"""
from __future__ import annotations

import functools
import json
import ssl
from typing import Any

import httpx

from signoff.engine.durations import duration_seconds
from signoff.engine.tasks.base import RunContext, TaskFailed, handler
from signoff.engine.tasks.log import param_text

DEFAULT_TIMEOUT = 30.0
#: Transient connection failures are retried by httpx's transport (with its own backoff).
CONNECT_RETRIES = 3
USER_AGENT = "signoff"


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The TLS context every HTTP task shares: the one httpx would build for each client
    (certifi, or ``SSL_CERT_FILE``/``SSL_CERT_DIR``), loaded once per process instead of on every
    request (tens of ms). Not for other protocols: httpcore sets ALPN ``http/1.1`` on it."""
    return httpx.create_ssl_context()


def idempotent_headers(ctx: RunContext, headers: Any) -> dict[str, str]:
    """The flow's headers (values as text) plus Idempotency-Key unless already set."""
    if headers is None:
        headers = {}
    if not isinstance(headers, dict):
        raise TaskFailed("`headers` must be a map of header names to values")
    out: dict[str, str] = {}
    for name, value in headers.items():
        if value is None:
            continue
        out[str(name)] = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
    if not any(name.lower() == "idempotency-key" for name in out):
        out["Idempotency-Key"] = ctx.idempotency_key
    return out


def make_client(*, timeout: float | None = None, connect_timeout: float | None = None,
                follow_redirects: bool = True, auth: httpx.Auth | None = None) -> httpx.Client:
    total = timeout or DEFAULT_TIMEOUT
    return httpx.Client(
        auth=auth,
        transport=httpx.HTTPTransport(verify=tls_context(), retries=CONNECT_RETRIES),
        timeout=httpx.Timeout(total, connect=connect_timeout or total),
        follow_redirects=follow_redirects,
        headers={"User-Agent": USER_AGENT},
    )


def send(client: httpx.Client, request: httpx.Request) -> httpx.Response:
    """Send ``request``; connection problems become a TaskFailed with a readable message."""
    uri = str(request.url)
    try:
        return client.send(request)
    except httpx.ConnectTimeout:
        raise TaskFailed(f"Cannot connect to {uri}: connection timed out") from None
    except httpx.ConnectError as exc:
        raise TaskFailed(f"Cannot connect to {uri}: {_reason(exc)}") from None
    except httpx.TimeoutException:
        raise TaskFailed(f"Request to {uri} timed out waiting for the server") from None
    except httpx.TooManyRedirects:
        raise TaskFailed(f"Request to {uri}: too many redirects") from None
    except httpx.RemoteProtocolError as exc:
        raise TaskFailed(f"Request to {uri} failed: the server broke the HTTP protocol ({_reason(exc)})") from None
    except httpx.UnsupportedProtocol:
        raise TaskFailed(f"Invalid uri {uri!r}: only http:// and https:// are supported") from None
    except httpx.HTTPError as exc:
        raise TaskFailed(f"Request to {uri} failed: {_reason(exc)}") from None


def _reason(exc: Exception) -> str:
    text = str(exc).strip()
    lowered = text.lower()
    if "connection refused" in lowered:
        return "connection refused"
    if "name or service not known" in lowered or "nodename nor servname" in lowered \
            or "temporary failure in name resolution" in lowered:
        return "unknown host"
    return text or type(exc).__name__


def build_request(client: httpx.Client, method: str, uri: str, **kwargs: Any) -> httpx.Request:
    try:
        return client.build_request(method, uri, **kwargs)
    except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
        raise TaskFailed(f"Invalid uri {uri!r}: {exc}") from None


def check_status(response: httpx.Response) -> None:
    if not response.is_success:
        snippet = response.text[:200]
        raise TaskFailed(f"HTTP {response.status_code} from {response.request.url}: {snippet}")


def _truthy_option(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "yes", "1", "on")
    return bool(value)


@handler("io.kestra.plugin.core.http.Request")
def request(ctx: RunContext) -> dict[str, Any]:
    uri = ctx.prop("uri")
    if not uri:
        raise TaskFailed("Request task needs a `uri`")
    uri = str(uri).strip()
    method = str(ctx.prop("method") or "GET").strip().upper()
    options = ctx.prop("options") or {}
    if not isinstance(options, dict):
        raise TaskFailed("`options` must be a map")
    headers = idempotent_headers(ctx, ctx.prop("headers"))
    content_type = ctx.prop("contentType")
    body = ctx.prop("body")
    form_data = ctx.prop("formData")
    allow_failed = _truthy_option(options.get("allowFailed", ctx.prop("allowFailed", False)))

    kwargs: dict[str, Any] = {"headers": headers}
    has_ctype = any(name.lower() == "content-type" for name in headers)
    if form_data is not None:
        if not isinstance(form_data, dict):
            raise TaskFailed("`formData` must be a map of field names to values")
        fields = [(str(k), param_text(v)) for k, value in form_data.items()
                  for v in (value if isinstance(value, list) else [value])]
        if content_type and str(content_type).lower().startswith("multipart/form-data"):
            # httpx writes the boundary into Content-Type itself.
            kwargs["files"] = [(name, (None, value)) for name, value in fields]
            headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
            kwargs["headers"] = headers
        else:
            data: dict[str, list[str]] = {}
            for name, value in fields:
                data.setdefault(name, []).append(value)
            kwargs["data"] = data
    elif body is not None:
        if isinstance(body, (dict, list)):
            kwargs["content"] = json.dumps(body).encode()
            if not has_ctype:
                headers["Content-Type"] = str(content_type or "application/json")
        else:
            kwargs["content"] = param_text(body).encode()
            if not has_ctype:
                headers["Content-Type"] = str(content_type or "application/json")
    elif content_type and not has_ctype:
        headers["Content-Type"] = str(content_type)

    auth = None
    user, password = options.get("basicAuthUser"), options.get("basicAuthPassword")
    if user is not None:
        auth = httpx.BasicAuth(str(user), "" if password is None else str(password))

    task_timeout = duration_seconds(ctx.prop("timeout"), "timeout", TaskFailed)  # bounds each network step
    read_timeout = duration_seconds(options.get("readTimeout"), "options.readTimeout", TaskFailed) or task_timeout
    connect_timeout = (duration_seconds(options.get("connectTimeout"), "options.connectTimeout", TaskFailed)
                       or task_timeout)
    follow = _truthy_option(options.get("followRedirects", True))
    with make_client(timeout=read_timeout, connect_timeout=connect_timeout,
                     follow_redirects=follow, auth=auth) as client:
        req = build_request(client, method, uri, **kwargs)
        response = send(client, req)
        response.read()
    if not allow_failed:
        check_status(response)
    out_headers: dict[str, list[str]] = {}
    for name, value in response.headers.multi_items():
        out_headers.setdefault(name.lower(), []).append(value)
    return {
        "code": response.status_code,
        "headers": out_headers,
        "body": response.text,
        "uri": str(response.url),
    }
