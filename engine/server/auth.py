"""Bearer-token authentication: ``Authorization: Bearer so_<id>_<secret>`` -> Identity.

- The identity is the token's user; its groups are the OS groups of that account on the
  server host when such an account exists (the policy adds its own groups through
  ``policy.in_group``); ``source="token"``.
- Failed authentications are counted per client address. After 5 failures within a minute,
  every further failure is answered only after a delay that grows with the count (capped at
  2 s), so guessing is slow, while a client with a good token is never delayed.
- Each failure is an ``auth.failed`` audit event (actor ``anonymous``, data ``{client,
  reason, count}``), at most one per client every 10 s: ``count`` says how many failures the
  event stands for, so a flood of bad tokens cannot flood the audit trail.
- Tokens never reach a log: they are only read from the header, and only their id is ever
  written (in the audit, for a token that was recognised but refused).
"""
from __future__ import annotations

import logging
import pwd
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import anyio
from fastapi import Request

from signoff.engine import tokens
from signoff.engine.audit import append_event
from signoff.engine.clock import Clock, format_time
from signoff.engine.identity import Identity, os_groups
from signoff.engine.server.problems import ProblemError

if TYPE_CHECKING:
    from signoff.engine.service import ApprovalService

log = logging.getLogger("signoff.server.auth")

#: failures allowed per client and minute before answers slow down
FREE_FAILURES = 5
WINDOW_S = 60.0
DELAY_STEP_S = 0.25
MAX_DELAY_S = 2.0
#: at most one auth.failed audit event per client in this many seconds
AUDIT_EVERY_S = 10.0
#: forget clients idle for this long
FORGET_AFTER_S = 600.0

_MESSAGES = {
    tokens.MISSING: "a bearer token is required (Authorization: Bearer so_...)",
    tokens.MALFORMED: "the Authorization header does not hold a signoff token (Bearer so_<id>_<secret>)",
    tokens.UNKNOWN: "the token is not known to this server",
    tokens.REVOKED: "the token was revoked",
    tokens.EXPIRED: "the token has expired",
}


@dataclass
class _Client:
    failures: deque[float] = field(default_factory=deque)  # monotonic times of recent failures
    last_audit: float | None = None
    unaudited: int = 0
    reasons: set[str] = field(default_factory=set)
    seen: float = 0.0


def identity_for(user: str) -> Identity:
    """The identity of a token's user: OS groups when the account exists on this host."""
    try:
        entry = pwd.getpwnam(user)
        groups = tuple(os_groups(entry.pw_name, entry.pw_gid))
    except (KeyError, OSError):
        groups = ()
    return Identity(name=user, groups=groups, source="token")


class Authenticator:
    def __init__(self, service: ApprovalService, *, clock: Clock,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.service = service
        self.db = service.db
        self.clock = clock
        self.monotonic = monotonic
        self._clients: dict[str, _Client] = {}
        self._lock = threading.Lock()
        self._identities: dict[str, tuple[float, Identity]] = {}

    # -- the FastAPI dependency -----------------------------------------------------------
    async def __call__(self, request: Request) -> Identity:
        header = request.headers.get("authorization")
        token = None
        if header:
            scheme, _, value = header.strip().partition(" ")
            token = value.strip() if scheme.lower() == "bearer" else "\x00malformed"
        client = request.client.host if request.client else "unknown"
        check = await anyio.to_thread.run_sync(self._verify, token)
        if check.ok and check.user is not None:
            identity = await anyio.to_thread.run_sync(self._identity, check.user)
            request.state.identity = identity
            request.state.token = token
            return identity
        delay, audit = self._failed(client, check.reason or tokens.UNKNOWN)
        if audit is not None:
            await anyio.to_thread.run_sync(self._audit, client, *audit)
        if delay:
            await anyio.sleep(delay)
        raise ProblemError(401, _MESSAGES.get(check.reason or "", "authentication failed"),
                           headers={"WWW-Authenticate": _challenge(check.reason)})

    async def failed_elsewhere(self, request: Request, reason: str) -> None:
        """Count a failure that is not a token's (a wrong webhook key) like a failed
        authentication: slowed down and audited the same way."""
        client = request.client.host if request.client else "unknown"
        delay, audit = self._failed(client, reason)
        if audit is not None:
            await anyio.to_thread.run_sync(self._audit, client, *audit)
        if delay:
            await anyio.sleep(delay)

    def still_valid(self, token: str | None) -> bool:
        """Re-check a token during a long request (the event stream)."""
        return self._verify(token).ok

    # -- internals -----------------------------------------------------------------------
    def _verify(self, token: str | None) -> tokens.TokenCheck:
        if token == "\x00malformed":
            return tokens.TokenCheck(None, None, tokens.MALFORMED)
        return tokens.verify(self.db, token, now=self.clock.now())

    def _identity(self, user: str) -> Identity:
        now = self.monotonic()
        cached = self._identities.get(user)
        if cached and cached[0] > now:
            return cached[1]
        identity = identity_for(user)
        self._identities[user] = (now + 60.0, identity)
        return identity

    def _failed(self, client: str, reason: str) -> tuple[float, tuple[str, int, list[str]] | None]:
        """Record a failure: (delay before answering, (reason, count, reasons) to audit or None)."""
        now = self.monotonic()
        with self._lock:
            self._forget(now)
            state = self._clients.setdefault(client, _Client())
            state.seen = now
            state.failures.append(now)
            while state.failures and state.failures[0] < now - WINDOW_S:
                state.failures.popleft()
            state.unaudited += 1
            state.reasons.add(reason)
            excess = len(state.failures) - FREE_FAILURES
            delay = min(DELAY_STEP_S * excess, MAX_DELAY_S) if excess > 0 else 0.0
            audit = None
            if state.last_audit is None or now - state.last_audit >= AUDIT_EVERY_S:
                audit = (reason, state.unaudited, sorted(state.reasons))
                state.last_audit = now
                state.unaudited = 0
                state.reasons = set()
        return delay, audit

    def flush(self, *, force: bool = False) -> None:
        """Audit the failures not audited yet (those inside a client's 10 s quiet period);
        called every few seconds by the app and once at shutdown with ``force``."""
        now = self.monotonic()
        pending: list[tuple[str, str, int, list[str]]] = []
        with self._lock:
            for client, state in self._clients.items():
                if state.unaudited and (force or state.last_audit is None or now - state.last_audit >= AUDIT_EVERY_S):
                    reasons = sorted(state.reasons)
                    pending.append((client, reasons[0], state.unaudited, reasons))
                    state.last_audit = now
                    state.unaudited = 0
                    state.reasons = set()
        for client, reason, count, reasons in pending:
            self._audit(client, reason, count, reasons)

    def _forget(self, now: float) -> None:
        if len(self._clients) < 1000:
            return
        for key in [k for k, c in self._clients.items() if now - c.seen > FORGET_AFTER_S]:
            del self._clients[key]

    def _audit(self, client: str, reason: str, count: int, reasons: list[str]) -> None:
        data = {"client": client, "reason": reason, "count": count}
        if len(reasons) > 1:
            data["reasons"] = reasons
        try:
            with self.db.write() as tx:
                append_event(tx, at=format_time(self.clock.now()), actor="anonymous", action="auth.failed", data=data)
        except Exception:
            log.exception("could not audit a failed authentication from %s", client)


def _challenge(reason: str | None) -> str:
    if reason in (None, tokens.MISSING):
        return 'Bearer realm="signoff"'
    return 'Bearer realm="signoff", error="invalid_token"'
