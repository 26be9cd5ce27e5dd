"""Bearer-token authentication: ``Authorization: Bearer so_<id>_<secret>`` -> Identity.

- The identity is the token's user; its groups are the OS groups of that account on the
  server host when such an account exists (the policy adds its own groups through
  ``policy.in_group``); ``source="token"``.
- Failed authentications are counted per client address, in the database, so every replica
  behind a load balancer counts together (engine.server.throttle). After 5 failures within a
  minute, every further failure is answered only after a delay that grows with the count
  (capped at 2 s), so guessing is slow, while a client with a good token is never delayed.
- Each failure is an ``auth.failed`` audit event (actor ``anonymous``, data ``{client,
  reason, count}``), at most one per client every 10 s across all replicas: ``count`` says how
  many failures the event stands for, so a flood of bad tokens cannot flood the audit trail.
- Tokens never reach a log: they are only read from the header, and only their id is ever
  written (in the audit, for a token that was recognised but refused).

On the local Unix socket (engine.server.peer) the identity is the peer process's account,
from the kernel: uid -> account name and OS groups (``source="socket"``). Decisions there:

- A token sent on the socket is *refused* (401, ``auth.refused`` in the audit with the real
  account as actor and the token's id, never its secret): the socket identifies every
  caller, so a token there can only be a mistake or an attempt to act as its owner, and
  silently ignoring it would hide either. Headers (``X-Forwarded-User``, ``X-Remote-User``,
  ...), ``$USER``/``$LOGNAME`` and body fields are never read for identity.
- An account the policy gives no role at all is refused (403, ``policy.denied``): it is a
  valid login on the machine, but not a signoff user.
- Socket refusals are counted and audited per account like failed tokens (at most one event
  per account every 10 s, with a count), so a loop cannot flood the audit trail.
"""
from __future__ import annotations

import logging
import pwd
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio
from fastapi import Request

from signoff.engine import tokens
from signoff.engine.clock import Clock
from signoff.engine.identity import Identity, identity_for_uid, os_groups
from signoff.engine.server.peer import PeerCred, peer_of
from signoff.engine.server.problems import ProblemError
from signoff.engine.server.throttle import Failure, FailureThrottle

if TYPE_CHECKING:
    from signoff.engine.service import ApprovalService

log = logging.getLogger("signoff.server.auth")

