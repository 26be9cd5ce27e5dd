"""The executions view: recent executions (failed ones first), the task runs and logs of the
highlighted one, restart (`r`) and replay from a task (`p`).

Decisions: the list shows FAILED and KILLED executions first (what an operator comes here
for), then the rest, newest first within each group; `f` cycles a state filter that starts
at FAILED. `enter` moves into the task runs of the highlighted execution (`esc` back); `p`
replays from the highlighted task run, or from the start when the list has the focus. Both
actions ask for confirmation, run in a worker and report the outcome; errors (a refusal, a
state that does not allow it) are shown, never raised.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import DataTable, Static

from signoff.console.screens.host import signoff_app
from signoff.console.widgets.result_line import ResultLine

#: the state filter, in the order `f` cycles through it (None = every state)
FILTERS: tuple[str | None, ...] = (None, "FAILED", "KILLED", "PAUSED", "RUNNING", "SUCCESS", "WARNING", "CANCELLED")
FIRST = ("FAILED", "KILLED")
STATE_STYLE = {"FAILED": "bold red", "KILLED": "red", "SUCCESS": "green", "WARNING": "yellow", "PAUSED": "cyan",
               "RUNNING": "blue", "RESTARTED": "blue"}


def order(executions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """FAILED and KILLED first, then the others; newest first within each."""
    newest = sorted(executions, key=lambda e: e.get("created_at") or "", reverse=True)
    return [e for e in newest if e.get("state") in FIRST] + [e for e in newest if e.get("state") not in FIRST]


def short_type(value: str | None) -> str:
    return (value or "").rsplit(".", 1)[-1]


class ExecutionsView(Vertical):
    """Executions list, task runs, logs; restart and replay."""

    DEFAULT_CSS = """
    ExecutionsView { height: 1fr; }
    ExecutionsView #exec-header { height: 1; padding: 0 1; color: $text-muted; }
    ExecutionsView #exec-body { height: 1fr; }
    ExecutionsView #exec-table { width: 1fr; height: 1fr; }
    ExecutionsView #exec-side { width: 50%; height: 1fr; border-left: solid $primary-muted; }
    ExecutionsView #exec-summary { height: auto; padding: 0 1; }
    ExecutionsView #exec-tasks { height: 1fr; }
    ExecutionsView #exec-logs { height: 1fr; border-top: solid $primary-muted; padding: 0 1; }
    """

    BINDINGS = [
        Binding("escape", "back_to_list", "Back to the list", show=False),
    ]

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.executions: list[dict[str, Any]] = []
        self.detail: dict[str, Any] | None = None
        self.state_filter: str | None = None
        self._generation = 0
        self._detail_generation = 0
        self._busy = False

    def compose(self) -> ComposeResult:
        yield Static("loading executions…", id="exec-header")
        with Horizontal(id="exec-body"):
            table: DataTable = DataTable(id="exec-table", cursor_type="row")
            table.add_column("state", width=9, key="state")
            table.add_column("flow", width=22, key="flow")
            table.add_column("started", width=11, key="started")
            table.add_column("id", width=10, key="id")
            yield table
            with Vertical(id="exec-side"):
                yield Static("", id="exec-summary")
                tasks: DataTable = DataTable(id="exec-tasks", cursor_type="row")
                tasks.add_column("task", width=18, key="task")
                tasks.add_column("type", width=10, key="type")
                tasks.add_column("state", width=9, key="state")
                tasks.add_column("try", width=3, key="attempt")
                yield tasks
                with VerticalScroll(id="exec-logs"):
                    yield Static("", id="exec-logs-body")
        yield ResultLine(id="exec-result")

    @property
    def table(self) -> DataTable:
        return self.query_one("#exec-table", DataTable)

    @property
    def tasks(self) -> DataTable:
        return self.query_one("#exec-tasks", DataTable)

    # -- loading ------------------------------------------------------------------------
    def on_show_view(self) -> None:
        self.reload()
        focused = self.screen.focused
        if focused is None or self not in focused.ancestors:
            self.table.focus()

    def reload(self) -> None:
        self._generation += 1
        self._load(signoff_app(self).backend, self._generation, self.state_filter)

    @work(thread=True, group="executions-load")
    def _load(self, backend: Any, generation: int, state: str | None) -> None:
        try:
            items, error = backend.list_executions(state=state, limit=500), None
        except Exception as exc:  # noqa: BLE001 - shown in the header
            items, error = [], getattr(exc, "message", None) or str(exc) or type(exc).__name__
        self.app.call_from_thread(self._apply, generation, items, error)

    def _apply(self, generation: int, items: list[dict[str, Any]], error: str | None) -> None:
        if generation != self._generation:
            return
        header = self.query_one("#exec-header", Static)
        if error is not None:
            header.update(Text(f"could not list executions: {error}", style="bold red"))
            return
        keep = self.current["id"] if self.current else None
        self.executions = order(items)
        table = self.table
        table.clear()
        for e in self.executions:
            table.add_row(Text(e.get("state") or "", style=STATE_STYLE.get(e.get("state") or "", "")),
                          Text(f"{e.get('namespace')}.{e.get('flow_id')}"),
                          Text((e.get("created_at") or "")[5:16].replace("T", " ")), Text(str(e.get("id"))[:10]))
        failed = sum(1 for e in self.executions if e.get("state") in FIRST)
        shown = self.state_filter or "all states"
        header.update(Text(f"{len(self.executions)} executions ({shown}) · {failed} failed or killed · "
                           "f filter · enter task runs · r restart · p replay"))
        row = next((i for i, e in enumerate(self.executions) if e["id"] == keep), 0)
        if self.executions:
            table.move_cursor(row=row, animate=False)
            self._show(self.executions[row])
        else:
            self._show(None)

    @property
    def current(self) -> dict[str, Any] | None:
        if not self.is_mounted or not self.executions:
            return None
        row = self.table.cursor_row
        return self.executions[row] if 0 <= row < len(self.executions) else None

    @on(DataTable.RowHighlighted, "#exec-table")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        if 0 <= event.cursor_row < len(self.executions):
            self._show(self.executions[event.cursor_row])

    @on(DataTable.RowSelected, "#exec-table")
    def _selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if self.detail and self.detail.get("task_runs"):
            self.tasks.focus()

    def _show(self, execution: Mapping[str, Any] | None) -> None:
        self._detail_generation += 1
        if execution is None:
            self.detail = None
            self._render_detail()
            return
        self._load_detail(signoff_app(self).backend, self._detail_generation, str(execution["id"]))

    @work(thread=True, group="executions-detail", exclusive=True)
    def _load_detail(self, backend: Any, generation: int, execution_id: str) -> None:
        try:
            detail, error = backend.get_execution(execution_id), None
        except Exception as exc:  # noqa: BLE001 - shown to the operator, never raised
            detail, error = None, getattr(exc, "message", None) or str(exc)
        self.app.call_from_thread(self._apply_detail, generation, detail, error)

    def _apply_detail(self, generation: int, detail: dict[str, Any] | None, error: str | None) -> None:
        if generation != self._detail_generation:
            return
        self.detail = detail
        self._render_detail(error)

    def _render_detail(self, error: str | None = None) -> None:
        summary = self.query_one("#exec-summary", Static)
        logs = self.query_one("#exec-logs-body", Static)
        tasks = self.tasks
        tasks.clear()
        d = self.detail
        if d is None:
            summary.update(Text(error or "no execution selected", style="dim"))
            logs.update("")
            return
        text = Text()
        text.append(f"{d['namespace']}.{d['flow_id']}", style="bold")
        text.append(f"  rev {d.get('revision')}  ")
        text.append(d.get("state") or "", style=STATE_STYLE.get(d.get("state") or "", ""))
        text.append(f"\nby {d.get('started_by')} · {str(d.get('id'))}")
        if d.get("original_id"):
            text.append(f"\nreplay of {d['original_id']}", style="dim")
        if d.get("error"):
            text.append(f"\n{d['error']}", style="red")
        summary.update(text)
        for run in d.get("task_runs") or []:
            tasks.add_row(Text(run.get("path") or ""), Text(short_type(run.get("type"))),
                          Text(run.get("state") or "", style=STATE_STYLE.get(run.get("state") or "", "")),
                          Text(str(run.get("attempt") or 1)))
        lines = Text()
        for log in d.get("logs") or []:
            lines.append(f"{(log.get('at') or '')[11:19]} ", style="dim")
            lines.append(f"{log.get('level'):<5} ", style="red" if log.get("level") == "ERROR" else "")
            lines.append(f"{log.get('path')}: {str(log.get('message') or '').rstrip()}\n")
        logs.update(lines if lines.plain else Text("no logs", style="dim"))

    # -- actions (the app's key table routes r, p and f here) ---------------------------------
    def cycle_filter(self) -> None:
        index = FILTERS.index(self.state_filter)
        self.state_filter = FILTERS[(index + 1) % len(FILTERS)]
        self.reload()

    def action_back_to_list(self) -> None:
        self.table.focus()

    def restart(self) -> None:
        execution = self.current
        if execution is None or self._busy:
            return
        from signoff.console.screens.confirm import ConfirmScreen

        def confirmed(yes: bool | None) -> None:
            if yes:
                self._run("restart", execution["id"], None)

        self.app.push_screen(ConfirmScreen(
            f"Restart execution {execution['id']}?",
            "It continues from its failed tasks; finished tasks and decisions are kept (no approval is asked "
            "again).", confirm_label="Restart"), confirmed)

    def replay(self) -> None:
        execution = self.current
        if execution is None or self._busy:
            return
        task = None
        if self.screen.focused is self.tasks and self.detail and self.detail.get("task_runs"):
            runs = self.detail["task_runs"]
            row = self.tasks.cursor_row
            if 0 <= row < len(runs):
                task = runs[row]["task_id"]
        from signoff.console.screens.confirm import ConfirmScreen

        where = f"from task {task}" if task else "from the start (approvals are asked again)"

        def confirmed(yes: bool | None) -> None:
            if yes:
                self._run("replay", execution["id"], task)

        self.app.push_screen(ConfirmScreen(f"Replay execution {execution['id']} {where}?",
                                           "A new execution starts; the tasks that finished before it are copied.",
                                           confirm_label="Replay"), confirmed)

    def _run(self, what: str, execution_id: str, task: str | None) -> None:
        self._busy = True
        self.query_one("#exec-result", ResultLine).show(f"{what} of {execution_id}…")
        self._act(signoff_app(self).backend, what, execution_id, task)

    @work(thread=True, group="executions-act")
    def _act(self, backend: Any, what: str, execution_id: str, task: str | None) -> None:
        try:
            if what == "restart":
                result, error = backend.restart_execution(execution_id), None
            else:
                result, error = backend.replay_execution(execution_id, from_task=task), None
        except Exception as exc:  # noqa: BLE001 - Refused, Conflict, NotFound, a failing backend
            result, error = None, getattr(exc, "message", None) or str(exc) or type(exc).__name__
        self.app.call_from_thread(self._done, what, execution_id, result, error)

    def _done(self, what: str, execution_id: str, result: dict[str, Any] | None, error: str | None) -> None:
        self._busy = False
        if error is not None or result is None:
            message = f"could not {what} {execution_id}: {error}"
            self.query_one("#exec-result", ResultLine).show(message, error=True)
            self.app.notify(message, title=f"{what.capitalize()} refused", severity="error")
            return
        text = f"{what} of {execution_id}: execution {result['id']} is {result['state']}"
        failed = result.get("state") in FIRST
        self.query_one("#exec-result", ResultLine).show(text, error=failed, ok=not failed)
        self.app.notify(text, title=f"{what.capitalize()} done", severity="error" if failed else "information")
        self.reload()

    # -- navigation (the app delegates j/k/g/G to the focused table) ---------------------------
    def action_cursor_down(self) -> None:
        self.table.action_cursor_down()

    def action_cursor_up(self) -> None:
        self.table.action_cursor_up()
