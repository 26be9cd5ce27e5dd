"""Sign-in sessions of the web pages (engine.server.web): random ids, a CSRF token each, a
bounded lifetime, kept in the server's memory.

Decision: sessions are not stored in the database, so a restart signs everyone out and the
session is known only to the replica that created it (several replicas behind one load
balancer need sticky sessions for the web pages; the API's tokens work anywhere).
"""
from __future__ import annotations

import os
import secrets
import threading
import time
from dataclasses import dataclass

from signoff.engine.durations import duration_seconds
from signoff.engine.errors import UsageError
from signoff.engine.identity import Identity

COOKIE = "signoff_session"
SESSION_LIFETIME = 8 * 3600.0
#: environment variable overriding SESSION_LIFETIME (an ISO 8601 duration, e.g. PT8H)
SESSION_ENV = "SIGNOFF_WEB_SESSION"


def session_lifetime(environ: dict[str, str] | None = None) -> float:
    """The sign-in session's lifetime in seconds: ``$SIGNOFF_WEB_SESSION`` or 8 hours."""
    text = (environ if environ is not None else dict(os.environ)).get(SESSION_ENV, "").strip()
    if not text:
        return SESSION_LIFETIME
    seconds = duration_seconds(text, SESSION_ENV, UsageError)
    if not seconds or seconds <= 0:
        raise UsageError(f"{SESSION_ENV}=`{text}` must be a positive ISO 8601 duration, e.g. PT8H")
    return seconds


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
