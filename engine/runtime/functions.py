"""The functions flows may call in expressions: secret(), kv(), now(), appLink().

secret('X') follows Kestra's open-source convention: the environment variable SECRET_X holds
the base64-encoded value. Failing that, the OS keyring (service "signoff", set with
`signoff secret set X`) is asked. Secret values never reach logs through us.
"""
from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from signoff.engine import jsonutil
from signoff.engine.clock import Clock
from signoff.engine.errors import ExpressionError

if TYPE_CHECKING:
    from signoff.engine.store import Database

KEYRING_SERVICE = "signoff"


def read_secret(name: str) -> str:
    if not isinstance(name, str) or not name:
        raise ExpressionError("secret() needs a secret name")
    encoded = os.environ.get(f"SECRET_{name}")
    if encoded is not None:
        try:
            return base64.b64decode(encoded, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise ExpressionError(f"environment variable SECRET_{name} is not valid base64 "
                                  f"(Kestra convention: base64-encode secret values)") from None
    try:
        import keyring
        from keyring.errors import KeyringError

        try:
            value = keyring.get_password(KEYRING_SERVICE, f"secret:{name}")
        except KeyringError:
            value = None
    except Exception:  # noqa: BLE001 - keyring backends fail in their own ways: no usable one here
        value = None
    if value is None:
        raise ExpressionError(f"secret `{name}` is not set: export SECRET_{name} (base64) or run "
                              f"`signoff secret set {name}`")
    return value


def make_functions(*, clock: Clock, namespace: str, kv_lookup: Callable[[str, str], Any],
                   app_link: Callable[[str | None], str]) -> dict[str, Callable[..., Any]]:
    def secret(name: str) -> str:
        return read_secret(name)

    def kv(key: str, *args: Any, **kwargs: Any) -> Any:
        """Kestra's kv(key, namespace=None, errorOnMissing=true), positional or named."""
        ns = kwargs.get("namespace", args[0] if args else None) or namespace
        errorOnMissing = kwargs.get("errorOnMissing", args[1] if len(args) > 1 else True)
        value = kv_lookup(ns, key)
        if value is None and errorOnMissing:
            raise ExpressionError(f"kv key `{key}` is not set in namespace `{ns}`: run "
                                  f"`signoff kv set --namespace {ns} {key} VALUE`")
        return value

    def now(*_args: Any) -> str:
        return clock.now().isoformat().replace("+00:00", "Z")

    def appLink(appId: str | None = None) -> str:
        return app_link(appId)

    return {"secret": secret, "kv": kv, "now": now, "appLink": appLink}


def kv_lookup_from(db: Database) -> Callable[[str, str], Any]:
    def lookup(namespace: str, key: str) -> Any:
        row = db.query_one("SELECT value FROM kv WHERE namespace=? AND key=?", (namespace, key))
        return None if row is None else jsonutil.loads(row["value"])

    return lookup
