"""The insights view: approval statistics (the same numbers as `signoff stats`) and a chart
of decisions and backlog per day (textual-plotext).

Decisions: the window is the last 30 days; `w` cycles 7, 30 and 90 days. The chart plots
decisions per day as bars and the backlog at each day's end as a line with a different
marker and a legend, so both read without colour (NO_COLOR) and in 80x24, where the tables
shrink to the busiest flows and approvers.
"""
from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Static

from signoff.console.screens.host import signoff_app
from signoff.engine.durations import human_seconds

WINDOWS = ("30d", "7d", "90d")




class InsightsView(Vertical):
    """Per-flow and per-approver tables over a chart of the last days."""

    DEFAULT_CSS = """
    InsightsView { height: 1fr; }
    InsightsView #ins-header { height: 1; padding: 0 1; color: $text-muted; }
    InsightsView #ins-tables { height: 1fr; min-height: 5; }
    InsightsView #ins-flows { width: 3fr; height: 1fr; }
    InsightsView #ins-approvers { width: 2fr; height: 1fr; border-left: solid $primary-muted; }
    InsightsView #ins-chart { height: 1fr; min-height: 8; }
    """

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.window = WINDOWS[0]
        self.stats: dict[str, Any] | None = None
        self._generation = 0

    def compose(self) -> ComposeResult:
        from textual_plotext import PlotextPlot

        yield Static("loading statistics…", id="ins-header")
        with Horizontal(id="ins-tables"):
            flows: DataTable = DataTable(id="ins-flows", cursor_type="row")
            for label, width in (("flow", 20), ("new", 4), ("ok", 4), ("no", 3), ("exp", 3), ("esc", 3),
                                 ("med", 6), ("p90", 6), ("wait", 4), ("oldest", 6)):
                flows.add_column(label, width=width, key=label)
            yield flows
            approvers: DataTable = DataTable(id="ins-approvers", cursor_type="row")
            for label, width in (("approver", 12), ("n", 4), ("median", 6)):
                approvers.add_column(label, width=width, key=label)
            yield approvers
        yield PlotextPlot(id="ins-chart")

    def on_show_view(self) -> None:
        self.reload()
        focused = self.screen.focused
        if focused is None or self not in focused.ancestors:
            self.query_one("#ins-flows", DataTable).focus()

    def reload(self) -> None:
        self._generation += 1
        self._load(signoff_app(self).backend, self._generation, self.window)

    def cycle_window(self) -> None:
        self.window = WINDOWS[(WINDOWS.index(self.window) + 1) % len(WINDOWS)]
        self.reload()

    @work(thread=True, group="insights-load", exclusive=True)
    def _load(self, backend: Any, generation: int, window: str) -> None:
        try:
            stats, error = backend.stats(since=window), None
        except Exception as exc:  # noqa: BLE001 - shown in the header
            stats, error = None, getattr(exc, "message", None) or str(exc) or type(exc).__name__
        self.app.call_from_thread(self._apply, generation, stats, error)

    def _apply(self, generation: int, stats: dict[str, Any] | None, error: str | None) -> None:
        if generation != self._generation:
            return
        header = self.query_one("#ins-header", Static)
        if stats is None:
            header.update(Text(f"could not compute statistics: {error}", style="bold red"))
            return
        self.stats = stats
        t = stats["totals"]
        header.update(Text(f"last {self.window}: {t['created']} requests · {t['decisions']} decisions · "
                           f"backlog {t['pending']} (oldest {human_seconds(t['oldest_pending_s'])}) · w window"))
        flows = self.query_one("#ins-flows", DataTable)
        flows.clear()
        for f in stats["flows"]:
            flows.add_row(f"{f['namespace']}.{f['flow_id']}", str(f["created"]), str(f["approved"]),
                          str(f["denied"]), str(f["expired"]), str(f["escalated"]),
                          human_seconds(f["median_decision_s"]), human_seconds(f["p90_decision_s"]),
                          str(f["pending"]), human_seconds(f["oldest_pending_s"]))
        approvers = self.query_one("#ins-approvers", DataTable)
        approvers.clear()
        for a in stats["approvers"]:
            approvers.add_row(a["actor"], str(a["decisions"]), human_seconds(a["median_response_s"]))
        self._draw(stats["days"])

    def _draw(self, days: list[dict[str, Any]]) -> None:
        from textual_plotext import PlotextPlot

        chart = self.query_one("#ins-chart", PlotextPlot)
        plt = chart.plt
        plt.clear_figure()
        labels = [d["day"][5:] for d in days]
        x: list[float] = [float(i) for i in range(1, len(days) + 1)]
        plt.bar(x, [d["decisions"] for d in days], label="decisions", marker="sd")
        plt.plot(x, [d["backlog"] for d in days], label="backlog", marker="x")
        step = max(1, len(x) // 6)
        plt.xticks(x[::step], labels[::step])
        plt.title("decisions per day (bars) and backlog at day end (x)")
        chart.refresh()
