"""`signoff open LINK`: the console, opened on the request a link leads to."""
from __future__ import annotations

import sys

import click

from signoff.console.cli import backend, common_options, settings
from signoff.engine.errors import UsageError


@click.command("open")
@common_options
@click.argument("link")
@click.option("--theme", metavar="NAME", help="Console theme for this run.")
def open_link(link: str, theme: str | None) -> None:
    """Open the console on the request LINK leads to: a link from a notification
    (https://HOST/r/ID or signoff://request/ID) or a bare request or execution id.

    The request is highlighted with its context shown; one no longer pending is shown with
    what became of it. Works on the embedded engine and with --server."""
    from signoff.console.open_link import resolve_request
    from signoff.engine.links import parse_link

    parse_link(link)  # a malformed link is a usage error wherever the command runs
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise UsageError("the console needs an interactive terminal; use `signoff show ID` in scripts")
    b = backend(tick=False, origin="console", check_token=True)
    request = resolve_request(b, link)
    b.prefetch_pending()
    from signoff.console.app import SignoffApp

    SignoffApp(b, theme=theme, config=settings().console_config(), open_request=request).run()
