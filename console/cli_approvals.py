"""`signoff pending|show|approve|deny|cancel`: the approval requests from the command line."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

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


def _report(outcomes: list, as_json: bool, signatures: dict[str, dict[str, str]] | None = None,
            unsigned_because: str = "") -> None:
    if as_json:
        items = []
        for o in outcomes:
            item = o.to_dict()
            if signatures and o.id in signatures and item.get("signature"):
                item["signature"] = {**item["signature"], **signatures[o.id]}
            items.append(item)
        output.emit_json(items)
    else:
        for o in outcomes:
            stream_err = not o.ok
            signed = f" (signed: {o.signature['key_type']} {o.signature['fingerprint']})" if o.signature else ""
            click.echo(f"{o.id}: {o.message}{signed}", err=stream_err)
            for field, message in o.errors.items():
                click.echo(f"  {field}: {message}", err=True)
    if unsigned_because and any(o.outcome == "signature_required" for o in outcomes):
        click.echo(f"not signed: {unsigned_because}", err=True)
    fail_if_any(outcomes)


def sign_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option("--no-sign", "no_sign", is_flag=True,
                      help="Do not sign, even when your agent holds a registered key.")(fn)
    return click.option("--sign-key", "sign_key", type=click.Path(dir_okay=False), metavar="FILE",
                        help="Sign with this key: a private key file, or a .pub whose key your agent holds "
                             "(default: the first key in your SSH agent registered with signoff).")(fn)


def _sign(b: Any, request_ids: tuple[str, ...], verdict: str, inputs: dict[str, Any], reason: str | None,
          sign_key: str | None, no_sign: bool) -> tuple[dict[str, dict[str, str]] | None, str]:
    """(signatures to send, why none were made); signing happens here, in this process."""
    if no_sign:
        return None, "--no-sign was given"
    from signoff.console.signing import find_signer, sign_decisions

    signer, why = find_signer(b, Path(sign_key) if sign_key else None)
    if signer is None:
        return None, why
    return sign_decisions(b, signer, request_ids, verdict, inputs=inputs, reason=reason), ""


@click.command()
@common_options
@click.argument("request_ids", nargs=-1, required=True)
@click.option("-i", "--input", "inputs", multiple=True, metavar="KEY=VALUE", help="Form value (repeatable).")
@click.option("--reason", help="Why (kept in the audit trail).")
@sign_options
@click.option("--json", "as_json", is_flag=True)
def approve(request_ids: tuple[str, ...], inputs: tuple[str, ...], reason: str | None, sign_key: str | None,
            no_sign: bool, as_json: bool) -> None:
    """Approve one or more requests with the same form values (signed when you have a registered key)."""
    b = backend()
    values = parse_inputs(inputs)
    signatures, why = _sign(b, request_ids, "approve", values, reason, sign_key, no_sign)
    _report(b.decide(request_ids, "approve", inputs=values, reason=reason, signatures=signatures), as_json,
            signatures, why)


@click.command()
@common_options
@click.argument("request_ids", nargs=-1, required=True)
@click.option("--reason", help="Why (kept in the audit trail).")
@sign_options
@click.option("--json", "as_json", is_flag=True)
def deny(request_ids: tuple[str, ...], reason: str | None, sign_key: str | None, no_sign: bool,
         as_json: bool) -> None:
    """Deny one or more requests; their executions are killed unless the task says otherwise."""
    b = backend()
    signatures, why = _sign(b, request_ids, "deny", {}, reason, sign_key, no_sign)
    _report(b.decide(request_ids, "deny", reason=reason, signatures=signatures), as_json, signatures, why)


@click.command()
@common_options
@click.argument("request_ids", nargs=-1, required=True)
@click.option("--reason", help="Why (kept in the audit trail).")
@sign_options
@click.option("--json", "as_json", is_flag=True)
def cancel(request_ids: tuple[str, ...], reason: str | None, sign_key: str | None, no_sign: bool,
           as_json: bool) -> None:
    """Cancel pending requests you started (or any, as an admin); their executions are killed."""
    b = backend()
    signatures, why = _sign(b, request_ids, "cancel", {}, reason, sign_key, no_sign)
    _report(b.cancel(request_ids, reason, signatures=signatures), as_json, signatures, why)
