"""A real local SMTP server (stdlib only) that records the messages it accepts.

It speaks enough of RFC 5321 for :mod:`smtplib`: EHLO/HELO, AUTH PLAIN and LOGIN,
MAIL, RCPT, DATA (with dot-unstuffing), RSET, NOOP, VRFY and QUIT. It does not offer
STARTTLS, so a client asking for it gets smtplib's "STARTTLS extension not supported".

Usage::

    with SmtpListener() as smtp:
        ... send to smtp.host:smtp.port ...
        msg = smtp.messages[0]             # email.message.EmailMessage
        msg["Subject"], smtp.mails[0].rcpt_tos, smtp.mails[0].username

Options: ``users={"name": "secret"}`` makes AUTH check credentials (otherwise any
credentials are accepted); ``reject_recipients={"nobody@x"}`` answers 550 for those.
"""
from __future__ import annotations

import base64
import email.parser
import email.policy
import socketserver
import threading
import time
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any


@dataclass
class ReceivedMail:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes  # the message as transmitted, dot-unstuffed, CRLF line ends
    message: EmailMessage
    username: str | None  # who authenticated, if anyone


def _address(arg: str) -> str:
    """``FROM:<a@b> SIZE=12`` -> ``a@b``."""
    _, _, rest = arg.partition(":")
    rest = rest.strip()
    if rest.startswith("<"):
        return rest[1:rest.find(">")] if ">" in rest else rest[1:]
    return rest.split(" ", 1)[0]


class _Session(socketserver.StreamRequestHandler):
    server: _Server
    timeout = 30

    def _send(self, line: str) -> None:
        self.wfile.write(line.encode("utf-8") + b"\r\n")
        self.wfile.flush()

    def _readline(self) -> bytes | None:
        line = self.rfile.readline(1 << 20)
        return line if line else None

    def handle(self) -> None:
        listener = self.server.listener
        mail_from: str | None = None
        rcpts: list[str] = []
        username: str | None = None
        greeted = False
        self._send(f"220 {listener.hostname} signoff fake SMTP ready")
        while True:
            raw = self._readline()
            if raw is None:
                return
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            verb, _, arg = line.partition(" ")
            verb = verb.upper()
            if verb == "EHLO":
                greeted = True
                mail_from, rcpts = None, []
                self.wfile.write(
                    f"250-{listener.hostname} greets {arg or 'client'}\r\n"
                    "250-8BITMIME\r\n250-SMTPUTF8\r\n250-SIZE 33554432\r\n"
                    "250 AUTH PLAIN LOGIN\r\n".encode()
                )
                self.wfile.flush()
            elif verb == "HELO":
                greeted = True
                mail_from, rcpts = None, []
                self._send(f"250 {listener.hostname}")
            elif verb == "AUTH":
                username = self._auth(arg)
                if username is None:
                    self._send("535 5.7.8 Authentication credentials invalid")
                else:
                    self._send("235 2.7.0 Authentication successful")
            elif verb == "MAIL":
                if not greeted:
                    self._send("503 5.5.1 Error: send HELO/EHLO first")
                elif listener.users is not None and username is None:
                    self._send("530 5.7.0 Authentication required")
                elif not arg.upper().startswith("FROM:"):
                    self._send("501 5.5.4 Syntax: MAIL FROM:<address>")
                else:
                    mail_from, rcpts = _address(arg), []
                    self._send("250 2.1.0 OK")
            elif verb == "RCPT":
                if mail_from is None:
                    self._send("503 5.5.1 Error: need MAIL command")
                elif not arg.upper().startswith("TO:"):
                    self._send("501 5.5.4 Syntax: RCPT TO:<address>")
                else:
                    rcpt = _address(arg)
                    if rcpt in listener.reject_recipients:
                        self._send(f"550 5.1.1 <{rcpt}>: Recipient address rejected")
                    else:
                        rcpts.append(rcpt)
                        self._send("250 2.1.5 OK")
            elif verb == "DATA":
                if mail_from is None or not rcpts:
                    self._send("503 5.5.1 Error: need RCPT command")
                    continue
                self._send("354 End data with <CR><LF>.<CR><LF>")
                lines: list[bytes] = []
                while True:
                    raw = self._readline()
                    if raw is None:
                        return
                    if raw in (b".\r\n", b".\n"):
                        break
                    if raw.startswith(b".."):
                        raw = raw[1:]
                    lines.append(raw)
                data = b"".join(lines)
                # Parse with LF line ends so get_content() reads naturally; ``data`` stays raw.
                message = email.parser.BytesParser(policy=email.policy.default).parsebytes(
                    data.replace(b"\r\n", b"\n"))
                listener._record(ReceivedMail(mail_from, list(rcpts), data, message, username))
                mail_from, rcpts = None, []
                self._send("250 2.0.0 OK: queued")
            elif verb == "RSET":
                mail_from, rcpts = None, []
                self._send("250 2.0.0 OK")
            elif verb == "NOOP":
                self._send("250 2.0.0 OK")
            elif verb == "VRFY":
                self._send("252 2.0.0 Cannot VRFY user")
            elif verb == "QUIT":
                self._send("221 2.0.0 Bye")
                return
            else:
                self._send("502 5.5.2 Error: command not recognized")

    def _auth(self, arg: str) -> str | None:
        mechanism, _, initial = arg.partition(" ")
        mechanism = mechanism.upper()
        try:
            if mechanism == "PLAIN":
                if not initial:
                    self._send("334 ")
                    initial = (self._readline() or b"").decode().strip()
                _, user, password = base64.b64decode(initial).decode().split("\0", 2)
            elif mechanism == "LOGIN":
                if initial:
                    user = base64.b64decode(initial).decode()
                else:
                    self._send("334 " + base64.b64encode(b"Username:").decode())
                    user = base64.b64decode((self._readline() or b"").strip()).decode()
                self._send("334 " + base64.b64encode(b"Password:").decode())
                password = base64.b64decode((self._readline() or b"").strip()).decode()
            else:
                return None
        except (ValueError, UnicodeDecodeError):
            return None
        users = self.server.listener.users
        if users is not None and users.get(user) != password:
            return None
        return user


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    listener: SmtpListener

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return  # the client went away: not the fake's problem
        super().handle_error(request, client_address)


