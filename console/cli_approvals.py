"""`signoff pending|show|approve|deny|cancel`: the approval requests from the command line."""
from __future__ import annotations

import click

from signoff.console import output
from signoff.console.cli import backend, common_options, fail_if_any, parse_inputs


@click.command()
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


@click.command()
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


@click.command()
@common_options
@click.argument("request_ids", nargs=-1, required=True)
@click.option("-i", "--input", "inputs", multiple=True, metavar="KEY=VALUE", help="Form value (repeatable).")
@click.option("--reason", help="Why (kept in the audit trail).")
@click.option("--json", "as_json", is_flag=True)
def approve(request_ids: tuple[str, ...], inputs: tuple[str, ...], reason: str | None, as_json: bool) -> None:
    """Approve one or more requests with the same form values."""
    _report(backend().decide(request_ids, "approve", inputs=parse_inputs(inputs), reason=reason), as_json)


@click.command()
@common_options
@click.argument("request_ids", nargs=-1, required=True)
@click.option("--reason", help="Why (kept in the audit trail).")
@click.option("--json", "as_json", is_flag=True)
def deny(request_ids: tuple[str, ...], reason: str | None, as_json: bool) -> None:
    """Deny one or more requests; their executions are killed unless the task says otherwise."""
    _report(backend().decide(request_ids, "deny", reason=reason), as_json)


@click.command()
@common_options
@click.argument("request_ids", nargs=-1, required=True)
@click.option("--reason", help="Why (kept in the audit trail).")
@click.option("--json", "as_json", is_flag=True)
def cancel(request_ids: tuple[str, ...], reason: str | None, as_json: bool) -> None:
    """Cancel pending requests you started (or any, as an admin); their executions are killed."""
    _report(backend().cancel(request_ids, reason), as_json)
