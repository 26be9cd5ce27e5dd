"""`signoff demo`: seed a demo data directory and open the console on it."""
from __future__ import annotations

from pathlib import Path

import click

from signoff.console.cli import actor, common_options, open_console, settings
from signoff.engine.errors import UsageError


@click.command()
@common_options
@click.option("--theme", metavar="NAME", help="Console theme for this run.")
@click.option("--count", type=click.IntRange(1, 10000), default=40, show_default=True,
              help="How many pending requests to create.")
@click.option("--no-console", is_flag=True, help="Only create the demo data directory, then print where it is.")
def demo(theme: str | None, count: int, no_console: bool) -> None:
    """Create a demo data directory (sample flows, ~40 pending requests) and open the console on it.

    Without --data-dir a fresh temporary directory is used; a given --data-dir must be empty
    or not exist yet. The requests are started by demo people (dana, erik, ...); a policy in the
    data directory lets you decide them all. What the flows send after a decision goes to
    loopback sinks inside this process: each call shows as a notice in the console and is
    kept in sent.jsonl in the data directory."""
    import tempfile

    from signoff.console.demo import seed

    s = settings()
    if s.data_dir is None:
        s.data_dir = Path(tempfile.mkdtemp(prefix="signoff-demo-"))
    elif s.data_dir.exists() and any(s.data_dir.iterdir()):
        if not (s.data_dir / "policy.yaml").is_file() or not any(s.data_dir.glob("*.db*")):
            raise UsageError(f"--data-dir {s.data_dir} is not empty; give an empty or new directory")
        click.echo(f"reusing the demo data directory {s.data_dir}", err=True)
    user = actor().name
    if not (s.data_dir / "policy.yaml").is_file():
        report = seed(s.data_dir, user=user, count=count)
        click.echo(f"demo data in {report['data_dir']}: {report['pending']} pending requests", err=True)
    s.demo = True
    s.policy = s.data_dir / "policy.yaml"
    if no_console:
        click.echo(str(s.data_dir))
        return
    from signoff.console.demo import console_notices, start_sinks

    sinks, notifications = start_sinks(s.data_dir, user)
    try:
        if s.notifications is None:
            s.notifications = notifications
        open_console(theme=theme, on_app=lambda app: sinks.subscribe(console_notices(app, sinks.log_path)))
    finally:
        sinks.stop()

