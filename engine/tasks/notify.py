"""Notifications: Slack and Teams incoming webhooks, and e-mail over SMTP.

Webhooks (``url``, ``payload``): the rendered payload is posted exactly as the flow author
wrote it (nothing is JSON-escaped for them, as in Kestra) after checking it is valid JSON.

``MailSend``: ``host``, ``port`` (25), ``username``/``password``, ``from``, ``to``/``cc``
(a list or comma-separated text), ``subject``, ``htmlTextContent``/``plainTextContent``,
``transportStrategy`` (``SMTP`` plain, ``SMTP_TLS`` STARTTLS, ``SMTPS`` implicit TLS; by
default SMTPS on port 465 and plain SMTP otherwise) and ``sessionTimeout`` (ms, 10000).
The ``Message-ID`` is derived from the idempotency key so a re-sent mail is recognisable.
"""
from __future__ import annotations

import functools
import hashlib
import json
import smtplib
import socket
import ssl
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any

from signoff.engine.durations import duration_seconds
from signoff.engine.tasks.base import RunContext, TaskFailed, handler
from signoff.engine.tasks.http import build_request, check_status, idempotent_headers, make_client, send
from signoff.engine.tasks.log import as_text

# -- webhooks ---------------------------------------------------------------------------

def _payload_text(ctx: RunContext) -> str:
    payload = ctx.prop("payload")
    if payload is None:
        text = ctx.prop("messageText")
        if text is None:
            raise TaskFailed("Webhook task needs a `payload` (a JSON text)")
        return json.dumps({"text": as_text(text)})
    if isinstance(payload, (dict, list)):  # written as YAML data rather than JSON text
        return json.dumps(payload)
    text = as_text(payload)
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        start = max(exc.pos - 30, 0)
        near = text[start:exc.pos + 30].replace("\n", "\\n")
        raise TaskFailed(
            f"payload is not valid JSON after rendering: {exc.msg} at line {exc.lineno} "
            f"column {exc.colno} (near: {near!r}); a rendered value may contain a quote, "
            f"backslash or newline; render such values with `| toJson`"
        ) from None
    return text


def _post_webhook(ctx: RunContext) -> dict[str, Any]:
    url = ctx.prop("url")
    if not url:
        raise TaskFailed("Webhook task needs a `url`")
    body = _payload_text(ctx)
    headers = idempotent_headers(ctx, None)
    headers["Content-Type"] = "application/json"
    with make_client(timeout=duration_seconds(ctx.prop("timeout"), "timeout", TaskFailed)) as client:
        req = build_request(client, "POST", str(url).strip(), content=body.encode("utf-8"), headers=headers)
        response = send(client, req)
    check_status(response)
    return {"code": response.status_code}


@handler("io.kestra.plugin.notifications.slack.SlackIncomingWebhook")
def slack_incoming_webhook(ctx: RunContext) -> dict[str, Any]:
    return _post_webhook(ctx)


@handler("io.kestra.plugin.notifications.teams.TeamsIncomingWebhook")
def teams_incoming_webhook(ctx: RunContext) -> dict[str, Any]:
    return _post_webhook(ctx)


# -- mail -------------------------------------------------------------------------------

STRATEGIES = ("SMTP", "SMTP_TLS", "SMTPS")


@functools.cache
def _mail_tls() -> ssl.SSLContext:
    """The system's default verifying context, built once (loading the CA store takes tens of ms).
    Not shared with the HTTP tasks: httpcore sets ALPN ``http/1.1`` on the context it is given."""
    return ssl.create_default_context()


def _addresses(value: Any) -> list[str]:
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    out: list[str] = []
    for item in items:
        out.extend(part.strip() for part in as_text(item).split(",") if part.strip())
    return out


def message_id(idempotency_key: str) -> str:
    digest = hashlib.sha256(idempotency_key.encode("utf-8")).hexdigest()[:40]
    return f"<signoff.{digest}@signoff.local>"


def build_message(ctx: RunContext) -> tuple[EmailMessage, str, list[str]]:
    sender = as_text(ctx.prop("from")).strip()
    to = _addresses(ctx.prop("to"))
    cc = _addresses(ctx.prop("cc"))
    if not sender:
        raise TaskFailed("MailSend needs a `from` address")
    if not to and not cc:
        raise TaskFailed("MailSend needs at least one recipient in `to`")
    html = ctx.prop("htmlTextContent")
    plain = ctx.prop("plainTextContent")

    msg = EmailMessage()
    msg["From"] = sender
    if to:
        msg["To"] = ", ".join(to)
    if cc:
        msg["Cc"] = ", ".join(cc)
    msg["Subject"] = as_text(ctx.prop("subject"))
    msg["Date"] = formatdate(localtime=True)
    msg["Message-ID"] = message_id(ctx.idempotency_key)
    msg["X-Signoff-Idempotency-Key"] = ctx.idempotency_key
    if plain is not None:
        msg.set_content(as_text(plain))
        if html is not None:
            msg.add_alternative(as_text(html), subtype="html")
    elif html is not None:
        msg.set_content(as_text(html), subtype="html")
    else:
        msg.set_content("")
    return msg, sender, to + cc


