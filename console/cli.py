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
            setattr(settings, name, Path(value) if name in ("data_dir", "policy", "notifications") else value)

    return callback


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
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def settings() -> Settings:
    return click.get_current_context().find_root().ensure_object(Settings)


def service():
    """The approval service on the embedded engine, after applying due timers."""
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
        svc.tick()
        root.meta["service"] = svc
        root.call_on_close(engine.close)
    return svc


def actor():
    from engine.identity import os_identity

    return os_identity()


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


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@common_options
@click.version_option(package_name="signoff")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """signoff: human approvals for automated workflows, from the terminal."""
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())


# -- flows --------------------------------------------------------------------------------


@cli.group()
def flows() -> None:
    """List and validate flows."""


@flows.command("list")
@common_options
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def flows_list(as_json: bool) -> None:
    """List the flows in the flow folders."""
    svc = service()
    items = svc.list_flows(actor())
    problems = svc.flow_problems()
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
    svc = service()
    me = actor()
    execution = svc.start_execution(me, namespace, flow_id, parse_inputs(inputs))
    if wait:
        from engine.runtime.runner import TERMINAL_EXECUTION_STATES

        while execution["state"] not in TERMINAL_EXECUTION_STATES:
            time.sleep(0.5)
            svc.tick()
            execution = svc.get_execution(me, execution["id"])
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
    items = service().list_executions(actor(), state=state, limit=limit)
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
    execution = service().get_execution(actor(), execution_id)
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
    items = service().list_pending(actor(), namespace=namespace, flow=flow)
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
    request = service().get_request(actor(), request_id)
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
    _report(service().approve(actor(), request_ids, parse_inputs(inputs), reason), as_json)


@cli.command()
@common_options
@click.argument("request_ids", nargs=-1, required=True)
@click.option("--reason", help="Why (kept in the audit trail).")
@click.option("--json", "as_json", is_flag=True)
def deny(request_ids: tuple[str, ...], reason: str | None, as_json: bool) -> None:
    """Deny one or more requests; their executions are killed unless the task says otherwise."""
    _report(service().deny(actor(), request_ids, reason), as_json)


@cli.command()
@common_options
@click.argument("request_ids", nargs=-1, required=True)
@click.option("--reason", help="Why (kept in the audit trail).")
@click.option("--json", "as_json", is_flag=True)
def cancel(request_ids: tuple[str, ...], reason: str | None, as_json: bool) -> None:
    """Cancel pending requests you started (or any, as an admin); their executions are killed."""
    _report(service().cancel(actor(), request_ids, reason), as_json)


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
    service().kv_set(actor(), namespace, key, stored)
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
    svc = service()
    while True:
        done = svc.tick()
        if once:
            click.echo(f"processed {done} item(s)")
            return
        if not done:
            time.sleep(interval)


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
