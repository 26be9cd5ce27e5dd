"""Where the client's server token comes from, and where `signoff login` keeps it.

Order (first found wins): ``--token-file FILE`` (refused unless the file is owned by the
user and readable by nobody else, i.e. mode 0600 or stricter), the ``SIGNOFF_TOKEN``
environment variable, then the OS keyring (service ``signoff``, username = the server URL).

Tokens are never written to plain files by signoff, never printed and never logged. Where no
keyring backend exists (most SSH boxes), saving says so plainly and offers the two other ways.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

from signoff.engine.errors import SignoffError, UsageError

KEYRING_SERVICE = "signoff"
ENV_TOKEN = "SIGNOFF_TOKEN"


def _no_keyring_message(url: str) -> str:
    return (f"no OS keyring is available on this machine (common over SSH), so the token for {url} cannot be "
            f"saved; instead set the environment variable {ENV_TOKEN}, or keep the token in a file only you "
            "can read (chmod 600 FILE) and pass --token-file FILE")


def _key(url: str) -> str:
    from signoff.console.remote import normalize_url

    return normalize_url(url)


def read_token_file(path: str | os.PathLike[str]) -> str:
    """The token in ``path``; refused unless it is a regular file of ours with mode 0600 (or stricter)."""
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise UsageError(f"token file {p} does not exist") from None
    except OSError as exc:
        raise UsageError(f"cannot read token file {p}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise UsageError(f"token file {p} is not a regular file")
    if st.st_uid != os.getuid():
        raise UsageError(f"token file {p} belongs to uid {st.st_uid}, not to you (uid {os.getuid()}); "
                         "refusing a token others can replace")
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        raise UsageError(f"token file {p} is readable or writable by others (mode {mode:04o}); "
                         f"run `chmod 600 {p}` and try again")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read token file {p}: {exc}") from None
    token = text.strip().splitlines()[0].strip() if text.strip() else ""
    if not token:
        raise UsageError(f"token file {p} is empty")
    return token


def keyring_token(url: str) -> str | None:
    """The token stored for ``url`` in the OS keyring, or None (also when there is no keyring)."""
    import keyring
    from keyring.errors import KeyringError

    try:
        return keyring.get_password(KEYRING_SERVICE, _key(url)) or None
    except KeyringError:  # includes NoKeyringError
        return None


def keyring_available() -> bool:
    import keyring
    from keyring.backends import fail

    backend = keyring.get_keyring()
    if isinstance(backend, fail.Keyring):
        return False
    # the chainer with nothing to chain is a fail backend in disguise
    inner = getattr(backend, "backends", None)
    return not (inner is not None and not inner)


def resolve_token(url: str, token_file: str | os.PathLike[str] | None = None) -> str:
    """The token to use for ``url``: ``--token-file``, then $SIGNOFF_TOKEN, then the keyring."""
    if token_file:
        return read_token_file(token_file)
    env = os.environ.get(ENV_TOKEN, "").strip()
    if env:
        return env
    token = keyring_token(url)
    if token:
        return token
    from signoff.console.backend import AuthError

    where = "" if keyring_available() else " (there is no OS keyring on this machine)"
    raise AuthError(f"no token for {_key(url)}{where}: run `signoff login {_key(url)}`, or set {ENV_TOKEN}, "
                    "or pass --token-file FILE")


def ensure_keyring(url: str) -> None:
    """Raise the plain "no keyring" UsageError before asking anyone for a token."""
    if not keyring_available():
        raise UsageError(_no_keyring_message(_key(url)))


def save_token(url: str, token: str) -> None:
    """Keep ``token`` for ``url`` in the OS keyring."""
    import keyring
    from keyring.errors import KeyringError, NoKeyringError

    ensure_keyring(url)
    try:
        keyring.set_password(KEYRING_SERVICE, _key(url), token)
    except NoKeyringError:
        raise UsageError(_no_keyring_message(_key(url))) from None
    except KeyringError as exc:
        raise SignoffError(f"the OS keyring refused to store the token: {exc}") from None


def delete_token(url: str) -> bool:
    """Remove the token kept for ``url``; False when none was stored."""
    import keyring
    from keyring.errors import KeyringError, NoKeyringError, PasswordDeleteError

    if not keyring_available():
        raise UsageError(f"no OS keyring is available on this machine, so no token is stored for {_key(url)}; "
                         f"unset {ENV_TOKEN} or delete your token file instead")
    try:
        keyring.delete_password(KEYRING_SERVICE, _key(url))
    except PasswordDeleteError:
        return False
    except NoKeyringError:
        raise UsageError(_no_keyring_message(_key(url))) from None
    except KeyringError as exc:
        raise SignoffError(f"the OS keyring refused to delete the token: {exc}") from None
    return True