@handler("io.kestra.plugin.notifications.mail.MailSend")
def mail_send(ctx: RunContext) -> dict[str, Any]:
    host = as_text(ctx.prop("host")).strip()
    if not host:
        raise TaskFailed("MailSend needs a `host`")
    raw_port = ctx.prop("port", 25)
    try:
        port = int(raw_port)
    except (TypeError, ValueError):
        raise TaskFailed(f"Invalid mail port {raw_port!r}") from None
    strategy = as_text(ctx.prop("transportStrategy") or ("SMTPS" if port == 465 else "SMTP")).strip().upper()
    if strategy not in STRATEGIES:
        raise TaskFailed(f"Unsupported transportStrategy {strategy!r}: expected one of {', '.join(STRATEGIES)}")
    task_timeout = duration_seconds(ctx.prop("timeout"), "timeout", TaskFailed)
    timeout_ms = ctx.prop("sessionTimeout", 10000 if task_timeout is None else task_timeout * 1000)
    try:
        timeout = float(timeout_ms) / 1000.0
    except (TypeError, ValueError):
        raise TaskFailed(f"Invalid sessionTimeout {timeout_ms!r} (milliseconds)") from None
    username, password = ctx.prop("username"), ctx.prop("password")
    for unsupported in ("attachments", "embeddedImages"):
        if ctx.task.props.get(unsupported):
            ctx.log("WARN", f"MailSend `{unsupported}` are not supported and were not sent")

    msg, sender, recipients = build_message(ctx)
    where = f"{host}:{port}"
    try:
        if strategy == "SMTPS":
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(host, port, timeout=timeout, context=_mail_tls())
        else:
            smtp = smtplib.SMTP(host, port, timeout=timeout)
        with smtp:
            smtp.ehlo_or_helo_if_needed()
            if strategy == "SMTP_TLS":
                smtp.starttls(context=_mail_tls())
                smtp.ehlo()
            if username:
                smtp.login(as_text(username), as_text(password))
            refused = smtp.send_message(msg, from_addr=sender, to_addrs=recipients)
        if refused:
            ctx.log("WARN", "Mail not delivered to: " + ", ".join(
                f"{addr} ({code} {reply.decode(errors='replace')})" for addr, (code, reply) in refused.items()))
    except smtplib.SMTPNotSupportedError as exc:
        raise TaskFailed(f"Cannot send mail via {where}: {exc}") from None
    except smtplib.SMTPAuthenticationError as exc:
        raise TaskFailed(f"Cannot send mail via {where}: authentication failed ({_smtp_reply(exc)})") from None
    except smtplib.SMTPRecipientsRefused as exc:
        named = ", ".join(f"{a} ({c} {r.decode(errors='replace')})" for a, (c, r) in exc.recipients.items())
        raise TaskFailed(f"Cannot send mail via {where}: all recipients refused: {named}") from None
    except smtplib.SMTPSenderRefused as exc:
        raise TaskFailed(f"Cannot send mail via {where}: sender {exc.sender} refused ({_smtp_reply(exc)})") from None
    except smtplib.SMTPResponseException as exc:
        raise TaskFailed(f"Cannot send mail via {where}: {_smtp_reply(exc)}") from None
    except smtplib.SMTPServerDisconnected as exc:
        raise TaskFailed(f"Cannot send mail via {where}: server disconnected ({exc or 'no reason given'})") from None
    except ssl.SSLError as exc:
        raise TaskFailed(f"Cannot send mail via {where}: TLS failed ({exc.reason or exc})") from None
    except ConnectionRefusedError:
        raise TaskFailed(f"Cannot send mail via {where}: connection refused") from None
    except TimeoutError:
        raise TaskFailed(f"Cannot send mail via {where}: timed out after {timeout:g}s") from None
    except socket.gaierror:
        raise TaskFailed(f"Cannot send mail via {where}: unknown host {host!r}") from None
    except (smtplib.SMTPException, OSError) as exc:
        raise TaskFailed(f"Cannot send mail via {where}: {exc}") from None
    return {}


def _smtp_reply(exc: smtplib.SMTPResponseException) -> str:
    error = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
    return f"{exc.smtp_code} {error}".strip()
