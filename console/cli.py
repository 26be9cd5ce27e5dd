"""The `signoff` command line.

Options shared by every command (--data-dir, --flows, ...) may be written before or after
the subcommand; the value written last on the line wins. Exit codes: 0 success, 1 an
operation was refused or failed (e.g. one of several ids), 2 bad input or usage.
Errors are one clear message on stderr, never a traceback for a user mistake.

This module holds the root group, the options and helpers every command shares, and the
console's start; each command lives in a console/cli_*.py module (see SUBCOMMANDS) that is
imported only when that command runs (or for --help), so `signoff` and `signoff approve`
do not pay for building the server's or the audit's options at every start.
"""
from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from signoff.console.settings import Settings
from signoff.console.startup import release_collector
from signoff.engine.errors import NotWritable, SignoffError, UsageError

if TYPE_CHECKING:
    from signoff.console.backend import Backend

# -- shared options ---------------------------------------------------------------------


def _store(name: str, multiple: bool = False) -> Callable[[click.Context, click.Parameter, Any], None]:
    def callback(ctx: click.Context, _param: click.Parameter, value: Any) -> None:
        settings: Settings = ctx.find_root().ensure_object(Settings)
        if multiple:
            if value:
                setattr(settings, name, [Path(v) for v in value])
        elif value is not None:
            setattr(settings, name, Path(value) if name in PATH_SETTINGS else value)

    return callback


PATH_SETTINGS = ("data_dir", "policy", "notifications", "token_file", "ca_cert", "socket")


