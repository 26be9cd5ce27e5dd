"""`signoff history` and `signoff audit verify|head|export`.

Exit codes: 0 success; 1 the chain does not verify; 2 a bad query or option.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import click

from signoff.console import output
from signoff.console.cli import backend, common_options
from signoff.engine.errors import UsageError

QUERY_HELP = ("QUERY: free text (every word must occur; \"quoted phrase\"; word* for a prefix) and field filters "
              "actor:NAME action:NAME (action:request.* for a prefix) ns:NAMESPACE (ns:prod* for a prefix) "
              "flow:ID request:ID execution:ID since:WHEN until:WHEN (WHEN: 2026-01-05, 2026-01-05T09:00Z, "
              "or an age such as 7d, 24h, 30m, PT1H).")


def join_query(words: tuple[str, ...]) -> str:
    """Words from the shell as one query; a word the shell kept whole with spaces is a phrase."""
    parts = []
    for word in words:
        if re.search(r"\s", word) and '"' not in word and not re.match(r"^[A-Za-z_][\w-]*:", word):
            parts.append(f'"{word}"')
        elif re.search(r"\s", word) and '"' not in word:
            name, _, value = word.partition(":")
            parts.append(f'{name}:"{value}"')
        else:
            parts.append(word)
    return " ".join(parts)


def _detail(event: dict) -> str:
    given = event.get("data")
    data = given if isinstance(given, dict) else {}
    for key in ("reason", "summary", "error", "operation"):
        value = data.get(key)
        if value:
            return f"{key}: {value}" if key != "reason" else str(value)
    return ""


def history_table(events: list[dict]) -> str:
    rows = [(e["seq"], e["at"][:19].replace("T", " "), e["actor"], e["action"], e["namespace"] or "",
             e["flow_id"] or "", e["request_id"] or "", _detail(e)) for e in events]
    return output.table(("SEQ", "AT (UTC)", "ACTOR", "ACTION", "NAMESPACE", "FLOW", "REQUEST", "DETAIL"), rows)


@click.command("history", epilog=QUERY_HELP)
@common_options
@click.argument("query", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (a list of events).")
@click.option("--csv", "as_csv", is_flag=True, help="CSV output (the export columns).")
@click.option("--limit", type=click.IntRange(1, 100_000), default=50, show_default=True, help="Events per page.")
@click.option("--before", "before", type=click.IntRange(1), metavar="SEQ",
              help="Only events older than event SEQ (the next page).")
def history(query: tuple[str, ...], as_json: bool, as_csv: bool, limit: int, before: int | None) -> None:
    """Search the audit trail, newest first."""
    if as_json and as_csv:
        raise UsageError("choose one of --json and --csv")
    text = join_query(query)
    events = backend().history(text, limit=limit, before_seq=before)
    if as_json:
        output.emit_json(events)
        return
    if as_csv:
        from signoff.engine.audit.export import csv_lines

        for chunk in csv_lines(events):
            click.echo(chunk, nl=False)
        return
    if not events:
        click.echo("No matching audit events.")
        return
    click.echo(history_table(events))
    if len(events) == limit:
        click.echo(f"(more: add --before {events[-1]['seq']})", err=True)


@click.group("audit")
def audit() -> None:
    """Check and export the tamper-evident audit trail."""


def _parse_head(text: str) -> tuple[int, str]:
    m = re.fullmatch(r"\s*(\d+)\s*[: ]\s*([0-9a-fA-F]{64})\s*", text)
    if not m:
        raise UsageError(f"--head expects SEQ:HASH as printed by `signoff audit head` (e.g. 1234:9f2c…), "
                         f"got `{text}`")
    return int(m.group(1)), m.group(2).lower()


@audit.command("verify")
@common_options
@click.option("--head", "expect", metavar="SEQ:HASH",
              help="A head kept elsewhere (from `signoff audit head`); detects removal of the newest events.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def audit_verify(expect: str | None, as_json: bool) -> None:
    """Walk the hash chain; exit 1 naming the first event that was changed, removed or reordered."""
    expect_head = _parse_head(expect) if expect else None
    result = backend().verify_audit(expect_head=expect_head)
    if as_json:
        output.emit_json(result)
    elif result["ok"]:
        click.echo(f"ok: {result['count']} events, head {result['head'] or 'none (the log is empty)'}")
        if "signed" in result:
            click.echo(f"signatures: {result['signed']} signed decisions verified, {result['unsigned']} unsigned")
            last = result.get("last_checkpoint")
            click.echo(f"checkpoints: {result['checkpoints']} signed by the engine verified"
                       + (f", the newest at event {last['seq']} ({last['at']})" if last else ""))
    else:
        click.echo(f"FAILED: {result['problem']}", err=True)
        more = [p for p in result.get("signature_problems") or [] if p != result["problem"]]
        for extra in more[:20]:
            click.echo(f"also: {extra}", err=True)
        click.echo(f"({result['count']} events in the chain)", err=True)
    if not result["ok"]:
        raise SystemExit(1)


@audit.command("head")
@common_options
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def audit_head(as_json: bool) -> None:
    """Print the newest event's sequence number and hash (keep it elsewhere; check it with verify --head)."""
    found = backend().audit_head()
    if as_json:
        output.emit_json(found)
    elif found is None:
        click.echo("the audit log is empty", err=True)
    else:
        click.echo(f"{found['seq']}:{found['hash']}")
        checkpoint = found.get("checkpoint")
        if checkpoint:
            click.echo(f"signed checkpoint of event {checkpoint['seq']} at {checkpoint['at']} by the engine key "
                       f"{checkpoint['fingerprint']}", err=True)


@audit.command("evidence")
@common_options
@click.argument("request_id")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False), metavar="DIR",
              help="Folder to write the evidence to (created; must be empty if it exists).")
@click.option("--json", "as_json", is_flag=True, help="Also print what was written as JSON.")
def audit_evidence(request_id: str, out: str, as_json: bool) -> None:
    """Write one request's decisions as evidence an auditor checks with OpenSSH alone."""
    from signoff.console.evidence import write_evidence

    bundle = backend().audit_evidence(request_id)
    written = write_evidence(bundle, Path(out))
    if as_json:
        output.emit_json({"request_id": request_id, "dir": str(Path(out)), "files": written,
                          "decisions": [{k: d.get(k) for k in ("seq", "at", "by", "verdict", "signed", "fingerprint",
                                                                "key_type")} for d in bundle["decisions"]]})
    else:
        signed = sum(1 for d in bundle["decisions"] if d["signed"])
        click.echo(f"wrote {len(written)} files to {out}: {signed} signed of {len(bundle['decisions'])} decisions; "
                   f"see {Path(out) / 'README.md'}")


@audit.command("export")
@common_options
@click.argument("query", nargs=-1)
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl", show_default=True)
def audit_export(query: tuple[str, ...], fmt: str) -> None:
    """Stream matching events to stdout, oldest first (same QUERY as history)."""
    from signoff.engine.audit.export import render

    events = backend().export_audit(join_query(query))
    write = sys.stdout.write
    for chunk in render(events, fmt):
        write(chunk)
    sys.stdout.flush()


audit_export.epilog = QUERY_HELP
