"""`signoff run`, `signoff executions list|show` and `signoff worker`."""
from __future__ import annotations

import time

import click

from signoff.console import output
from signoff.console.cli import backend, common_options, local_only, parse_inputs, service


@click.command()
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
        from signoff.engine.runtime.runner import TERMINAL_EXECUTION_STATES

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


@click.group()
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


def _rerun_result(execution: dict, as_json: bool) -> None:
    if as_json:
        output.emit_json(execution)
    else:
        click.echo(output.execution_text(execution))
    if execution["state"] in ("FAILED", "KILLED", "CANCELLED"):
        raise SystemExit(1)


@executions.command("restart")
@common_options
@click.argument("execution_id")
@click.option("--json", "as_json", is_flag=True)
def executions_restart(execution_id: str, as_json: bool) -> None:
    """Continue a FAILED or KILLED execution from its failed tasks; finished tasks and
    decisions are kept (no approval is asked again). The requester or an admin."""
    _rerun_result(backend().restart_execution(execution_id), as_json)


@executions.command("replay")
@common_options
@click.argument("execution_id")
@click.option("--from", "from_task", metavar="TASK_ID",
              help="Run again from this task; the tasks that finished before it are copied.")
@click.option("--revision", type=click.IntRange(min=1), help="Flow revision to use (default: the original's).")
@click.option("--json", "as_json", is_flag=True)
def executions_replay(execution_id: str, from_task: str | None, revision: int | None, as_json: bool) -> None:
    """Start a new execution copying an ended one up to a task (Kestra's replay)."""
    _rerun_result(backend().replay_execution(execution_id, from_task=from_task, revision=revision), as_json)


@click.command()
@common_options
@click.option("--once", is_flag=True, help="Process what is due now, then exit.")
@click.option("--interval", type=click.FloatRange(0.05, 3600), default=1.0, show_default=True,
              help="Seconds between polls.")
def worker(once: bool, interval: float) -> None:
    """Run timers, fire due Schedule triggers and continue executions left by other processes
    (including killed ones)."""
    local_only("`signoff worker`")
    svc = service()
    while True:
        done = svc.tick(schedules=True)
        if once:
            click.echo(f"processed {done} item(s)")
            return
        if not done:
            time.sleep(interval)
