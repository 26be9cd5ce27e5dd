"""A real local HTTP server that records requests and answers with canned responses.

Usage::

    with HttpListener() as server:
        server.respond("/hooks/slack", 200, "ok")
        server.respond("/hr", 500, {"error": "down"})      # dict/list bodies are sent as JSON
        ... code under test calls server.url + "/hooks/slack" ...
        req = server.requests[0]
        req.method, req.path, req.headers["Idempotency-Key"], req.json, req.form, req.files

Paths without a configured response answer ``200 ok`` (text/plain). ``respond("*", ...)``
sets the answer for every path not configured explicitly. A response may also be a callable
``fn(request) -> (status, body[, headers])`` for dynamic behaviour (e.g. fail then succeed).
"""
from __future__ import annotations

import email.parser
import email.policy
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


class CaseInsensitiveDict(dict):
    """A ``dict`` of header names (stored as received) looked up case-insensitively."""

    def _key(self, name: str) -> str | None:
        lowered = name.lower()
        for key in dict.keys(self):
            if key.lower() == lowered:
                return key
        return None

    def __getitem__(self, name: str) -> str:
        key = self._key(name)
        if key is None:
            raise KeyError(name)
        return dict.__getitem__(self, key)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._key(name) is not None

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        key = self._key(name)
        return default if key is None else dict.__getitem__(self, key)


@dataclass
class UploadedFile:
    filename: str
    content: bytes
    content_type: str | None


@dataclass
class RecordedRequest:
    method: str
    path: str  # without the query string
    query: dict[str, list[str]]
    headers: CaseInsensitiveDict
    body: bytes
    #: The body parsed as JSON when the Content-Type says JSON (None if absent or invalid).
    json: Any = None
    #: Form fields of a multipart/form-data or x-www-form-urlencoded body; a field sent
    #: several times maps to a list of its values.
    form: dict[str, Any] | None = None
    #: Multipart parts that carried a filename.
    files: dict[str, UploadedFile] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    @property
    def content_type(self) -> str:
        return (self.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()


Responder = Callable[[RecordedRequest], tuple]


@dataclass
class _Canned:
    status: int
    body: Any
    headers: dict[str, str]
    delay: float = 0.0


def _encode_body(body: Any, headers: dict[str, str]) -> bytes:
    has_type = any(k.lower() == "content-type" for k in headers)
    if isinstance(body, (dict, list)):
        if not has_type:
            headers["Content-Type"] = "application/json"
        return json.dumps(body).encode()
    if isinstance(body, bytes):
        if not has_type:
            headers["Content-Type"] = "application/octet-stream"
        return body
    if not has_type:
        headers["Content-Type"] = "text/plain; charset=utf-8"
    return ("" if body is None else str(body)).encode()


def _add_field(target: dict[str, Any], name: str, value: Any) -> None:
    if name in target:
        existing = target[name]
        if isinstance(existing, list):
            existing.append(value)
        else:
            target[name] = [existing, value]
    else:
        target[name] = value


def _parse_body(req: RecordedRequest) -> None:
    ctype = req.content_type
    if ctype == "application/json" or ctype.endswith("+json"):
        try:
            req.json = json.loads(req.body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            req.json = None
    elif ctype == "application/x-www-form-urlencoded":
        parsed = parse_qs(req.body.decode("utf-8", errors="replace"), keep_blank_values=True)
        req.form = {k: v[0] if len(v) == 1 else v for k, v in parsed.items()}
    elif ctype == "multipart/form-data":
        raw = b"Content-Type: " + req.headers["Content-Type"].encode("latin-1") + b"\r\n\r\n" + req.body
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(raw)
        form: dict[str, Any] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if name is None:
                continue
            payload = part.get_payload(decode=True) or b""
            filename = part.get_filename()
            if filename is not None:
                req.files[name] = UploadedFile(filename, payload, part.get_content_type())
                continue
            charset = part.get_content_charset() or "utf-8"
            _add_field(form, name, payload.decode(charset, errors="replace"))
        req.form = form


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size_line = self.rfile.readline(65537).split(b";", 1)[0].strip()
                size = int(size_line or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline(65537)
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self) -> None:
        listener = self.server.listener
        split = urlsplit(self.path)
        req = RecordedRequest(
            method=self.command,
            path=split.path or "/",
            query=parse_qs(split.query, keep_blank_values=True),
            headers=CaseInsensitiveDict(self.headers.items()),
            body=self._read_body(),
        )
        try:
            _parse_body(req)
        except Exception:  # noqa: BLE001 - a malformed body is still recorded, just not parsed
            pass
        listener._record(req)

        answer = listener._answer_for(req.path)
        headers: dict[str, str] = {}
        if callable(answer):
            result = answer(req)
            status, body = result[0], result[1]
            headers = dict(result[2]) if len(result) > 2 else {}
        else:
            if answer.delay:
                time.sleep(answer.delay)
            status, body, headers = answer.status, answer.body, dict(answer.headers)
        data = _encode_body(body, headers)
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    listener: HttpListener

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return  # the client went away (e.g. timed out on a delayed answer)
        super().handle_error(request, client_address)


class HttpListener:
    """A threaded HTTP server on 127.0.0.1 (ephemeral port) recording every request."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._lock = threading.Condition()
        self._requests: list[RecordedRequest] = []
        self._responses: dict[str, _Canned | Responder] = {}
        self._server = _Server((host, port), _Handler)
        self._server.listener = self
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> HttpListener:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                name=f"http-listener-{self.port}", daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> HttpListener:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- addresses ---------------------------------------------------------------------
    @property
    def host(self) -> str:
        return self._server.server_address[0]

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        """Base URL without trailing slash, e.g. ``http://127.0.0.1:54321``."""
        return f"http://{self.host}:{self.port}"

    # -- configuration -----------------------------------------------------------------
    def respond(self, path: str, status: int | Responder = 200, body: Any = "ok",
                headers: dict[str, str] | None = None, *, delay: float = 0.0) -> None:
        """Answer requests to ``path`` (exact, query ignored; ``"*"`` = any other path).

        ``status`` may instead be a callable ``fn(request) -> (status, body[, headers])``.
        ``delay`` seconds are slept before answering (for timeout tests).
        """
        with self._lock:
            if callable(status):
                self._responses[path] = status
            else:
                self._responses[path] = _Canned(int(status), body, dict(headers or {}), delay)

    def _answer_for(self, path: str) -> _Canned | Responder:
        with self._lock:
            return self._responses.get(path) or self._responses.get("*") or _Canned(200, "ok", {})

    # -- recording ---------------------------------------------------------------------
    def _record(self, req: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(req)
            self._lock.notify_all()

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received so far, in arrival order."""
        with self._lock:
            return list(self._requests)

    def requests_to(self, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == path]

    def clear(self) -> None:
        with self._lock:
            self._requests.clear()

    def wait_for(self, count: int = 1, *, path: str | None = None, timeout: float = 5.0) -> list[RecordedRequest]:
        """Block until ``count`` requests (to ``path`` if given) have arrived; return them."""
        deadline = time.monotonic() + timeout

        def matching() -> list[RecordedRequest]:
            return [r for r in self._requests if path is None or r.path == path]

        with self._lock:
            while len(matching()) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"expected {count} request(s){' to ' + path if path else ''}, "
                        f"got {len(matching())}: {[(r.method, r.path) for r in self._requests]}"
                    )
                self._lock.wait(remaining)
            return matching()

    def __iter__(self) -> Iterator[RecordedRequest]:
        return iter(self.requests)
