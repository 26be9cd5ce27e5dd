"""The outside world of `signoff demo`: loopback stand-ins for what the sample flows call.

After a decision the sample flows call a payments API, an IAM API, a content API, a deploy
hook and an HR system, and post to Slack; signoff's own notifications go to Slack and Teams.
The demo runs one small HTTP server on 127.0.0.1 (an ephemeral port, a daemon thread of the
demo process) that answers every one of them like the real thing would (``201`` with a JSON
receipt, ``ok`` for webhooks), and points the demo's kv values, secrets and notification
targets at it, so approving a sample request ends in SUCCESS instead of a connection error.

Everything received is kept: one JSON line per request in ``sent.jsonl`` in the demo's data
directory (time, what it stands in for, method, path, Idempotency-Key, body), and a short line
to every subscriber (the console shows it as a notice). The sinks live as long as the demo
process; an execution continued later by another process finds the port closed and fails
with that connection error.
"""
from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

#: kv key -> (namespace, path prefix on the sink) for the URLs the sample flows read with kv()
KV_ENDPOINTS = {
    "PAYMENTS_API": ("company.finance", "/payments-api"),
    "IAM_API": ("company.security", "/iam"),
    "CONTENT_API": ("company.trust", "/content-api"),
    "DEPLOY_HOOK": ("company.platform", "/deploy"),
    "HR_API_ENDPOINT": ("hr.operations", "/hr"),
}
#: secret name -> path on the sink for the webhooks the sample flows read with secret()
SECRET_ENDPOINTS = {
    "SLACK_PLATFORM_WEBHOOK": "/slack/platform",
    "SLACK_HR_WEBHOOK": "/slack/hr",
    # signoff's own notifications (notifications.yaml written by the demo)
    "DEMO_NOTIFY_SLACK": "/notify/slack",
    "DEMO_NOTIFY_TEAMS": "/notify/teams",
}
#: path prefix -> what the sink stands in for (the longest matching prefix names a request)
STANDS_IN_FOR = {
    "/payments-api": "payments API",
    "/iam": "IAM API",
    "/content-api": "content API",
    "/deploy": "deploy hook",
    "/hr": "HR system",
    "/slack": "Slack",
    "/notify/slack": "Slack (signoff notification)",
    "/notify/teams": "Teams (signoff notification)",
}
SENT_FILE = "sent.jsonl"

Subscriber = Callable[[str], None]


class DemoSinks:
    """The loopback HTTP server; ``url`` is its base URL once :meth:`start` returned."""

    def __init__(self, data_dir: Path) -> None:
        self.log_path = Path(data_dir) / SENT_FILE
        self._lock = threading.Lock()
        self._subscribers: list[Subscriber] = []
        self._count = 0
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.sinks = self
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        port = self._server.server_address[1]
        return f"http://127.0.0.1:{port}"

    def start(self) -> DemoSinks:
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="signoff-demo-sinks", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(5)
            self._thread = None
        self._server.server_close()

    def subscribe(self, subscriber: Subscriber) -> None:
        """``subscriber(line)`` is called (from the server's thread) for every flow call."""
        with self._lock:
            self._subscribers.append(subscriber)

    def endpoint(self, path: str) -> str:
        return self.url + path

    # -- receiving ----------------------------------------------------------------------
    def received(self, method: str, path: str, headers: dict[str, str], body: bytes) -> dict[str, Any]:
        """Record one request; returns the JSON receipt the sink answers with."""
        with self._lock:
            self._count += 1
            number = self._count
            subscribers = list(self._subscribers)
        name = _stands_in_for(path)
        content = _decode(body, headers.get("content-type", ""))
        entry = {"at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"), "to": name,
                 "method": method, "path": path, "idempotency_key": headers.get("idempotency-key"),
                 "body": content}
        with self._lock, open(self.log_path, "a", encoding="utf-8") as out:
            out.write(json.dumps(entry, ensure_ascii=False) + "\n")
        if not path.startswith("/notify/"):  # the console shows what flows sent, not signoff's own notices
            line = f"{name} received {method} {path}: {_summary(content)}"
            for subscriber in subscribers:
                try:
                    subscriber(line)
                except Exception:  # noqa: BLE001 - a closed console must not break the sink
                    pass
        return {"id": f"demo-{number}", "status": "accepted", "received": f"{method} {path}"}


def _stands_in_for(path: str) -> str:
    matches = [prefix for prefix in STANDS_IN_FOR if path == prefix or path.startswith(prefix + "/")]
    return STANDS_IN_FOR[max(matches, key=len)] if matches else "demo sink"


def _decode(body: bytes, content_type: str) -> Any:
    text = body.decode("utf-8", errors="replace")
    if "json" in content_type:
        try:
            return json.loads(text)
        except ValueError:
            return text
    if "multipart/form-data" in content_type or "x-www-form-urlencoded" in content_type:
        return _form_fields(body, content_type)
    return text


def _form_fields(body: bytes, content_type: str) -> dict[str, Any] | str:
    import email.parser
    import email.policy
    from urllib.parse import parse_qs

    if "x-www-form-urlencoded" in content_type:
        return {k: v[0] if len(v) == 1 else v for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
    raw = b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(raw)
    fields: dict[str, Any] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name:
            payload = part.get_payload(decode=True)
            fields[str(name)] = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else str(payload or "")
    return fields or body.decode("utf-8", "replace")


def _summary(content: Any) -> str:
    """A short, plain one-line account of a body (it becomes a console notice, escaped there)."""
    if isinstance(content, dict):
        if "text" in content:
            text = str(content["text"])
        elif {"amount", "currency", "payee"} <= content.keys():
            text = f"{content['amount']} {content['currency']} to {content['payee']}"
            approvers = [d.get("by") for d in content.get("approved_by") or [] if isinstance(d, dict)]
            if approvers:
                text += f", approved by {', '.join(map(str, approvers))}"
        else:
            text = ", ".join(f"{k}={v}" for k, v in list(content.items())[:4])
    else:
        text = str(content or "(no body)")
    text = " ".join(text.split())
    return text if len(text) <= 120 else text[:119] + "…"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    sinks: DemoSinks


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the console owns the terminal

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path = self.path.split("?", 1)[0]
        headers = {k.lower(): v for k, v in self.headers.items()}
        receipt = self.server.sinks.received(self.command, path, headers, body)
        if path.startswith(("/slack", "/notify/")):
            status, data, ctype = 200, b"ok", "text/plain; charset=utf-8"
        else:
            status = 201 if self.command == "POST" else 200
            data, ctype = json.dumps(receipt).encode(), "application/json"
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle
