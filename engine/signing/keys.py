"""The registry of people's SSH public keys, and the server's nonces.

Decisions (taken for the issue's open points):

* Append-only: a key row is never deleted or changed except for its one-time revocation
  (``revoked_at``, ``revoked_by``). Registering a revoked key again makes a new row with a new
  validity interval, so an old signature is always checked against the row that was valid
  when it was made (``added_at <= signed time < revoked_at``).
* Registering your own key needs proof of possession: the key signs a fresh, single-use
  challenge (:data:`KEY_NAMESPACE`) the server issued to you. An admin (the ``admin`` role on
  every namespace) may register a key for someone else without it; that row says
  ``proof: admin`` and the audit event names the admin.
* Every registration and revocation is an audit event carrying the whole public key, so the
  key history is inside the hash chain too.
* Public keys are not secrets: anyone with any role may list every key and read the
  allowed_signers file; only the owner or an admin may revoke.
"""
from __future__ import annotations

import re
import secrets
from datetime import datetime, timedelta
from typing import Any

from signoff.engine.audit import append_event
from signoff.engine.clock import format_time, parse_time
from signoff.engine.errors import NotFound, Refused, UsageError
from signoff.engine.signing import sshsig
from signoff.engine.signing.statement import (
    DECISION_NAMESPACE,
    KEY_NAMESPACE,
    StatementError,
    registration_statement,
)

#: how long a key-registration challenge or a decision nonce may be used
NONCE_TTL = timedelta(minutes=10)
_USER_RE = re.compile(r"[^\s:/\\\x00]{1,128}")  # no NUL: engine.nul
_FINGERPRINT_RE = re.compile(r"SHA256:[A-Za-z0-9+/]{43}")

KEY_COLUMNS = ("id, owner, fingerprint, key_type, public_key, comment, added_at, added_by, proof, revoked_at,"
               " revoked_by")


def issue_nonce(tx: Any, owner: str, purpose: str, now: datetime) -> dict[str, str]:
    """A fresh random nonce for ``owner`` (``purpose``: ``key`` or ``decide``), stored with its expiry."""
    nonce = secrets.token_urlsafe(24)
    issued, expires = format_time(now), format_time(now + NONCE_TTL)
    tx.execute("DELETE FROM signing_nonces WHERE expires_at < ?", (issued,))
    tx.execute("INSERT INTO signing_nonces(nonce, owner, purpose, issued_at, expires_at) VALUES (?,?,?,?,?)",
               (nonce, owner, purpose, issued, expires))
    return {"nonce": nonce, "expires_at": expires}


def nonce_problem(tx: Any, nonce: str, owner: str, purpose: str, now: str, *, consume: bool) -> str | None:
    """Why ``nonce`` may not be used by ``owner`` now (None when it may); ``consume`` spends it."""
    row = tx.execute("SELECT owner, purpose, expires_at, used_at FROM signing_nonces WHERE nonce=?",
                     (nonce,)).fetchone()
    if row is None or row[0] != owner or row[1] != purpose:
        return "the statement's nonce was not issued to you by this server"
    if row[2] < now:
        return "the statement's nonce has expired; sign again"
    if row[3] is not None:
        return "the statement's nonce was already used"
    if consume:
        tx.execute("UPDATE signing_nonces SET used_at=? WHERE nonce=?", (now, nonce))
    return None


def check_user_name(user: str) -> str:
    if not _USER_RE.fullmatch(user or ""):
        raise UsageError(f"`{user}` is not a usable user name")
    return user


def check_fingerprint(text: str) -> str:
    value = (text or "").strip()
    if not _FINGERPRINT_RE.fullmatch(value):
        raise UsageError(f"`{text}` is not a key fingerprint; write it as `signoff keys list` shows it "
                         "(SHA256: and 43 base64 characters)")
    return value


def add_key(db: Any, *, actor: str, owner: str, key: sshsig.PublicKey, now: datetime, proof: str) -> dict[str, Any]:
    """Store a key for ``owner`` (proof checked by the caller); refuses a key already valid for anyone."""
    at = format_time(now)
    with db.write() as tx:
        current = tx.execute("SELECT owner FROM signing_keys WHERE fingerprint=? AND revoked_at IS NULL",
                             (key.fingerprint,)).fetchone()
        if current is not None:
            if current[0] == owner:
                raise Refused(f"key {key.fingerprint} is already registered for {owner}")
            raise Refused(f"key {key.fingerprint} is already registered for another identity; one key belongs "
                          "to one person")
        cur = tx.execute("INSERT INTO signing_keys(owner, fingerprint, key_type, public_key, comment, added_at,"
                         " added_by, proof) VALUES (?,?,?,?,?,?,?,?) RETURNING id",
                         (owner, key.fingerprint, key.key_type, key.openssh, key.comment or None, at, actor, proof))
        key_id = cur.fetchone()[0]  # RETURNING: PostgreSQL has no lastrowid
        append_event(tx, at=at, actor=actor, action="key.added",
                     data={"user": owner, "fingerprint": key.fingerprint, "key_type": key.key_type,
                           "public_key": key.openssh, "proof": proof})
        row = tx.execute(f"SELECT {KEY_COLUMNS} FROM signing_keys WHERE id=?", (key_id,)).fetchone()
    return key_row(row)


