"""`signoff flows list|validate`."""
from __future__ import annotations

from pathlib import Path

import click

from signoff.console import output
from signoff.console.cli import backend, common_options, settings


@click.group()
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
