"""Plain-text and JSON rendering for the command line (no Textual here: the CLI must start fast)."""
from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import click

from signoff.engine.clock import parse_time


def emit_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False, default=str))


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], *, max_width: int = 60) -> str:
    cells = [[_cell(c, max_width) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, c in enumerate(row):
            widths[i] = max(widths[i], len(c))
    lines = ["  ".join(h.ljust(widths[i]) for i, h in enumerate(headers)).rstrip()]
    for row in cells:
        lines.append("  ".join(c.ljust(widths[i]) for i, c in enumerate(row)).rstrip())
    return "\n".join(lines)


def _cell(value: Any, max_width: int) -> str:
    text = "" if value is None else str(value).replace("\n", " ")
    return text if len(text) <= max_width else text[: max_width - 1] + "…"


def relative(when: str | None, now: datetime | None = None) -> str:
    """'in 3h 5m' / '12m ago' for a stored time; '' when there is none."""
    if not when:
        return ""
    now = now or datetime.now(UTC)
    delta = (parse_time(when) - now).total_seconds()
    text = short_duration(abs(delta))
    return f"in {text}" if delta >= 0 else f"{text} ago"


def short_duration(seconds: float) -> str:
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m"
    return f"{secs}s"


def pending_table(requests: list[dict[str, Any]]) -> str:
    rows = [(r["id"], relative(r["due_at"]) or "-", r["namespace"], r["flow_id"], r["summary"], r["requested_by"],
             f"{r['approvals']}/{r['required']}") for r in requests]
    return table(("ID", "DUE", "NAMESPACE", "FLOW", "SUMMARY", "REQUESTED BY", "APPROVALS"), rows)


def request_text(r: dict[str, Any]) -> str:
    ctx = r.get("context") or {}
    lines = [
        f"Request    {r['id']}  ({r['state']}, {r['kind']})",
        f"Flow       {r['namespace']}.{r['flow_id']}  task {r['task_id']}",
        f"Execution  {r['execution_id']}  started by {r['requested_by']}",
        f"Created    {r['created_at']}",
        f"Due        {r['due_at'] or 'no timeout'}"
        + (f"  ({(r.get('rules') or {}).get('expireBehavior')} on expiry)" if r.get("due_at") else ""),
        f"Approvals  {r['approvals']} of {r['required']}",
        "",
        f"Summary    {ctx.get('summary') or r['summary']}",
    ]
    if ctx.get("details"):
        lines += ["", "Details", _indent(str(ctx["details"]))]
    if ctx.get("impact"):
        lines += ["", "Impact", _indent(str(ctx["impact"]))]
    if ctx.get("inputs"):
        lines += ["", "Inputs", _indent(json.dumps(ctx["inputs"], indent=2, ensure_ascii=False, default=str))]
    if ctx.get("outputs"):
        lines += ["", "Earlier outputs", _indent(json.dumps(ctx["outputs"], indent=2, ensure_ascii=False, default=str))]
    if r.get("form"):
        lines += ["", "Form (pass with -i ID=VALUE)"]
        for f in r["form"]:
            need = "required" if f.get("required", True) and f.get("defaults") is None else "optional"
            extra = f" one of {', '.join(map(str, f['values']))}" if isinstance(f.get("values"), list) else ""
            default = f" default {f['defaults']!r}" if f.get("defaults") is not None else ""
            desc = f" - {f.get('displayName') or f.get('description')}" if (f.get("displayName") or
                                                                               f.get("description")) else ""
            lines.append(f"  {f['id']}: {f['type']} ({need}{default}){extra}{desc}")
    if r.get("decisions"):
        lines += ["", "Decisions"]
        for d in r["decisions"]:
            reason = f"  \"{d['reason']}\"" if d.get("reason") else ""
            lines.append(f"  {d['at']}  {d['by']}  {d['verdict']}{reason}")
    return "\n".join(lines)


def execution_text(e: dict[str, Any]) -> str:
    lines = [
        f"Execution  {e['id']}  {e['state']}",
        f"Flow       {e['namespace']}.{e['flow_id']} (revision {e['revision']})",
        f"Started    {e['created_at']} by {e['started_by']}",
    ]
    if e.get("original_id"):
        origin = e.get("origin") or {}
        note = f" from task {origin['from']}" if origin.get("from") else ""
        lines.append(f"Replay of  {origin.get('execution_id') or e['original_id']}{note}")
    elif (e.get("origin") or {}).get("kind") == "trigger":
        origin = e["origin"]
        lines.append(f"Trigger    {origin.get('trigger_id')} ({origin.get('type', '').rsplit('.', 1)[-1]})")
    if e.get("ended_at"):
        lines.append(f"Ended      {e['ended_at']}")
    if e.get("error"):
        lines.append(f"Error      {e['error']}")
    if e.get("inputs"):
        lines += ["", "Inputs", _indent(json.dumps(e["inputs"], indent=2, ensure_ascii=False, default=str))]
    if e.get("flow_outputs") is not None:
        lines += ["", "Outputs", _indent(json.dumps(e["flow_outputs"], indent=2, ensure_ascii=False, default=str))]
    if e.get("task_runs"):
        lines += ["", "Task runs"]
        lines.append(_indent(table(("PATH", "TYPE", "STATE", "ERROR"),
                                   [(t["path"], t["type"].rsplit(".", 1)[-1], t["state"], t["error"] or "")
                                    for t in e["task_runs"]])))
    pending = [r for r in e.get("requests", []) if r["state"] == "PENDING"]
    if pending:
        lines += ["", "Waiting for approval"]
        for r in pending:
            lines.append(f"  {r['id']}  {r['summary']}")
    if e.get("logs"):
        lines += ["", "Logs"]
        for log in e["logs"]:
            lines.append(f"  {log['at'][11:19]} {log['level']:<5} {log['path']}: {log['message'].rstrip()}")
    return "\n".join(lines)


def _indent(text: str, pad: str = "  ") -> str:
    return "\n".join(pad + line for line in text.splitlines())
