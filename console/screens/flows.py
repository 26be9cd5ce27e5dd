"""The flows view: every flow the operator may see, its inputs and tasks, and starting one.

`enter` or `r` starts the highlighted flow: a flow with inputs opens the start form (the
shared FormScreen, validated live by the engine), one without asks for confirmation. The
execution is started in a thread worker; its id, state and any approval requests it is now
waiting on are shown in the result line and as a notification. Errors are shown, never raised.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import DataTable, Static

from signoff.console.backend import Backend
from signoff.console.screens.host import signoff_app
from signoff.console.widgets.column_fit import fit_last_column
from signoff.console.widgets.result_line import ResultLine

#: (key, width); the description column takes the width that is left
COLUMNS = (("namespace", 16), ("flow", 18), ("inputs", 6))
DESCRIPTION_MIN = 16


def first_line(text: str | None, width: int = 60) -> str:
    line = (text or "").strip().splitlines()[0].strip() if (text or "").strip() else ""
    return line if len(line) <= width else line[: width - 1] + "…"


def _value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list, bool)):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def render_flow(flow: Mapping[str, Any]) -> RenderableType:
    parts: list[RenderableType] = [Text(f"{flow.get('namespace')}.{flow.get('id')}", style="bold")]
    description = (flow.get("description") or "").strip()
    parts.append(Text(description) if description else Text("(no description)", style="dim"))
    labels = flow.get("labels") or {}
    if labels:
        parts.append(Text("\nlabels", style="bold underline"))
        grid = Table.grid(padding=(0, 1))
        grid.add_column(style="dim", no_wrap=True)
        grid.add_column(overflow="fold")
        for key, value in labels.items():
            grid.add_row(str(key), _value(value))
        parts.append(grid)
    inputs = flow.get("inputs") or []
    parts.append(Text(f"\ninputs ({len(inputs)})", style="bold underline"))
    if inputs:
        grid = Table(box=None, padding=(0, 1), show_edge=False, header_style="dim")
        grid.add_column("id", no_wrap=True)
        grid.add_column("type", no_wrap=True)
        grid.add_column("default", overflow="fold")
        grid.add_column("description", overflow="fold")
        for spec in inputs:
            mark = "" if spec.get("required", True) else "?"
            kind = str(spec.get("type") or "")
            if spec.get("values") and isinstance(spec.get("values"), list):
                kind += " [" + ", ".join(_value(v) for v in spec["values"]) + "]"
            grid.add_row(f"{spec.get('id')}{mark}", kind, _value(spec.get("defaults")),
                         spec.get("displayName") or spec.get("description") or "")
        parts.append(grid)
        if any(not spec.get("required", True) for spec in inputs):
            parts.append(Text("? = optional", style="dim"))
    else:
        parts.append(Text("none: starts without a form", style="dim"))
    tasks = flow.get("tasks") or []
    parts.append(Text(f"\ntasks ({len(tasks)})", style="bold underline"))
    parts.append(Text(", ".join(str(t) for t in tasks) if tasks else "(none)"))
    if flow.get("path"):
        parts.append(Text(f"\n{flow['path']}", style="dim"))
    return Group(*parts)


def describe_start(execution: Mapping[str, Any]) -> str:
    """``execution e01 of ns.flow: PAUSED · waiting on r0001, r0002``."""
    text = (f"execution {execution.get('id')} of {execution.get('namespace')}.{execution.get('flow_id')}: "
            f"{execution.get('state')}")
    pending = [r.get("id") for r in execution.get("requests") or [] if r.get("state") == "PENDING"]
    if pending:
        text += " · waiting on " + ", ".join(str(p) for p in pending)
    if execution.get("error"):
        text += f" · {execution['error']}"
    return text


class FlowsView(Vertical):
    """Flows with a detail pane; `enter`/`r` starts an execution."""

    DEFAULT_CSS = """
    FlowsView { height: 1fr; }
    FlowsView #flows-header { height: 1; padding: 0 1; color: $text-muted; }
    FlowsView #flows-body { height: 1fr; }
    FlowsView #flows-table { width: 1fr; height: 1fr; }
    FlowsView #flows-detail { width: 42%; height: 1fr; border-left: solid $primary-muted; padding: 0 1; }
    """

    BINDINGS = [
        Binding("r", "start", "Start"),
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
        Binding("g", "cursor_top", "Top", show=False),
        Binding("G", "cursor_bottom", "Bottom", show=False),
    ]

    # -- what the workers report ---------------------------------------------------------
    class Listed(Message):
        """The flow list (or why it could not be read) for load number ``generation``."""

        bubble = False

        def __init__(self, generation: int, flows: list[dict[str, Any]], error: str | None) -> None:
            super().__init__()
            self.generation = generation
            self.flows = flows
            self.error = error

    class Started(Message):
        """The execution a start made (or why it could not start)."""

        bubble = False

        def __init__(self, namespace: str, flow_id: str, execution: dict[str, Any] | None,
                     error: str | None) -> None:
            super().__init__()
            self.flow_namespace = namespace  # (Message.namespace names its handlers)
            self.flow_id = flow_id
            self.execution = execution
            self.error = error

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.flows: list[dict[str, Any]] = []
        self.last_execution: dict[str, Any] | None = None
        self._generation = 0
        self._starting = False

    def compose(self) -> ComposeResult:
        yield Static("loading flows…", id="flows-header")
        with Horizontal(id="flows-body"):
            table: DataTable = DataTable(id="flows-table", cursor_type="row")
            for key, width in COLUMNS:
                table.add_column(key, width=width, key=key)
            table.add_column("description", width=DESCRIPTION_MIN, key="description")
            yield table
            with VerticalScroll(id="flows-detail"):
                yield Static("", id="flows-detail-body")
        yield ResultLine(id="flows-result")

    @property
    def table(self) -> DataTable:
        return self.query_one("#flows-table", DataTable)

    def on_resize(self) -> None:
        self.call_after_refresh(self._fit_description)

    def _fit_description(self) -> None:
        """Give the description column the width the table has left."""
        fit_last_column(self.table, COLUMNS, "description", DESCRIPTION_MIN, self.table.size.width)

    # -- loading ------------------------------------------------------------------------
    def on_show_view(self) -> None:
        """Called by the app shell when the view becomes visible: (re)load the flow list."""
        self.reload()
        focused = self.screen.focused
        if focused is None or self not in focused.ancestors:
            self.table.focus()

    def reload(self) -> None:
        self._generation += 1
        self._load(signoff_app(self).backend, self._generation)

    @work(thread=True, group="flows-load")
    def _load(self, backend: Backend, generation: int) -> None:
        try:
            flows, error = backend.list_flows(), None
        except Exception as exc:  # noqa: BLE001 - shown in the header
            flows, error = [], getattr(exc, "message", None) or str(exc) or type(exc).__name__
        self.post_message(self.Listed(generation, flows, error))

    @on(Listed)
    def _apply(self, report: Listed) -> None:
        generation, flows, error = report.generation, report.flows, report.error
        if generation != self._generation:
            return
        header = self.query_one("#flows-header", Static)
        if error is not None:
            header.update(Text(f"could not list flows: {error}", style="bold red"))
            return
        table = self.table
        keep = self.current_flow
        keep_key = (keep["namespace"], keep["id"]) if keep else None
        self.flows = sorted(flows, key=lambda f: (f.get("namespace") or "", f.get("id") or ""))
        table.clear()
        table.add_rows([(f.get("namespace") or "", f.get("id") or "", str(len(f.get("inputs") or [])),
                         first_line(f.get("description"), 200)) for f in self.flows])
        count = len(self.flows)
        header.update(Text(f"{count} flow{'s' if count != 1 else ''} · enter or r starts the highlighted one"
                           if count else "no flows: put flow files in the flows folder"))
        row = 0
        if keep_key is not None:
            for i, f in enumerate(self.flows):
                if (f.get("namespace"), f.get("id")) == keep_key:
                    row = i
                    break
        if self.flows:
            table.move_cursor(row=row, animate=False)
        self._show_detail(row if self.flows else -1)

    def _show_detail(self, row: int) -> None:
        body = self.query_one("#flows-detail-body", Static)
        if 0 <= row < len(self.flows):
            body.update(render_flow(self.flows[row]))
        else:
            body.update("")

    @property
    def current_flow(self) -> dict[str, Any] | None:
        if not self.is_mounted or not self.flows:
            return None
        row = self.table.cursor_row
        return self.flows[row] if 0 <= row < len(self.flows) else None

    @on(DataTable.RowHighlighted, "#flows-table")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        self._show_detail(event.cursor_row)

    @on(DataTable.RowSelected, "#flows-table")
    def _selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_start()

    # -- starting -----------------------------------------------------------------------
    def action_start(self) -> None:
        flow = self.current_flow
        if flow is None or self._starting:
            return
        namespace, flow_id = flow["namespace"], flow["id"]
        if flow.get("inputs"):
            from signoff.console.screens.form_screen import FormScreen

            backend = signoff_app(self).backend
            screen = FormScreen(f"Start {namespace}.{flow_id}", list(flow["inputs"]),
                                validate=lambda values: backend.validate_flow_inputs(namespace, flow_id, values),
                                comment_mode="NEVER", subtitle=first_line(flow.get("description"), 100),
                                submit_label="Start", show_reason=False)

            def submitted(result: Any) -> None:
                if result is not None:
                    self.start(namespace, flow_id, dict(getattr(result, "values", result) or {}))

            self.app.push_screen(screen, submitted)
        else:
            from signoff.console.screens.confirm import ConfirmScreen

            def confirmed(yes: bool | None) -> None:
                if yes:
                    self.start(namespace, flow_id, {})

            self.app.push_screen(ConfirmScreen(f"Start {namespace}.{flow_id}?",
                                               "This flow has no inputs: it starts as soon as you confirm.",
                                               confirm_label="Start"), confirmed)

    def start(self, namespace: str, flow_id: str, inputs: Mapping[str, Any]) -> None:
        """Start an execution (in a worker) and show what became of it."""
        self._starting = True
        self.query_one("#flows-result", ResultLine).show(f"starting {namespace}.{flow_id}…")
        self._start(signoff_app(self).backend, namespace, flow_id, dict(inputs))

    @work(thread=True, group="flows-start")
    def _start(self, backend: Backend, namespace: str, flow_id: str, inputs: dict[str, Any]) -> None:
        from signoff.engine.errors import InvalidInputs

        try:
            execution, error = backend.start_execution(namespace, flow_id, inputs), None
        except InvalidInputs as exc:
            execution = None
            error = "invalid inputs: " + "; ".join(f"{k}: {v}" for k, v in exc.errors.items())
        except Exception as exc:  # noqa: BLE001 - UsageError, Refused, NotFound, a failing backend
            execution, error = None, getattr(exc, "message", None) or str(exc) or type(exc).__name__
        self.post_message(self.Started(namespace, flow_id, execution, error))

    @on(Started)
    def _started(self, report: Started) -> None:
        namespace, flow_id, execution, error = report.flow_namespace, report.flow_id, report.execution, report.error
        self._starting = False
        if error is not None or execution is None:
            message = f"could not start {namespace}.{flow_id}: {error}"
            self.query_one("#flows-result", ResultLine).show(message, error=True)
            self.app.notify(message, title="Start failed", severity="error")
            return
        self.last_execution = execution
        text = "started " + describe_start(execution)
        failed = execution.get("state") in ("FAILED", "KILLED")
        self.query_one("#flows-result", ResultLine).show(text, error=failed, ok=not failed)
        self.app.notify(text, title="Execution started", severity="error" if failed else "information")

    # -- navigation ---------------------------------------------------------------------
    def action_cursor_down(self) -> None:
        self.table.action_cursor_down()

    def action_cursor_up(self) -> None:
        self.table.action_cursor_up()

    def action_cursor_top(self) -> None:
        if self.flows:
            self.table.move_cursor(row=0, animate=False)

    def action_cursor_bottom(self) -> None:
        if self.flows:
            self.table.move_cursor(row=len(self.flows) - 1, animate=False)