def revoke_key(db: Any, *, actor: str, fingerprint: str, owner: str | None, now: datetime) -> dict[str, Any]:
    """Revoke the valid key with ``fingerprint`` (of ``owner`` when given): dated, never deleted."""
    at = format_time(now)
    with db.write() as tx:
        sql = f"SELECT {KEY_COLUMNS} FROM signing_keys WHERE fingerprint=? AND revoked_at IS NULL"
        params: list[Any] = [fingerprint]
        if owner is not None:
            sql += " AND owner=?"
            params.append(owner)
        row = tx.execute(sql, params).fetchone()
        if row is None:
            raise NotFound(f"no valid key {fingerprint}" + (f" for {owner}" if owner else "")
                           + " (see `signoff keys list`)")
        tx.execute("UPDATE signing_keys SET revoked_at=?, revoked_by=? WHERE id=?", (at, actor, row[0]))
        append_event(tx, at=at, actor=actor, action="key.revoked",
                     data={"user": row[1], "fingerprint": fingerprint, "key_type": row[3]})
        row = tx.execute(f"SELECT {KEY_COLUMNS} FROM signing_keys WHERE id=?", (row[0],)).fetchone()
    return key_row(row)


def list_keys(db: Any, owner: str | None = None) -> list[dict[str, Any]]:
    sql = f"SELECT {KEY_COLUMNS} FROM signing_keys"
    params: list[Any] = []
    if owner is not None:
        sql += " WHERE owner=?"
        params.append(owner)
    return [key_row(r) for r in db.query(sql + " ORDER BY owner, id", params)]


def key_row(row: Any) -> dict[str, Any]:
    return {"id": row[0], "user": row[1], "fingerprint": row[2], "key_type": row[3], "public_key": row[4],
            "comment": row[5], "added_at": row[6], "added_by": row[7], "proof": row[8], "revoked_at": row[9],
            "revoked_by": row[10], "valid": row[9] is None}


def key_valid_at(conn: Any, owner: str, fingerprint: str, at: str) -> Any:
    """The key row of ``owner`` with ``fingerprint`` that was valid at time ``at``, or None."""
    return conn.execute(f"SELECT {KEY_COLUMNS} FROM signing_keys WHERE owner=? AND fingerprint=? AND added_at<=?"
                        " AND (revoked_at IS NULL OR revoked_at>?) ORDER BY id DESC LIMIT 1",
                        (owner, fingerprint, at, at)).fetchone()


def ssh_time(text: str) -> str:
    """An engine time as OpenSSH's YYYYMMDDHHMMSSZ (allowed_signers, -Overify-time)."""
    return parse_time(text).strftime("%Y%m%d%H%M%SZ")


def ssh_time_ceil(text: str) -> str:
    """``ssh_time`` rounded up to the next whole second (OpenSSH's resolution)."""
    from datetime import timedelta

    when = parse_time(text)
    if when.microsecond:
        when = when.replace(microsecond=0) + timedelta(seconds=1)
    return when.strftime("%Y%m%d%H%M%SZ")


def allowed_signers_line(key: dict[str, Any], namespace: str = DECISION_NAMESPACE) -> str:
    """One allowed_signers line for a key row, with its validity dates.

    OpenSSH compares whole seconds: ``valid-after`` is the registration time rounded down,
    ``valid-before`` the revocation time rounded up (so a key registered and revoked within
    one second still has a valid range). A signature made in the second of the revocation,
    after it, would pass OpenSSH's check; signoff refused it when it was made (it compares
    full times), so no such signature is in the trail."""
    options = [f'namespaces="{namespace}"', f'valid-after="{ssh_time(key["added_at"])}"']
    if key.get("revoked_at"):
        options.append(f'valid-before="{ssh_time_ceil(key["revoked_at"])}"')
    principal = key["user"]
    if re.search(r'[\s,"*?!]', principal):
        principal = '"' + principal.replace('"', "") + '"'
    return f"{principal} {','.join(options)} {key['public_key']}"


def allowed_signers(keys: list[dict[str, Any]], namespace: str = DECISION_NAMESPACE) -> str:
    return "".join(allowed_signers_line(k, namespace) + "\n" for k in keys)


def verify_registration(*, user: str, key: sshsig.PublicKey, nonce: str, signature: str) -> None:
    """Raises SignatureError unless ``signature`` is ``key``'s over the registration statement."""
    message = registration_statement(user, key, nonce).encode("utf-8")
    try:
        sig = sshsig.verify(message, signature, KEY_NAMESPACE)
    except (sshsig.SignatureError, StatementError) as exc:
        raise sshsig.SignatureError(f"proof of possession failed: {exc}") from None
    if sig.public_key.blob != key.blob:
        raise sshsig.SignatureError("proof of possession failed: the challenge was signed by a different key "
                                    f"({sig.public_key.fingerprint})")
