"""`signoff db copy --to postgresql://...`: move the SQLite database of --data-dir to PostgreSQL.

Host administration, like `signoff token`: it acts on the data directory with that directory's
filesystem permissions and on the target with the URL's credentials.
"""
from __future__ import annotations

import click

from signoff.console import output
from signoff.console.cli import common_options, settings


@click.group()
def db() -> None:
    """The database: moving the SQLite file to PostgreSQL."""


@db.command("copy")
@common_options
@click.option("--to", "target_url", required=True, metavar="URL",
              help="The empty PostgreSQL database to copy into (postgresql://...).")
@click.option("--json", "as_json", is_flag=True)
def db_copy(target_url: str, as_json: bool) -> None:
    """Copy the SQLite database of --data-dir into an empty PostgreSQL database, then verify
    the audit chain on both: the copy must end with the same event and hash."""
    from signoff.engine.store import copy_sqlite_to, redact_url

    data_dir = settings().resolved_data_dir()
    report = copy_sqlite_to(data_dir, target_url)
    if as_json:
        output.emit_json(report.to_dict())
    else:
        rows = sum(report.tables.values())
        click.echo(f"copied {rows} rows in {len(report.tables)} tables from {data_dir} to {redact_url(target_url)}")
        if report.verified:
            head = f"event {report.head_seq}, {report.head_hash}" if report.head_seq else "empty log"
            click.echo(f"audit verify: ok on both; the same head ({head})")
    if not report.verified:
        click.echo(f"signoff: {report.problem}", err=True)
        raise SystemExit(1)
