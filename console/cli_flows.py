"""`signoff flows list|validate|push|delete|revisions|show`."""
from __future__ import annotations

from pathlib import Path

import click

from signoff.console import output
from signoff.console.cli import backend, common_options, settings


@click.group()
def flows() -> None:
    """List, validate and change flows (push/delete: flows made through the API)."""


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
    from signoff.engine.errors import FlowLoadError
    from signoff.engine.flows.loader import load_flow_dirs, load_flow_file

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


@flows.command("push")
@common_options
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True)
def flows_push(files: tuple[str, ...], as_json: bool) -> None:
    """Create or update flows from YAML files through the API (an editor or admin of their
    namespace). Every file is checked first; nothing is pushed if one has a problem."""
    from signoff.engine.errors import UsageError

    b = backend()
    texts: list[tuple[str, str]] = []
    problems: list[str] = []
    for name in files:
        try:
            text = Path(name).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"{name}: cannot read: {getattr(exc, 'strerror', None) or exc}")
            continue
        found = b.check_flow_text(text)  # the engine's checks (the server's, in remote mode)
        problems += [f"{name}:{p['line']}:{p['col']}: {p['message']}" for p in found]
        if not found:
            texts.append((name, text))
    if problems:
        raise UsageError("\n".join(problems))
    results = []
    for name, text in texts:
        flow = b.push_flow(text)
        results.append(flow)
        if not as_json:
            what = f"revision {flow['revision']}" + ("" if flow.get("changed", True) else " (unchanged)")
            click.echo(f"{flow['namespace']}.{flow['id']}  {what}  from {name}")
    if as_json:
        output.emit_json(results)


@flows.command("delete")
@common_options
@click.argument("namespace")
@click.argument("flow_id")
def flows_delete(namespace: str, flow_id: str) -> None:
    """Delete a flow made through the API (its executions keep their revision)."""
    result = backend().delete_flow(namespace, flow_id)
    click.echo(f"{namespace}.{flow_id} deleted (last revision {result['revision']})")


@flows.command("revisions")
@common_options
@click.argument("namespace")
@click.argument("flow_id")
@click.option("--json", "as_json", is_flag=True)
def flows_revisions(namespace: str, flow_id: str, as_json: bool) -> None:
    """Every recorded revision of a flow, oldest first."""
    items = backend().flow_revisions(namespace, flow_id)
    if as_json:
        output.emit_json(items)
        return
    click.echo(output.table(("REVISION", "CREATED", "FROM", "SHA256", ""),
                            [(str(r["revision"]), r["created_at"][:19], r["origin"], r["sha256"][:16],
                              "current" if r["current"] else "") for r in items]))


@flows.command("show")
@common_options
@click.argument("namespace")
@click.argument("flow_id")
@click.option("--revision", type=click.IntRange(min=1), help="An earlier revision (default: the current one).")
@click.option("--json", "as_json", is_flag=True)
def flows_show(namespace: str, flow_id: str, revision: int | None, as_json: bool) -> None:
    """The flow's YAML text (the current revision, or --revision N)."""
    flow = backend().get_flow(namespace, flow_id, revision)
    if as_json:
        output.emit_json(flow)
    else:
        click.echo(flow["source"], nl=not flow["source"].endswith("\n"))
