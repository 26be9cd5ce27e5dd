"""`signoff triggers list|disable|enable`: the flows that start by themselves."""
from __future__ import annotations

import click

from signoff.console import output
from signoff.console.cli import backend, common_options


@click.group()
def triggers() -> None:
    """Schedule, Webhook and Flow triggers of the flows."""


@triggers.command("list")
@common_options
@click.option("--json", "as_json", is_flag=True)
def triggers_list(as_json: bool) -> None:
    """Each trigger with its next due time and its last firing."""
    items = backend().list_triggers()
    if as_json:
        output.emit_json(items)
        return
    rows = []
    for t in items:
        detail = t["detail"]
        what = detail.get("cron") or detail.get("path") or f"{len(detail.get('conditions') or [])} condition(s)"
        state = f"off ({t['disabled']})" if t["disabled"] else "on"
        last = f"{(t['last_at'] or '')[:19]} {t['last_execution_id'] or ''}".strip() or "-"
        rows.append((f"{t['namespace']}.{t['flow_id']}", t["trigger_id"], t["type"].rsplit(".", 1)[-1], what, state,
                     (t["next_at"] or "-")[:19], last))
    click.echo(output.table(("FLOW", "TRIGGER", "TYPE", "WHAT", "STATE", "NEXT", "LAST FIRED"), rows))


def _switch(namespace: str, flow_id: str, trigger_id: str, enabled: bool, as_json: bool) -> None:
    item = backend().set_trigger_enabled(namespace, flow_id, trigger_id, enabled)
    if as_json:
        output.emit_json(item)
    else:
        word = "enabled" if enabled else "disabled"
        click.echo(f"trigger {namespace}.{flow_id}.{trigger_id} {word}")


@triggers.command("disable")
@common_options
@click.argument("namespace")
@click.argument("flow_id")
@click.argument("trigger_id")
@click.option("--json", "as_json", is_flag=True)
def triggers_disable(namespace: str, flow_id: str, trigger_id: str, as_json: bool) -> None:
    """Stop a trigger from firing (an admin of the namespace; audited)."""
    _switch(namespace, flow_id, trigger_id, False, as_json)


@triggers.command("enable")
@common_options
@click.argument("namespace")
@click.argument("flow_id")
@click.argument("trigger_id")
@click.option("--json", "as_json", is_flag=True)
def triggers_enable(namespace: str, flow_id: str, trigger_id: str, as_json: bool) -> None:
    """Let a trigger fire again; a Schedule continues from its next due time (no backfill)."""
    _switch(namespace, flow_id, trigger_id, True, as_json)