class SmtpListener:
    """A threaded SMTP server on 127.0.0.1 (ephemeral port) recording accepted mail."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *,
                 users: dict[str, str] | None = None,
                 reject_recipients: set[str] | frozenset[str] = frozenset(),
                 hostname: str = "fake-smtp.local") -> None:
        self.users = users
        self.reject_recipients = set(reject_recipients)
        self.hostname = hostname
        self._lock = threading.Condition()
        self._mails: list[ReceivedMail] = []
        self._server = _Server((host, port), _Session)
        self._server.listener = self
        self._thread: threading.Thread | None = None

    def start(self) -> SmtpListener:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                name=f"smtp-listener-{self.port}", daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> SmtpListener:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def host(self) -> str:
        return self._server.server_address[0]

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def _record(self, mail: ReceivedMail) -> None:
        with self._lock:
            self._mails.append(mail)
            self._lock.notify_all()

    @property
    def mails(self) -> list[ReceivedMail]:
        """Every accepted mail with its envelope, in arrival order."""
        with self._lock:
            return list(self._mails)

    @property
    def messages(self) -> list[EmailMessage]:
        """The parsed messages (``email.message.EmailMessage``), in arrival order."""
        return [m.message for m in self.mails]

    def clear(self) -> None:
        with self._lock:
            self._mails.clear()

    def wait_for(self, count: int = 1, *, timeout: float = 5.0) -> list[ReceivedMail]:
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self._mails) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"expected {count} mail(s), got {len(self._mails)}")
                self._lock.wait(remaining)
            return list(self._mails)
