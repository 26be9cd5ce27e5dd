"""`signoff stats`: how long approvals take and where they pile up."""
from __future__ import annotations

import click

from signoff.console import output
from signoff.console.cli import backend, common_options
from signoff.engine.durations import human_seconds


@click.command()
@common_options
@click.option("--since", default="30d", show_default=True, help="Window start: an age (30d, 24h, PT1H) or a date.")
@click.option("--namespace", help="Only this namespace (a prefix ending in * for a subtree).")
@click.option("--json", "as_json", is_flag=True)
def stats(since: str, namespace: str | None, as_json: bool) -> None:
    """Requests per flow (approved, denied, expired, escalated, cancelled), time to decision
    (median, p90), backlog, and decisions per approver, computed over the window."""
    result = backend().stats(since=since, namespace=namespace)
    if as_json:
        output.emit_json(result)
        return
    t = result["totals"]
    click.echo(f"Since {result['since'][:16]}Z: {t['created']} requests, {t['decisions']} decisions; "
               f"backlog {t['pending']} (oldest {human_seconds(t['oldest_pending_s'])})")
    click.echo()
    click.echo(output.table(("FLOW", "CREATED", "APPR", "DENY", "EXP", "ESC", "CANC", "MEDIAN", "P90", "PENDING",
                             "OLDEST"),
                            [(f"{f['namespace']}.{f['flow_id']}", str(f["created"]), str(f["approved"]),
                              str(f["denied"]), str(f["expired"]), str(f["escalated"]), str(f["cancelled"]),
                              human_seconds(f["median_decision_s"]), human_seconds(f["p90_decision_s"]),
                              str(f["pending"]), human_seconds(f["oldest_pending_s"])) for f in result["flows"]]))
    click.echo()
    click.echo(output.table(("APPROVER", "DECISIONS", "APPROVED", "DENIED", "MEDIAN RESPONSE"),
                            [(a["actor"], str(a["decisions"]), str(a["approvals"]), str(a["denials"]),
                              human_seconds(a["median_response_s"])) for a in result["approvers"]]))
