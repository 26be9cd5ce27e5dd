"""The `signoff` command line.

Options shared by every command (--data-dir, --flows, ...) may be written before or after
the subcommand; the value written last on the line wins. Exit codes: 0 success, 1 an
operation was refused or failed (e.g. one of several ids), 2 bad input or usage.
Errors are one clear message on stderr, never a traceback for a user mistake.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Callable

import click

from console import output
from console.settings import Settings
from engine.errors import SignoffError, UsageError

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


PATH_SETTINGS = ("data_dir", "policy", "notifications", "token_file", "ca_cert")


def common_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option("--data-dir", type=click.Path(file_okay=False), expose_value=False, is_eager=True,
                     callback=_store("data_dir"), help="Data directory (default: $SIGNOFF_DATA_DIR or the user data dir)."),
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
        from engine.core import Engine
        from engine.service import ApprovalService

        s = settings()
        engine = Engine(s.resolved_data_dir(), s.resolved_flow_dirs(), policy=s.load_policy(),
                        notifications=s.load_notifications())
        svc = ApprovalService(engine)
        if tick:
            svc.tick()
        root.meta["service"] = svc
        root.call_on_close(engine.close)
    return svc


def actor():
    from engine.identity import os_identity

    return os_identity()


def backend(*, tick: bool = True):
    """What every command talks to: the embedded engine, or a server with --server/$SIGNOFF_SERVER.

    Both implement console.backend.Backend with the same results, so commands behave and
    print the same in both modes."""
    root = click.get_current_context().find_root()
    current = root.meta.get("backend")
    if current is None:
        s = settings()
        url = s.resolved_server()
        if url:
            from console.credentials import resolve_token
            from console.remote import RemoteBackend

            current = RemoteBackend(url, resolve_token(url, s.token_file),
                                    ca_cert=str(s.ca_cert) if s.ca_cert else None)
            root.call_on_close(current.close)
        else:
            from console.backend import LocalBackend

            current = LocalBackend(service(tick=tick), actor())
            current.tick_after_load = not tick
        root.meta["backend"] = current
    return current


def local_only(what: str) -> None:
    if settings().resolved_server():
        raise UsageError(f"{what} works on the embedded engine only; on a server host run it there")


def parse_inputs(pairs: tuple[str, ...]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"-i expects KEY=VALUE, got `{pair}`")
        values[key.strip()] = value
    return values


def new_key() -> str:
    """An idempotency key per command run: a retried HTTP call never decides twice."""
    import uuid

    return uuid.uuid4().hex


def fail_if_any(outcomes: list) -> None:
    if any(not o.ok for o in outcomes):
        raise SystemExit(1)


# -- the group ----------------------------------------------------------------------------


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@common_options
@click.option("--theme", metavar="NAME", help="Console theme for this run (see the palette: Theme: ...).")  # console
@click.version_option(package_name="signoff")
@click.pass_context
def cli(ctx: click.Context, theme: str | None) -> None:
    """signoff: human approvals for automated workflows, from the terminal.

    Without a command, opens the console on the embedded engine."""
    if ctx.invoked_subcommand is None:
        if not (sys.stdin.isatty() and sys.stdout.isatty()):
            # a script or a pipe: the console needs a terminal, so say what to use instead
            click.echo(ctx.get_help())
            raise UsageError("the console needs an interactive terminal; use one of the commands above")
        open_console(theme=theme)  # console: see the "console" block below


# -- flows --------------------------------------------------------------------------------


@cli.group()
def flows() -> None:
    """List and validate flows."""


@flows.command("list")
@common_options
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def flows_list(as_json: bool) -> None:
    """List the flows in the flow folders."""
    b = backend()
    items = b.list_flows()
    problems = b.flow_problems()
    if as_json:
        output.emit_json({"flows": items, "problems": problems})
        return
    click.echo(output.table(("NAMESPACE", "ID", "INPUTS", "DESCRIPTION"),
                            [(f["namespace"], f["id"], ", ".join(i["id"] for i in f["inputs"]),
                              (f["description"] or "").strip()) for f in items]))
    for problem in problems:
        click.echo(f"warning: {problem}", err=True)


@flows.command("validate")
@common_options
@click.argument("paths", nargs=-1, type=click.Path())
def flows_validate(paths: tuple[str, ...]) -> None:
    """Check flow files (or the flow folders) and report every problem with file:line:col."""
    from engine.errors import FlowLoadError
    from engine.flows.loader import load_flow_dirs, load_flow_file

    targets = [Path(p) for p in paths] or [d for d in settings().resolved_flow_dirs()]
    problems: list[str] = []
    count = 0
    for target in targets:
        if target.is_dir():
            result = load_flow_dirs([target])
            count += len(result.flows)
            problems += [str(p) for p in result.problems]
            for flow in result.flows.values():
                click.echo(f"ok  {flow.path}  ({flow.namespace}.{flow.id})")
        elif target.exists():
            try:
                flow = load_flow_file(target)
                count += 1
                click.echo(f"ok  {target}  ({flow.namespace}.{flow.id})")
            except FlowLoadError as exc:
                problems += [str(p) for p in exc.problems]
        else:
            problems.append(f"{target}: no such file or directory")
    for problem in problems:
        click.echo(problem, err=True)
    if problems:
        raise SystemExit(2)
    click.echo(f"{count} flow(s) valid")


# -- executions ---------------------------------------------------------------------------


@cli.command()
@common_options
@click.argument("namespace")
@click.argument("flow_id")
@click.option("-i", "--input", "inputs", multiple=True, metavar="KEY=VALUE", help="Flow input (repeatable).")
@click.option("--wait", is_flag=True, help="Wait until the execution ends (others may decide meanwhile).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def run(namespace: str, flow_id: str, inputs: tuple[str, ...], wait: bool, as_json: bool) -> None:
    """Start an execution of NAMESPACE FLOW_ID and run it to its first approval or its end."""
    b = backend()
    execution = b.start_execution(namespace, flow_id, parse_inputs(inputs))
    if wait:
        from engine.runtime.runner import TERMINAL_EXECUTION_STATES

        while execution["state"] not in TERMINAL_EXECUTION_STATES:
            time.sleep(0.5)
            b.tick()
            execution = b.get_execution(execution["id"])
    if as_json:
        output.emit_json(execution)
    else:
        click.echo(output.execution_text(execution))
    if execution["state"] in ("FAILED", "KILLED", "CANCELLED"):
        raise SystemExit(1)


@cli.group()
def executions() -> None:
    """Inspect executions."""


@executions.command("list")
@common_options
@click.option("--state", help="Only executions in this state (RUNNING, PAUSED, SUCCESS, FAILED...).")
@click.option("--limit", type=click.IntRange(1, 100000), default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def executions_list(state: str | None, limit: int, as_json: bool) -> None:
    """Recent executions, newest first."""
    items = backend().list_executions(state=state, limit=limit)
    if as_json:
        output.emit_json(items)
        return
    click.echo(output.table(("ID", "STATE", "NAMESPACE", "FLOW", "STARTED", "BY"),
                            [(e["id"], e["state"], e["namespace"], e["flow_id"], e["created_at"][:19],
                              e["started_by"]) for e in items]))


@executions.command("show")
@common_options
@click.argument("execution_id")
@click.option("--json", "as_json", is_flag=True)
def executions_show(execution_id: str, as_json: bool) -> None:
    """State, inputs, task runs, outputs and logs of one execution."""
    execution = backend().get_execution(execution_id)
    if as_json:
        output.emit_json(execution)
    else:
        click.echo(output.execution_text(execution))


# -- approvals ----------------------------------------------------------------------------


@cli.command()
@common_options
@click.option("--namespace", help="Only this namespace (a trailing * matches a prefix).")
@click.option("--flow", help="Only this flow id.")
@click.option("--json", "as_json", is_flag=True)
def pending(namespace: str | None, flow: str | None, as_json: bool) -> None:
    """Pending approval requests you can see, soonest due first."""
    items = backend().list_pending(namespace=namespace, flow=flow)
    if as_json:
        output.emit_json(items)
    elif items:
        click.echo(output.pending_table(items))
    else:
        click.echo("No pending approval requests.")


@cli.command()
@common_options
@click.argument("request_id")
@click.option("--json", "as_json", is_flag=True)
def show(request_id: str, as_json: bool) -> None:
    """One request with its context, form and decisions."""
    request = backend().get_request(request_id)
    if as_json:
        output.emit_json(request)
    else:
        click.echo(output.request_text(request))


def _report(outcomes: list, as_json: bool) -> None:
    if as_json:
        output.emit_json([o.to_dict() for o in outcomes])
    else:
        for o in outcomes:
            stream_err = not o.ok
            click.echo(f"{o.id}: {o.message}", err=stream_err)
            for field, message in o.errors.items():
                click.echo(f"  {field}: {message}", err=True)
    fail_if_any(outcomes)


@cli.command()
@common_options
@click.argument("request_ids", nargs=-1, required=True)
@click.option("-i", "--input", "inputs", multiple=True, metavar="KEY=VALUE", help="Form value (repeatable).")
@click.option("--reason", help="Why (kept in the audit trail).")
@click.option("--json", "as_json", is_flag=True)
def approve(request_ids: tuple[str, ...], inputs: tuple[str, ...], reason: str | None, as_json: bool) -> None:
    """Approve one or more requests with the same form values."""
    _report(backend().decide(request_ids, "approve", inputs=parse_inputs(inputs), reason=reason,
                             idempotency_key=new_key()), as_json)


@cli.command()
@common_options
@click.argument("request_ids", nargs=-1, required=True)
@click.option("--reason", help="Why (kept in the audit trail).")
@click.option("--json", "as_json", is_flag=True)
def deny(request_ids: tuple[str, ...], reason: str | None, as_json: bool) -> None:
    """Deny one or more requests; their executions are killed unless the task says otherwise."""
    _report(backend().decide(request_ids, "deny", reason=reason, idempotency_key=new_key()), as_json)


@cli.command()
@common_options
@click.argument("request_ids", nargs=-1, required=True)
@click.option("--reason", help="Why (kept in the audit trail).")
@click.option("--json", "as_json", is_flag=True)
def cancel(request_ids: tuple[str, ...], reason: str | None, as_json: bool) -> None:
    """Cancel pending requests you started (or any, as an admin); their executions are killed."""
    _report(backend().cancel(request_ids, reason), as_json)


# -- kv and secrets -----------------------------------------------------------------------


@cli.group()
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


@cli.group()
def secret() -> None:
    """Secrets read by secret() in flows (kept in the OS keyring)."""


@secret.command("set")
@common_options
@click.argument("name")
def secret_set(name: str) -> None:
    """Store secret NAME in the OS keyring; the value is read from the terminal or stdin, never argv."""
    from engine.runtime.functions import KEYRING_SERVICE

    if sys.stdin.isatty():
        value = click.prompt(f"Value for secret {name}", hide_input=True, confirmation_prompt=True)
    else:
        value = sys.stdin.read().rstrip("\n")
    if not value:
        raise UsageError("empty secret value")
    try:
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
    except ImportError:  # pragma: no cover - keyring is a dependency
        raise SignoffError("the keyring package is missing") from None
    click.echo(f"secret {name} stored in the OS keyring")


# -- worker -------------------------------------------------------------------------------


@cli.command()
@common_options
@click.option("--once", is_flag=True, help="Process what is due now, then exit.")
@click.option("--interval", type=click.FloatRange(0.05, 3600), default=1.0, show_default=True,
              help="Seconds between polls.")
def worker(once: bool, interval: float) -> None:
    """Run timers and continue executions left by other processes (including killed ones)."""
    local_only("`signoff worker`")
    svc = service()
    while True:
        done = svc.tick()
        if once:
            click.echo(f"processed {done} item(s)")
            return
        if not done:
            time.sleep(interval)


from console.cli_audit import register as _register_audit  # noqa: E402
_register_audit(cli)
from console.cli_remote import register as _register_remote  # noqa: E402
_register_remote(cli)
from console.cli_server import register as _register_server  # noqa: E402
_register_server(cli)


# -- console (owner: console) --------------------------------------------------------------
# The bare `signoff` command opens the console (see `cli` above); `signoff demo` seeds a demo
# data directory and opens the console on it.


def open_console(*, theme: str | None = None) -> None:
    """Run the full-screen console on the embedded engine (data dir and flows from settings).

    Start-up is kept short: the engine's tick (timers, queued work, notifications) runs in the
    pending view's load worker instead of before the first paint, and the first screenful
    of pending rows is read in a thread while the console's modules are still importing."""
    b = backend(tick=False)
    prefetch = getattr(b, "prefetch_pending", None)
    if callable(prefetch):
        prefetch()
    from console.app import SignoffApp

    SignoffApp(b, theme=theme).run()


