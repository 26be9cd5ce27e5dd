"""`signoff serve` and `signoff token issue|list|revoke`.

Token commands are server-host administration: they act directly on the data directory
(`--data-dir`, the one `signoff serve` uses) with that directory's filesystem permissions -
whoever may write the database may already change anything in it, so no policy role is
asked for. Run them as the account the server runs as (e.g. `sudo -u signoff signoff token
issue alice`). Issuing and revoking are audit events by the local account.
"""
from __future__ import annotations

from pathlib import Path

import click

from signoff.console import output
from signoff.console.cli import actor, common_options, settings
from signoff.engine.errors import UsageError
from signoff.engine.server.run import DEFAULT_HOST, DEFAULT_PORT


def _db():
    from signoff.engine.store import open_database

    s = settings()
    return open_database(s.resolved_data_dir(), s.resolved_database())


def _now():
    from signoff.engine.clock import SystemClock

    return SystemClock().now()


@click.command()
@common_options
@click.option("--host", default=None, help=f"Address to listen on (default {DEFAULT_HOST}; not loopback: needs TLS "
                                            "or --insecure-http).")
@click.option("--port", type=click.IntRange(0, 65535), default=None,
              help=f"Port to listen on (default {DEFAULT_PORT}; 0: any free port; the one used is printed).")
@click.option("--socket-group", metavar="GROUP",
              help="With --socket PATH: only members of GROUP may connect (socket mode 0660); "
                   "default: every account (0666), the policy decides what each may do.")
@click.option("--tls-cert", type=click.Path(dir_okay=False), help="TLS certificate chain (PEM).")
@click.option("--tls-key", type=click.Path(dir_okay=False), help="TLS private key (PEM).")
@click.option("--single-user", is_flag=True,
              help="No policy file: every valid token holder may do everything (tokens are still required).")
@click.option("--insecure-http", is_flag=True,
              help="Allow plain HTTP on a non-loopback address (only behind a TLS-terminating proxy).")
@click.option("--public-url", metavar="URL",
              help="The URL people reach this server at (e.g. https://signoff.example.com): links in "
                   "notifications and appLink() become URL/r/ID (default: $SIGNOFF_PUBLIC_URL or `public_url` "
                   "in the config file; else signoff://request/ID links).")
@click.option("--log-level", type=click.Choice(["critical", "error", "warning", "info", "debug"]), default="info",
              show_default=True)
def serve(host: str | None, port: int | None, socket_group: str | None, tls_cert: str | None, tls_key: str | None,
          single_user: bool, insecure_http: bool, public_url: str | None, log_level: str) -> None:
    """Run the approval server: the JSON API under /api/v1 (OpenAPI at /openapi.json), the
    execution runner and the timers. Stops cleanly on SIGTERM.

    With --socket PATH it serves the same API on a Unix socket, where each caller is the
    account of the connecting process (from the kernel); alone, or next to TCP when --host
    or --port is given too."""
    from signoff.engine.server.run import serve as run_server

    s = settings()
    socket_path = s.socket  # the command line only: a server never listens where $SIGNOFF_SOCKET points
    if socket_path is None and host is None and port is None:
        host, port = DEFAULT_HOST, DEFAULT_PORT
    run_server(data_dir=s.resolved_data_dir(), database=s.resolved_database(), flow_dirs=s.resolved_flow_dirs(),
               policy=s.load_policy(),
               single_user=single_user, host=host, port=port, tls_cert=Path(tls_cert) if tls_cert else None,
               tls_key=Path(tls_key) if tls_key else None, insecure_http=insecure_http,
               notifications=s.load_notifications(), public_url=s.resolved_public_url(public_url),
               log_level=log_level, socket_path=Path(socket_path) if socket_path else None,
               socket_group=socket_group)


@click.group()
def token() -> None:
    """Bearer tokens for `signoff serve` (acts on the server's data directory)."""


@token.command("issue")
@common_options
@click.argument("user")
@click.option("--expires", metavar="DURATION", help="Lifetime as an ISO-8601 duration, e.g. P90D or PT12H "
                                                    "(default: never expires).")
@click.option("--name", "label", metavar="LABEL", help="What the token is for (shown by `token list`).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (includes the token).")
def token_issue(user: str, expires: str | None, label: str | None, as_json: bool) -> None:
    """Create a token for USER and print it once; only its hash is kept."""
    from signoff.engine import tokens
    from signoff.engine.durations import parse_duration

    lifetime = None
    if expires is not None:
        try:
            lifetime = parse_duration(expires, allow_negative=False)
        except ValueError as exc:
            raise UsageError(f"--expires: {exc}") from None
    db = _db()
    try:
        text, info = tokens.issue(db, user, now=_now(), created_by=actor().name, expires=lifetime, name=label)
    finally:
        db.close()
    if as_json:
        output.emit_json({**info, "token": text})
        return
    click.echo(text)
    expiry = f", expires {info['expires_at']}" if info["expires_at"] else ", never expires"
    click.echo(f"token {info['id']} for {user}{expiry}. It is shown only now: store it safely "
               "(the server keeps only its hash).", err=True)


@token.command("list")
@common_options
@click.option("--user", help="Only the tokens of this user.")
@click.option("--json", "as_json", is_flag=True)
def token_list(user: str | None, as_json: bool) -> None:
    """Every token: id, user, name, created, expires, last used, revoked (never the secret)."""
    from signoff.engine import tokens

    db = _db()
    try:
        items = tokens.list_tokens(db, user=user)
    finally:
        db.close()
    if as_json:
        output.emit_json(items)
        return
    if not items:
        click.echo("No tokens. Create one with `signoff token issue USER`.")
        return

    def short(t: str | None) -> str:
        return t[:19].replace("T", " ") if t else "-"

    click.echo(output.table(("ID", "USER", "NAME", "CREATED", "EXPIRES", "LAST USED", "REVOKED"),
                            [(t["id"], t["user"], t["name"] or "", short(t["created_at"]),
                              short(t["expires_at"]) if t["expires_at"] else "never", short(t["last_used_at"]),
                              short(t["revoked_at"]) if t["revoked_at"] else "no") for t in items]))


@token.command("revoke")
@common_options
@click.argument("token_id")
def token_revoke(token_id: str) -> None:
    """Revoke token TOKEN_ID (from `signoff token list`); the server refuses it at once."""
    from signoff.engine import tokens

    db = _db()
    try:
        info = tokens.revoke(db, token_id, now=_now(), revoked_by=actor().name)
    finally:
        db.close()
    click.echo(f"token {info['id']} of {info['user']} revoked")