_MESSAGES = {
    tokens.MISSING: "a bearer token is required (Authorization: Bearer so_...)",
    tokens.MALFORMED: "the Authorization header does not hold a signoff token (Bearer so_<id>_<secret>)",
    tokens.UNKNOWN: "the token is not known to this server",
    tokens.REVOKED: "the token was revoked",
    tokens.EXPIRED: "the token has expired",
}


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
        self.throttle = FailureThrottle(self.db, clock=clock)
        self._identities: dict[str, tuple[float, Identity]] = {}
        #: (name, groups) -> does the (fixed, loaded once) policy give it any role
        self._roles: dict[tuple[str, tuple[str, ...]], bool] = {}

    # -- the FastAPI dependency -----------------------------------------------------------
    async def __call__(self, request: Request) -> Identity:
        peer = peer_of(request.scope)
        if peer is not None:
            return await self._peer_identity(request, peer)
        header = request.headers.get("authorization")
        token = None
        if header:
            scheme, _, value = header.strip().partition(" ")
            token = value.strip() if scheme.lower() == "bearer" else "\x00malformed"
        client = request.client.host if request.client else "unknown"
        check, identity = await anyio.to_thread.run_sync(self._verified_identity, token)
        if identity is not None:
            request.state.identity = identity
            request.state.token = token
            return identity
        await self._slow_down(Failure(client, check.reason or tokens.UNKNOWN, client))
        raise ProblemError(401, _MESSAGES.get(check.reason or "", "authentication failed"),
                           headers={"WWW-Authenticate": _challenge(check.reason)})

    async def failed_elsewhere(self, request: Request, reason: str) -> None:
        """Count a failure that is not a token's (a wrong webhook key) like a failed
        authentication: slowed down and audited the same way."""
        client = request.client.host if request.client else "unknown"
        await self._slow_down(Failure(client, reason, client))

    async def _slow_down(self, failure: Failure) -> None:
        """Count ``failure`` (shared by all replicas) and wait as long as the count says."""
        delay = await anyio.to_thread.run_sync(self.throttle.failed, failure)
        if delay:
            await anyio.sleep(delay)

    async def _peer_identity(self, request: Request, peer: PeerCred) -> Identity:
        """The account of the process on the other end of the local socket (see the module
        docstring for what a token and an account without a role mean there)."""
        # the account (pwd/grp lookups) and whether the policy gives it any role, cached 60 s;
        # a cached answer costs no thread hop, so the socket stays cheaper than a token check
        cached = self._identities.get(f"\x00uid:{peer.uid}")
        if cached is not None and cached[0] > self.monotonic():
            identity = cached[1]
        else:
            identity = await anyio.to_thread.run_sync(self._uid_identity, peer.uid)
        request.state.identity = identity
        request.state.token = None
        if request.headers.get("authorization") is not None:
            token_id = tokens.token_id_of(request.headers["authorization"].partition(" ")[2].strip())
            await self._socket_refusal(identity, peer, "token_on_socket", {"token_id": token_id} if token_id else {})
            raise ProblemError(401, f"the local socket identifies you by your account ({identity.name}, uid "
                                    f"{peer.uid}); do not send a token on it (tokens are for TCP clients)",
                               slug="token-on-socket", title="Token on the local socket")
        policy = self.service.engine.policy
        if not getattr(policy, "single_user", False) and not self._has_role(identity):
            await self._socket_refusal(identity, peer, "no_role", {})
            where = getattr(policy, "path", None) or "the policy"
            raise ProblemError(403, f"your account {identity.name} (uid {peer.uid}) has no role on this signoff "
                                    f"server; ask its administrator to add user:{identity.name} (or one of your "
                                    f"groups) to a binding in {where}", slug="no-role", title="No role")
        return identity

    async def _socket_refusal(self, identity: Identity, peer: PeerCred, reason: str, data: dict[str, Any]) -> None:
        action = "policy.denied" if reason == "no_role" else "auth.refused"
        extra = {"uid": peer.uid, "pid": peer.pid, **data}
        await self._slow_down(Failure(f"{peer.origin} {reason}", reason, peer.origin, actor=identity.name,
                                      action=action, extra=extra))

    def refused_on_socket(self, request: Request, reason: str, data: dict[str, Any]) -> None:
        """Audit a refusal of something a socket caller sent (e.g. a body field naming a
        person), rate-limited like the rest; called by the app's error handlers."""
        peer = peer_of(request.scope)
        identity = getattr(request.state, "identity", None)
        if peer is None or identity is None:
            return
        extra = {"uid": peer.uid, "pid": peer.pid, **data}
        self.throttle.failed(Failure(f"{peer.origin} {reason}", reason, peer.origin, actor=identity.name,
                                     action="auth.refused", extra=extra))

    def _has_role(self, identity: Identity) -> bool:
        key = (identity.name, identity.groups)
        known = self._roles.get(key)
        if known is None:
            known = bool(self.service.engine.policy.describe(identity).get("roles"))
            if len(self._roles) > 10_000:
                self._roles.clear()
            self._roles[key] = known
        return known

    def _uid_identity(self, uid: int) -> Identity:
        key = f"\x00uid:{uid}"
        now = self.monotonic()
        cached = self._identities.get(key)
        if cached and cached[0] > now:
            return cached[1]
        identity = identity_for_uid(uid, source="socket")
        self._identities[key] = (now + 60.0, identity)
        return identity

    def identity_for_user(self, user: str) -> Identity:
        """The identity of a token's user (OS groups where the account exists, cached 60 s),
        for sign-ins that verified the token themselves (the web page)."""
        return self._identity(user)

    def still_valid(self, token: str | None) -> bool:
        """Re-check a token during a long request (the event stream)."""
        return self._verify(token).ok

    # -- internals -----------------------------------------------------------------------
    def _verify(self, token: str | None) -> tokens.TokenCheck:
        if token == "\x00malformed":
            return tokens.TokenCheck(None, None, tokens.MALFORMED)
        return tokens.verify(self.db, token, now=self.clock.now())

    def _verified_identity(self, token: str | None) -> tuple[tokens.TokenCheck, Identity | None]:
        """The token's check and, when it passed, its user's identity: in one worker-thread hop
        (performance: handing work to worker threads was ~7% of a replica's GIL-holding samples
        under load, 4 clients on 3 replicas; an authenticated start made three hops, now two)."""
        check = self._verify(token)
        if check.ok and check.user is not None:
            return check, self._identity(check.user)
        return check, None

    def _identity(self, user: str) -> Identity:
        now = self.monotonic()
        cached = self._identities.get(user)
        if cached and cached[0] > now:
            return cached[1]
        identity = identity_for(user)
        self._identities[user] = (now + 60.0, identity)
        return identity

    def flush(self, *, force: bool = False) -> None:
        """Audit the failures not audited yet (those inside a client's 10 s quiet period);
        called every few seconds by the app and once at shutdown with ``force``."""
        self.throttle.flush(force=force)


def _challenge(reason: str | None) -> str:
    if reason in (None, tokens.MISSING):
        return 'Bearer realm="signoff"'
    return 'Bearer realm="signoff", error="invalid_token"'