@cli.command()
@common_options
@click.option("--theme", metavar="NAME", help="Console theme for this run.")
@click.option("--count", type=click.IntRange(1, 10000), default=40, show_default=True,
              help="How many pending requests to create.")
@click.option("--no-console", is_flag=True, help="Only create the demo data directory, then print where it is.")
def demo(theme: str | None, count: int, no_console: bool) -> None:
    """Create a demo data directory (sample flows, ~40 pending requests) and open the console on it.

    Without --data-dir a fresh temporary directory is used; a given --data-dir must be empty
    or not exist yet. The requests are started by demo people (dana, erik, ...); a policy in the
    data directory lets you decide them all."""
    import tempfile

    from console.demo import seed

    s = settings()
    if s.data_dir is None:
        s.data_dir = Path(tempfile.mkdtemp(prefix="signoff-demo-"))
    elif s.data_dir.exists() and any(s.data_dir.iterdir()):
        if not (s.data_dir / "policy.yaml").is_file() or not any(s.data_dir.glob("*.db*")):
            raise UsageError(f"--data-dir {s.data_dir} is not empty; give an empty or new directory")
        click.echo(f"reusing the demo data directory {s.data_dir}", err=True)
    if not (s.data_dir / "policy.yaml").is_file():
        report = seed(s.data_dir, user=actor().name, count=count)
        click.echo(f"demo data in {report['data_dir']}: {report['pending']} pending requests", err=True)
    else:
        from console.demo import set_demo_environment

        set_demo_environment()
    s.demo = True
    s.policy = s.data_dir / "policy.yaml"
    if no_console:
        click.echo(str(s.data_dir))
        return
    open_console(theme=theme)


# -- end of console block ----------------------------------------------------------------


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


if __name__ == "__main__":
    main()
