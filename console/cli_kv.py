"""`signoff kv set` and `signoff secret set`: the values flows read with kv() and secret()."""
from __future__ import annotations

import sys
from typing import Any

import click

from signoff.console.cli import backend, common_options
from signoff.engine.errors import SignoffError, UsageError


@click.group()
def kv() -> None:
    """The namespace key-value store read by kv() in flows."""


@kv.command("set")
@common_options
@click.option("--namespace", default="company", show_default=True, help="Namespace of the key.")
@click.option("--json", "as_json", is_flag=True, help="Parse VALUE as JSON (numbers, maps, lists).")
@click.argument("key")
@click.argument("value")
def kv_set(namespace: str, as_json: bool, key: str, value: str) -> None:
    """Set KEY to VALUE in a namespace."""
    import json

    stored: Any = value
    if as_json:
        try:
            stored = json.loads(value)
        except json.JSONDecodeError as exc:
            raise UsageError(f"VALUE is not valid JSON: {exc.msg} at column {exc.colno}") from None
    backend().kv_set(namespace, key, stored)
    click.echo(f"{namespace}/{key} set")


@click.group()
def secret() -> None:
    """Secrets read by secret() in flows (kept in the OS keyring)."""


@secret.command("set")
@common_options
@click.argument("name")
def secret_set(name: str) -> None:
    """Store secret NAME in the OS keyring; the value is read from the terminal or stdin, never argv."""
    from signoff.engine.runtime.functions import KEYRING_SERVICE

    if sys.stdin.isatty():
        value = click.prompt(f"Value for secret {name}", hide_input=True, confirmation_prompt=True)
    else:
        value = sys.stdin.read().rstrip("\n")
    if not value:
        raise UsageError("empty secret value")
    import keyring
    from keyring.errors import KeyringError, NoKeyringError

    try:
        keyring.set_password(KEYRING_SERVICE, f"secret:{name}", value)
    except NoKeyringError:
        raise UsageError(
            f"no OS keyring is available on this machine; instead export SECRET_{name} with the "
            f"base64-encoded value (e.g. `export SECRET_{name}=$(printf %s VALUE | base64)`)") from None
    except KeyringError as exc:
        raise SignoffError(f"the OS keyring refused the secret: {exc}") from None
    click.echo(f"secret {name} stored in the OS keyring")