def common_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--data-dir", type=click.Path(file_okay=False, readable=False), expose_value=False,
                     is_eager=True, callback=_store("data_dir"),
                     help="Data directory (default: $SIGNOFF_DATA_DIR or the user data dir)."),
        click.option("--database", metavar="URL", expose_value=False, is_eager=True, callback=_store("database"),
                     help="PostgreSQL database, postgresql://... (default: $SIGNOFF_DATABASE_URL or `database` "
                          "in the config file; without it, the SQLite file in the data directory)."),
        click.option("--flows", "flows", multiple=True, type=click.Path(), expose_value=False, is_eager=True,
                     callback=_store("flow_dirs", multiple=True), help="Flow folder (repeatable)."),
        click.option("--policy", type=click.Path(dir_okay=False), expose_value=False, is_eager=True,
                     callback=_store("policy"), help="Policy file (default: policy.yaml in the config dir)."),
        click.option("--notifications", type=click.Path(dir_okay=False), expose_value=False, is_eager=True,
                     callback=_store("notifications"),
                     help="Notification targets (default: notifications.yaml in the config dir)."),
        click.option("--server", metavar="URL", expose_value=False, is_eager=True, callback=_store("server"),
                     help="Use a signoff server instead of the embedded engine (default: $SIGNOFF_SERVER "
                          "or `server` in the config file)."),
        click.option("--socket", metavar="PATH", type=click.Path(dir_okay=False), expose_value=False,
                     is_eager=True, callback=_store("socket"),
                     help="The local server's Unix socket (default: $SIGNOFF_SOCKET, `socket` in the config "
                          "file, else /run/signoff/signoff.sock when it exists). `serve` listens on it."),
        click.option("--token-file", type=click.Path(dir_okay=False), expose_value=False, is_eager=True,
                     callback=_store("token_file"), help="Read the server token from FILE (mode 0600)."),
        click.option("--ca-cert", type=click.Path(dir_okay=False), expose_value=False, is_eager=True,
                     callback=_store("ca_cert"), help="CA certificate to verify the server with."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def settings() -> Settings:
    return click.get_current_context().find_root().ensure_object(Settings)


def service(*, tick: bool = True):
    """The approval service on the embedded engine, after applying due timers (``tick=False``:
    the caller runs them later - the console does, right after its first paint)."""
    ctx = click.get_current_context()
    root = ctx.find_root()
    svc = root.meta.get("service")
    if svc is None:
        from signoff.engine.core import Engine
        from signoff.engine.service import ApprovalService

        s = settings()
        try:
            engine = Engine(s.resolved_data_dir(), s.resolved_flow_dirs(), policy=s.load_policy(),
                            notifications=s.load_notifications(), public_url=s.resolved_public_url(),
                            database=s.resolved_database())
        except NotWritable as exc:
            raise NotWritable(f"{exc.message}\n{SHARING_HINT}") from None
        svc = ApprovalService(engine)
        if tick:
            svc.tick()
        root.meta["service"] = svc
        root.call_on_close(engine.close)
    return svc


#: what to do when this account cannot write the data directory (README "Sharing one machine")
SHARING_HINT = (
    "To share one queue between accounts, the data directory's owner runs the local server, e.g. "
    "`signoff serve --socket /run/signoff/signoff.sock --data-dir DIR --policy FILE` (deploy/systemd has the "
    "units), and everyone else's signoff uses it: --socket PATH, $SIGNOFF_SOCKET, or nothing when it is at "
    "/run/signoff/signoff.sock. Or use a data directory of your own with --data-dir.")


def actor():
    from signoff.engine.identity import os_identity

    return os_identity()


def backend(*, tick: bool = True, origin: str = "cli", check_token: bool = False) -> Backend:
    """What every command talks to: the embedded engine, or a server with --server/$SIGNOFF_SERVER.

    Both implement console.backend.Backend with the same results, so commands behave and
    print the same in both modes. ``origin``: the decisions' source in the audit trail
    (embedded mode; a server records its own). ``check_token``: ask the server who we are
    now (the console, before it opens); a command finds out with its own first call."""
    root = click.get_current_context().find_root()
    current: Backend | None = root.meta.get("backend")
    if current is None:
        s = settings()
        kind, url = s.endpoint()
        if kind == "socket":
            from signoff.console.remote import RemoteBackend

            current = RemoteBackend.local(str(url), check=check_token)
            root.call_on_close(current.close)
        elif url:
            from signoff.console.credentials import resolve_token
            from signoff.console.remote import RemoteBackend

            current = RemoteBackend(url, resolve_token(url, s.token_file),
                                    ca_cert=str(s.ca_cert) if s.ca_cert else None, check=check_token,
                                    token_source=lambda: resolve_token(url, s.token_file))
            root.call_on_close(current.close)
        else:
            from signoff.console.backend import LocalBackend

            current = LocalBackend(service(tick=tick), actor(), origin=origin)
            current.tick_after_load = not tick
        root.meta["backend"] = current
    return current


def local_only(what: str) -> None:
    kind, where = settings().endpoint()
    if kind != "embedded":
        raise UsageError(f"{what} works on the embedded engine only; the server at {where} does this itself "
                         "(to use a data directory directly, give --data-dir)")


def parse_inputs(pairs: tuple[str, ...]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"-i expects KEY=VALUE, got `{pair}`")
        values[key.strip()] = value
    return values


def fail_if_any(outcomes: list) -> None:
    if any(not o.ok for o in outcomes):
        raise SystemExit(1)


# -- the group ----------------------------------------------------------------------------

#: command name -> "module:object" of its click command or group
SUBCOMMANDS = {
    "flows": "signoff.console.cli_flows:flows",
    "run": "signoff.console.cli_executions:run",
    "executions": "signoff.console.cli_executions:executions",
    "worker": "signoff.console.cli_executions:worker",
    "triggers": "signoff.console.cli_triggers:triggers",
    "stats": "signoff.console.cli_stats:stats",
    "pending": "signoff.console.cli_approvals:pending",
    "show": "signoff.console.cli_approvals:show",
    "open": "signoff.console.cli_open:open_link",
    "approve": "signoff.console.cli_approvals:approve",
    "deny": "signoff.console.cli_approvals:deny",
    "cancel": "signoff.console.cli_approvals:cancel",
    "kv": "signoff.console.cli_kv:kv",
    "secret": "signoff.console.cli_kv:secret",
    "history": "signoff.console.cli_audit:history",
    "audit": "signoff.console.cli_audit:audit",
    "keys": "signoff.console.cli_keys:keys",
    "login": "signoff.console.cli_remote:login",
    "logout": "signoff.console.cli_remote:logout",
    "serve": "signoff.console.cli_server:serve",
    "token": "signoff.console.cli_server:token",
    "db": "signoff.console.cli_db:db",
    "demo": "signoff.console.cli_demo:demo",
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use (click's documented recipe for
    lazily loaded subcommands)."""

    def __init__(self, *args: Any, lazy_subcommands: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_subcommands = dict(lazy_subcommands or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_subcommands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = self.lazy_subcommands.pop(cmd_name, None)
        if target is not None:
            module_name, _, attr = target.partition(":")
            command = getattr(importlib.import_module(module_name), attr)
            if not isinstance(command, click.Command):
                raise TypeError(f"{target} is not a click command")
            self.add_command(command, cmd_name)
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyGroup, lazy_subcommands=SUBCOMMANDS, invoke_without_command=True,
             context_settings={"help_option_names": ["-h", "--help"]})
@common_options
@click.option("--theme", metavar="NAME", help="Console theme for this run (see the palette: Theme: ...).")  # console
@click.version_option(package_name="signoff")
@click.pass_context
def cli(ctx: click.Context, theme: str | None) -> None:
    """signoff: human approvals for automated workflows, from the terminal.

    Without a command, opens the console on the embedded engine."""
    if ctx.invoked_subcommand is not None:
        release_collector()  # held only while the console starts (console/startup.py)
    else:
        if not (sys.stdin.isatty() and sys.stdout.isatty()):
            # a script or a pipe: the console needs a terminal, so say what to use instead
            click.echo(ctx.get_help())
            raise UsageError("the console needs an interactive terminal; use one of the commands above")
        open_console(theme=theme)


# -- the console ---------------------------------------------------------------------------
# The bare `signoff` command opens the console (see `cli` above); `signoff demo`
# (console/cli_demo.py) seeds a demo data directory and opens the console on it.


def open_console(*, theme: str | None = None, on_app: Callable[[Any], None] | None = None) -> None:
    """Run the full-screen console on the embedded engine (data dir and flows from settings).

    Start-up is kept short: the engine's tick (timers, queued work, notifications) runs in the
    pending view's load worker instead of before the first paint, and the first screenful
    of pending rows is read in a thread while the console's modules are still importing."""
    b = backend(tick=False, origin="console", check_token=True)
    b.prefetch_pending()
    from signoff.console.app import SignoffApp

    app = SignoffApp(b, theme=theme, config=settings().console_config())
    if on_app is not None:  # `signoff demo`: its sinks show what flows sent
        on_app(app)
    app.run()


# -- entry point --------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    try:
        cli.main(args=argv, prog_name="signoff", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(2)
    except SignoffError as exc:
        click.echo(f"signoff: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(0)
    finally:
        release_collector()


if __name__ == "__main__":
    main()
