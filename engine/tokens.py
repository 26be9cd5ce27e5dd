"""Bearer tokens for `signoff serve`.

A token reads ``so_<id>_<secret>``: ``id`` is 12 lower-case base32 characters (it names the
token in ``signoff token list`` and ``signoff token revoke``), ``secret`` is
``secrets.token_urlsafe(32)`` (256 random bits). The token is shown once, when issued; the
database keeps only SHA-256 of the secret. A salted slow hash is not needed: the secret is
256 random bits, not something a person chose, so it cannot be guessed from its hash.
Hashes are compared with :func:`hmac.compare_digest`.

Decisions:
- A token belongs to one user name (an OS account name or a name the policy uses); the
  server builds the identity from it (engine.server.auth).
- ``last_used_at`` is refreshed at most once a minute per token, so authenticating does not
  turn every read into a write.
- Issuing and revoking are audit events (``token.issued``, ``token.revoked``) by the local
  account that ran the command; the secret is never in the audit, the logs or the listing.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from signoff.engine.audit import append_event
from signoff.engine.clock import format_time, parse_time
from signoff.engine.errors import NotFound, UsageError
from signoff.engine.ids import random_token
from signoff.engine.nul import nul_problem

if TYPE_CHECKING:
    import sqlite3

    from signoff.engine.store import Database

PREFIX = "so"
_ID_LENGTH = 12
_TOKEN_RE = re.compile(r"so_([0-9a-z]{12})_([A-Za-z0-9_-]{20,100})")
_USER_RE = re.compile(r"[^\s:/\\]{1,128}")
#: how often last_used_at is refreshed
LAST_USED_EVERY = timedelta(minutes=1)

# why a token was not accepted (the `reason` of auth.failed audit events)
MISSING = "missing"
MALFORMED = "malformed"
UNKNOWN = "unknown"
REVOKED = "revoked"
EXPIRED = "expired"


@dataclass(frozen=True)
class TokenCheck:
    """The result of :func:`verify`: ``user`` and ``token_id`` when valid, else ``reason``."""

    user: str | None
    token_id: str | None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.user is not None


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def issue(db: Database, user: str, *, now: datetime, created_by: str, expires: timedelta | None = None,
          name: str | None = None) -> tuple[str, dict[str, Any]]:
    """Create a token for ``user``; returns (the token text - shown once, its listing row)."""
    if (problem := nul_problem(user, "USER") or nul_problem(name, "--name")) is not None:
        raise UsageError(problem)  # engine.nul: refused on both stores
    if not _USER_RE.fullmatch(user or ""):
        raise UsageError(f"`{user}` is not a usable user name (no spaces, `:`, `/` or `\\`, at most 128 characters)")
    if expires is not None and expires <= timedelta(0):
        raise UsageError("--expires must be a positive duration, e.g. P90D or PT12H")
    if name is not None and len(name) > 200:
        raise UsageError("--name is limited to 200 characters")
    secret = secrets.token_urlsafe(32)
    created = format_time(now)
    expires_at = format_time(now + expires) if expires is not None else None
    with db.write() as tx:
        token_id = random_token(_ID_LENGTH)
        while tx.execute("SELECT 1 FROM tokens WHERE id=?", (token_id,)).fetchone():
            token_id = random_token(_ID_LENGTH)
        tx.execute('INSERT INTO tokens(id, "user", name, hash, created_at, created_by, expires_at)'
                   " VALUES (?,?,?,?,?,?,?)",
                   (token_id, user, name, hash_secret(secret), created, created_by, expires_at))
        append_event(tx, at=created, actor=created_by, action="token.issued",
                     data={"token_id": token_id, "user": user, "name": name, "expires_at": expires_at})
    return f"{PREFIX}_{token_id}_{secret}", get(db, token_id)


def _row(r: sqlite3.Row) -> dict[str, Any]:
    return {"id": r["id"], "user": r["user"], "name": r["name"], "created_at": r["created_at"],
            "created_by": r["created_by"], "expires_at": r["expires_at"], "last_used_at": r["last_used_at"],
            "revoked_at": r["revoked_at"]}


def get(db: Database, token_id: str) -> dict[str, Any]:
    row = db.query_one("SELECT * FROM tokens WHERE id=?", (token_id,))
    if row is None:
        raise NotFound(f"no token `{token_id}` (see `signoff token list`)")
    return _row(row)


def list_tokens(db: Database, *, user: str | None = None) -> list[dict[str, Any]]:
    """Every token (never the secret or its hash), oldest first."""
    if user:
        rows = db.query('SELECT * FROM tokens WHERE "user"=? ORDER BY created_at, id', (user,))
    else:
        rows = db.query("SELECT * FROM tokens ORDER BY created_at, id")
    return [_row(r) for r in rows]


def revoke(db: Database, token_id: str, *, now: datetime, revoked_by: str) -> dict[str, Any]:
    """Revoke a token (idempotent: revoking a revoked token changes nothing)."""
    token_id = token_id.strip()
    if token_id.startswith(f"{PREFIX}_"):  # the whole token pasted: take its id, never echo the secret
        m = _TOKEN_RE.fullmatch(token_id)
        token_id = m.group(1) if m else token_id.split("_")[1]
    at = format_time(now)
    with db.write() as tx:
        row = tx.execute("SELECT * FROM tokens WHERE id=?", (token_id,)).fetchone()
        if row is None:
            raise NotFound(f"no token `{token_id}` (see `signoff token list`)")
        if row["revoked_at"] is None:
            tx.execute("UPDATE tokens SET revoked_at=? WHERE id=?", (at, token_id))
            append_event(tx, at=at, actor=revoked_by, action="token.revoked",
                         data={"token_id": token_id, "user": row["user"], "name": row["name"]})
    return get(db, token_id)


def token_id_of(token: str) -> str | None:
    """The id part of a well-formed token (for the audit; the secret is never kept)."""
    m = _TOKEN_RE.fullmatch(token or "")
    return m.group(1) if m else None


def verify(db: Database, token: str | None, *, now: datetime) -> TokenCheck:
    """Check a presented token; refreshes ``last_used_at`` (at most once a minute)."""
    if not token:
        return TokenCheck(None, None, MISSING)
    m = _TOKEN_RE.fullmatch(token)
    if m is None:
        return TokenCheck(None, None, MALFORMED)
    token_id, secret = m.groups()
    row = db.query_one("SELECT * FROM tokens WHERE id=?", (token_id,))
    # compare even when the id is unknown, so timing does not tell which ids exist
    stored = row["hash"] if row is not None else "0" * 64
    if not hmac.compare_digest(stored, hash_secret(secret)) or row is None:
        return TokenCheck(None, token_id, UNKNOWN)
    if row["revoked_at"] is not None:
        return TokenCheck(None, token_id, REVOKED)
    if row["expires_at"] is not None and parse_time(row["expires_at"]) <= now:
        return TokenCheck(None, token_id, EXPIRED)
    last = row["last_used_at"]
    if last is None or parse_time(last) + LAST_USED_EVERY <= now:
        try:
            with db.write() as tx:
                tx.execute("UPDATE tokens SET last_used_at=? WHERE id=?", (format_time(now), token_id))
        except Exception:  # noqa: BLE001 - bookkeeping only; never refuse a valid token for it
            pass
    return TokenCheck(row["user"], token_id)
