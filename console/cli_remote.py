"""`signoff login URL` and `signoff logout [URL]`: keep a server token in the OS keyring.

The token is read with a hidden prompt, or from stdin when stdin is not a terminal (for
scripts: ``signoff login URL < token-file``); never from the command line, where other users
could see it in the process list. It is checked with ``GET /api/v1/me`` before it is saved.
"""
from __future__ import annotations

import os
import sys

import click

from signoff.engine.errors import UsageError


def _read_token(url: str) -> str:
    if sys.stdin is not None and sys.stdin.isatty():
        token = click.prompt(f"Token for {url}", hide_input=True, default="", show_default=False)
    else:
        token = (sys.stdin.readline() if sys.stdin is not None else "")
    token = token.strip()
    if not token:
        raise UsageError("no token given (type or paste it at the prompt, or pipe it on stdin)")
    return token


@click.command("login")
@click.argument("url")
@click.option("--ca-cert", type=click.Path(exists=True, dir_okay=False),
              help="CA certificate (PEM) that signed the server's TLS certificate, for private CAs.")
def login(url: str, ca_cert: str | None) -> None:
    """Ask for a token for the signoff server at URL, check it, and keep it in the OS keyring."""
    from signoff.console import credentials
    from signoff.console.cli import settings
    from signoff.console.remote import RemoteBackend, is_loopback, normalize_url

    url = normalize_url(url)
    credentials.ensure_keyring(url)  # say so before anyone pastes a token
    if url.startswith("http://") and not is_loopback(url):
        click.echo(f"warning: {url} is plain HTTP; the token will cross the network unencrypted", err=True)
    token = _read_token(url)
    root_ca = settings().ca_cert  # `signoff --ca-cert F login URL` works as for every command
    backend = RemoteBackend(url, token, ca_cert=ca_cert or (str(root_ca) if root_ca else None)
                            or os.environ.get("SIGNOFF_CA_CERT") or None)
    try:
        name = backend.identity
    finally:
        backend.close()
    credentials.save_token(url, token)
    click.echo(f"logged in to {url} as {name}")


@click.command("logout")
@click.argument("url", required=False)
def logout(url: str | None) -> None:
    """Forget the token kept for the signoff server at URL (default: --server, $SIGNOFF_SERVER
    or `server` in the config file, as for every other command)."""
    from signoff.console import credentials
    from signoff.console.cli import settings
    from signoff.console.remote import normalize_url

    url = url or settings().resolved_server()
    if not url:
        raise UsageError("which server? run `signoff logout URL`")
    url = normalize_url(url)
    if credentials.delete_token(url):
        click.echo(f"logged out of {url}")
    else:
        click.echo(f"no token was stored for {url}")
