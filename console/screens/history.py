"""The history view: search the audit trail, read one event in full, export, verify the chain.

Everything that touches the engine goes through ``app.backend`` in thread workers; results
come back as typed messages (``PageFetched``, ``ChangeChecked``, ``Verified``) and are dropped
when a newer search replaced them (each search has a generation number). The list holds only
the pages fetched so far: the next page (``before_seq`` = the oldest loaded event) is fetched
when the cursor nears the end.
"""
from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from rich.console import Group, RenderableType
from rich.json import JSON
from rich.markdown import Markdown
from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import DataTable, Input, Static

from signoff.console.backend import Backend
from signoff.console.screens.host import signoff_app
from signoff.console.widgets.column_fit import fit_last_column

#: events per page: a large audit trail is never loaded at once
PAGE = 100
#: fetch the next page when the cursor is this close to the last loaded row
PREFETCH = 10

QUERY_HINT = ("text \"a phrase\" pre* · actor: action: ns: (prefix*) flow: request: execution: "
              "since: until: (2026-01-05, 7d) · enter")

#: (key, width); the summary column takes the width that is left (at least SUMMARY_MIN)
COLUMNS = (("time", 12), ("actor", 10), ("action", 17), ("namespace", 14), ("flow", 12), ("request", 13))
SUMMARY_MIN = 20


def now_of(app: Any) -> datetime:
    clock = getattr(app, "clock", None)
    return clock.now() if clock is not None else datetime.now(UTC)


def short_time(at: str | None, now: datetime) -> str:
    """A stored ``2026-01-05T09:00:00.000000Z`` as ``09:00:00`` today, ``Jan 05 09:00`` this year,
    else ``2025-01-05``; the detail pane has the full time."""
    if not at:
        return ""
    try:
        when = datetime.fromisoformat(at.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        return at[:12]
    now = now.astimezone(UTC)
    if when.date() == now.date():
        return when.strftime("%H:%M:%S")
    if when.year == now.year:
        return when.strftime("%b %d %H:%M")
    return when.strftime("%Y-%m-%d")


def fit(text: str | None, width: int) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= width else text[: width - 1] + "…"


def summarize(event: dict[str, Any], width: int = 80) -> str:
    """One line saying what the event was about: its reason and/or summary, else its data."""
    data = event.get("data")
    if not isinstance(data, dict):
        text = "" if data is None else str(data)
    else:
        given = data.get("context")
        context = given if isinstance(given, dict) else {}
        parts = []
        for value in (data.get("reason"), data.get("summary") or context.get("summary")):
            if value:
                parts.append(str(value))
        if not parts:
            for key in ("state", "operation", "error", "key", "event", "target"):
                if data.get(key) not in (None, "", {}, []):
                    parts.append(f"{key}: {data[key]}")
        if not parts and isinstance(data.get("inputs"), dict) and data["inputs"]:
            parts.append(", ".join(f"{k}={v}" for k, v in data["inputs"].items()))
        if not parts:
            parts = [f"{k}: {v}" for k, v in data.items() if isinstance(v, (str, int, float, bool)) and k != "context"]
        text = " · ".join(parts)
    return fit(text, width)


def ago(at: str | None, now: datetime) -> str:
    if not at:
        return ""
    try:
        from signoff.console.output import relative

        return relative(at, now)
    except Exception:  # noqa: BLE001 - a malformed (hand-edited) time just shows no age
        return ""


def _json(value: Any) -> RenderableType:
    try:
        return JSON(json.dumps(value, ensure_ascii=False, default=str), indent=2)
    except (TypeError, ValueError):
        return Text(repr(value))


#: audit actions that record a person's decision (signed or not)
DECISION_ACTIONS = ("request.approved", "request.denied", "request.cancelled")


def signature_text(block: Any) -> str:
    """``signed (ssh-ed25519 SHA256:…)`` or ``unsigned``, for a decision event's signature block."""
    if not isinstance(block, dict) or not block.get("fingerprint"):
        return "unsigned"
    together = f", one of {block['batch_items']} signed together" if block.get("batch_items") else ""
    return f"signed ({block.get('key_type') or '?'} {block['fingerprint']}{together})"


def render_event(event: dict[str, Any], now: datetime) -> RenderableType:
    """Every field of the event, its data, and the frozen context of decision events."""
    parts: list[RenderableType] = [Text.assemble((f"event {event.get('seq')}", "bold"), " · ",
                                                 (str(event.get("action") or ""), "bold"))]
    fields = Table.grid(padding=(0, 1))
    fields.add_column(style="dim", no_wrap=True)
    fields.add_column(overflow="fold")
    when = event.get("at") or ""
    age = ago(when, now)
    rows = [("seq", str(event.get("seq"))), ("at", f"{when} ({age})" if age else when),
            ("actor", event.get("actor")), ("action", event.get("action")), ("namespace", event.get("namespace")),
            ("flow", event.get("flow_id")), ("execution", event.get("execution_id")),
            ("request", event.get("request_id")), ("hash", event.get("hash")), ("prev hash", event.get("prev_hash"))]
    data = event.get("data")
    context = data.get("context") if isinstance(data, dict) and isinstance(data.get("context"), dict) else None
    if isinstance(data, dict):  # what the event is about, before the ids
        summary = data.get("summary") or (context or {}).get("summary")
        extra = [("reason", data.get("reason")), ("summary", summary)]
        if data.get("verdict") or data.get("state"):
            extra.insert(0, ("outcome", " → ".join(str(data[k]) for k in ("verdict", "state") if data.get(k))))
        if str(event.get("action") or "") in DECISION_ACTIONS:
            extra.append(("signature", signature_text(data.get("signature"))))
        rows[4:4] = [(k, v) for k, v in extra if v]
    for name, value in rows:
        fields.add_row(name, "" if value is None else str(value))
    parts.append(fields)
    rest = {k: v for k, v in data.items() if k != "context"} if isinstance(data, dict) else data
    parts.append(Text("\ndata", style="bold underline"))
    parts.append(_json(rest) if isinstance(rest, (dict, list)) else Text(str(rest)))
    if context is not None:
        parts.append(Text("\nfrozen context", style="bold underline"))
        if context.get("summary"):
            parts.append(Text.assemble(("summary  ", "dim"), str(context["summary"])))
        task = context.get("task") if isinstance(context.get("task"), dict) else None
        if task and task.get("id"):
            parts.append(Text.assemble(("task     ", "dim"), str(task["id"])))
        if context.get("details"):
            parts.append(Text("details", style="dim"))
            parts.append(Markdown(str(context["details"])))
        if context.get("impact"):
            parts.append(Text("impact", style="dim"))
            parts.append(Markdown(str(context["impact"])))
        for key in ("inputs", "outputs", "labels"):
            if context.get(key):
                parts.append(Text(key, style="dim"))
                parts.append(_json(context[key]))
    return Group(*parts)


class HistoryDetail(VerticalScroll, can_focus=True):
    """The highlighted event in full; focusable so it can be scrolled from the keyboard."""


class HistoryView(Vertical):
    """Audit search with infinite scroll, a detail pane, export (`e`) and chain verification (`v`)."""

    DEFAULT_CSS = """
    HistoryView { height: 1fr; }
    HistoryView #history-chain { height: 1; padding: 0 1; color: $success; }
    HistoryView #history-chain.-pending { color: $text-muted; }
    HistoryView #history-chain.-broken { color: $error; text-style: bold; }
    HistoryView #history-query { margin: 0 0; }
    HistoryView #history-hint { height: 1; padding: 0 1; color: $text-muted; }
    HistoryView #history-error { height: auto; padding: 0 1; color: $error; display: none; }
    HistoryView #history-error.-shown { display: block; }
    HistoryView #history-body { height: 1fr; }
    HistoryView #history-table { height: 45%; }
    HistoryView #history-detail { height: 1fr; border-top: solid $primary-muted; padding: 0 1; }
    HistoryView #history-detail:focus { border-top: thick $accent; }
    HistoryView #history-status { height: 1; padding: 0 1; color: $text-muted; }
    """

    BINDINGS = [
        Binding("slash", "focus_query", "Search"),
        Binding("s", "focus_query", "Search", show=False),
        Binding("escape", "focus_list", "List", show=False),
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
        Binding("g", "cursor_top", "Top", show=False),
        Binding("G", "cursor_bottom", "Bottom", show=False),
        Binding("e", "export", "Export"),
        Binding("v", "verify", "Verify chain"),
    ]

    # -- what the workers report ---------------------------------------------------------
    class PageFetched(Message):
        """A page of search ``generation`` (older than ``before_seq``), or why it failed;
        ``change``: the newest change sequence, read with a first page."""

        bubble = False

        def __init__(self, generation: int, before_seq: int | None, page: list[dict[str, Any]],
                     error: str | None, change: int | None) -> None:
            super().__init__()
            self.generation = generation
            self.before_seq = before_seq
            self.page = page
            self.error = error
            self.change = change

    class ChangeChecked(Message):
        """The newest change sequence, read when the view is shown again."""

        bubble = False

        def __init__(self, generation: int, change: int) -> None:
            super().__init__()
            self.generation = generation
            self.change = change

    class Verified(Message):
        """The chain check's result (or why it could not run)."""

        bubble = False

        def __init__(self, generation: int, result: dict[str, Any] | None, error: str | None) -> None:
            super().__init__()
            self.generation = generation
            self.result = result
            self.error = error

    def __init__(self, *, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.events: list[dict[str, Any]] = []
        self.query_text = ""
        self.exhausted = False
        self.fetching = False
        self._generation = 0
        self._verify_generation = 0
        self._shown = False
        self._seen_change: int | None = None
        self._detail_seq: int | None = None

    # -- layout -------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Static("chain: not checked yet", id="history-chain", classes="-pending")
        yield Input(placeholder="search the audit trail, e.g. actor:alice action:request.* disk",
                    id="history-query")
        yield Static(QUERY_HINT, id="history-hint")
        yield Static("", id="history-error")
        with Vertical(id="history-body"):
            table: DataTable = DataTable(id="history-table", cursor_type="row", zebra_stripes=False)
            for label, width in COLUMNS:
                table.add_column(label, width=width, key=label)
            table.add_column("summary", width=SUMMARY_MIN, key="summary")
            yield table
            with HistoryDetail(id="history-detail"):
                yield Static("", id="history-detail-body")
        yield Static("", id="history-status")

    def on_resize(self) -> None:
        self._fit_summary()

    def _fit_summary(self) -> None:
        """Give the summary column the width the fixed columns leave."""
        fit_last_column(self.table, COLUMNS, "summary", SUMMARY_MIN, self.size.width - 1)

    @property
    def table(self) -> DataTable:
        return self.query_one("#history-table", DataTable)

    @property
    def query_input(self) -> Input:
        return self.query_one("#history-query", Input)

    # -- called by the app shell ----------------------------------------------------------
    def on_show_view(self) -> None:
        """The view became visible: load on first show; later, reload only if the audit moved."""
        if not self._shown:
            self._shown = True
            self.search(self.query_input.value)
            self.verify()
        else:
            self._check_changes(self._backend(), self._generation)
        focused = self.screen.focused
        if focused is None or self not in focused.ancestors:
            self.table.focus()

    # -- searching ----------------------------------------------------------------------
    def _backend(self) -> Backend:
        return signoff_app(self).backend

    def search(self, query: str) -> None:
        """Run ``query`` from the newest event (replaces the list)."""
        self._generation += 1
        self.query_text = query.strip()
        self.events = []
        self.exhausted = False
        self.fetching = True
        self._detail_seq = None
        self.table.clear()
        self.query_one("#history-detail-body", Static).update("")
        self._set_error(None)
        self._set_status("searching…")
        self._fetch(self._backend(), self._generation, self.query_text, None)

    def load_more(self) -> None:
        """Fetch the page after the oldest loaded event, unless one is on its way or none is left."""
        if self.fetching or self.exhausted or not self.events:
            return
        self.fetching = True
        self._set_status(f"{len(self.events):,} events · loading more…")
        self._fetch(self._backend(), self._generation, self.query_text, self.events[-1]["seq"])

    @work(thread=True, group="history-page")
    def _fetch(self, backend: Backend, generation: int, query: str, before_seq: int | None) -> None:
        change: int | None = None
        try:
            if before_seq is None:
                try:
                    change = backend.last_change()
                except Exception:  # noqa: BLE001 - only an optimisation for on_show_view
                    change = None
            page = backend.history(query, limit=PAGE, before_seq=before_seq)
            error = None
        except Exception as exc:  # noqa: BLE001 - a bad query (UsageError) or a failing backend: say so
            page, error = [], getattr(exc, "message", None) or str(exc) or type(exc).__name__
        self.post_message(self.PageFetched(generation, before_seq, page, error, change))

    @on(PageFetched)
    def _apply_page(self, report: PageFetched) -> None:
        generation, before_seq, page, error, change = (report.generation, report.before_seq, report.page,
                                                        report.error, report.change)
        if generation != self._generation:
            return  # a newer search replaced this one
        self.fetching = False
        if before_seq is None and change is not None:
            self._seen_change = change
        if error is not None:
            self.exhausted = True
            self._set_error(error)
            self._set_status("no results: the query has a problem" if not self.events else
                             f"{len(self.events):,} events · could not load more")
            return
        if len(page) < PAGE:
            self.exhausted = True
        table = self.table
        widths = dict(COLUMNS)
        now = now_of(self.app)
        rows = []
        for event in page:
            rows.append((short_time(event.get("at"), now), fit(event.get("actor"), widths["actor"]),
                         fit(event.get("action"), widths["action"]), fit(event.get("namespace"), widths["namespace"]),
                         fit(event.get("flow_id"), widths["flow"]), fit(event.get("request_id"), widths["request"]),
                         summarize(event, 200)))
        first = not self.events
        self.events.extend(page)
        if rows:
            table.add_rows(rows)
        self._update_status()
        if first and self.events:
            table.move_cursor(row=0)
            self._show_detail(0)
        elif first:
            self.query_one("#history-detail-body", Static).update(
                Text("no events match" if self.query_text else "the audit trail is empty", style="dim"))
        else:
            self._maybe_load_more(table.cursor_row)

    def _update_status(self) -> None:
        count = len(self.events)
        query = f" for `{self.query_text}`" if self.query_text else ""
        if self.exhausted:
            self._set_status(f"{count:,} events{query} · all loaded")
        else:
            self._set_status(f"{count:,} events{query} · more load as you scroll")

    def _maybe_load_more(self, row: int) -> None:
        if row >= len(self.events) - PREFETCH:
            self.load_more()

    @work(thread=True, group="history-changes")
    def _check_changes(self, backend: Backend, generation: int) -> None:
        try:
            change = backend.last_change()
        except Exception:  # noqa: BLE001 - only an optimisation: the list stays as it is
            return
        self.post_message(self.ChangeChecked(generation, change))

    @on(ChangeChecked)
    def _after_change_check(self, report: ChangeChecked) -> None:
        if report.generation == self._generation and not self.fetching and report.change != self._seen_change:
            self.search(self.query_text)

    # -- chain verification -------------------------------------------------------------
    def verify(self) -> None:
        self._verify_generation += 1
        chain = self.query_one("#history-chain", Static)
        chain.set_classes("-pending")
        chain.update("verifying the audit chain…")
        self._verify(self._backend(), self._verify_generation)

    @work(thread=True, group="history-verify")
    def _verify(self, backend: Backend, generation: int) -> None:
        try:
            result, error = backend.verify_audit(), None
        except Exception as exc:  # noqa: BLE001 - shown as "chain not verified"
            result, error = None, getattr(exc, "message", None) or str(exc) or type(exc).__name__
        self.post_message(self.Verified(generation, result, error))

    @on(Verified)
    def _show_verify(self, report: Verified) -> None:
        generation, result, error = report.generation, report.result, report.error
        if generation != self._verify_generation:
            return
        chain = self.query_one("#history-chain", Static)
        if error is not None or result is None:
            chain.set_classes("-broken")
            chain.update(Text(f"chain not verified: {error}"))
        elif result.get("ok"):
            chain.set_classes("-ok")
            head = result.get("head")
            head_text = f", head {head[:4]}…" if head else ""
            chain.update(Text(f"chain verified: {int(result.get('count') or 0):,} events{head_text}"))
        else:
            chain.set_classes("-broken")
            chain.update(Text(f"CHAIN BROKEN at event {result.get('first_bad_seq')}: {result.get('problem')}"))

    # -- detail -------------------------------------------------------------------------
    def _show_detail(self, row: int) -> None:
        if not 0 <= row < len(self.events):
            return
        event = self.events[row]
        if event.get("seq") == self._detail_seq:
            return
        self._detail_seq = event.get("seq")
        self.query_one("#history-detail-body", Static).update(render_event(event, now_of(self.app)))
        self.query_one("#history-detail", HistoryDetail).scroll_home(animate=False)

    @property
    def current_event(self) -> dict[str, Any] | None:
        row = self.table.cursor_row
        return self.events[row] if 0 <= row < len(self.events) else None

    # -- messages -----------------------------------------------------------------------
    @on(Input.Submitted, "#history-query")
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.search(event.value)
        self.table.focus()

    @on(DataTable.RowHighlighted, "#history-table")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        self._show_detail(event.cursor_row)
        if not self.exhausted:
            self._maybe_load_more(event.cursor_row)

    @on(DataTable.RowSelected, "#history-table")
    def _selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self._show_detail(event.cursor_row)
        self.query_one("#history-detail", HistoryDetail).focus()

    # -- actions ------------------------------------------------------------------------
    def action_focus_query(self) -> None:
        self.query_input.focus()

    def action_focus_list(self) -> None:
        self.table.focus()

    def _detail_focused(self) -> bool:
        return self.screen.focused is self.query_one("#history-detail", HistoryDetail)

    def action_cursor_down(self) -> None:
        if self._detail_focused():
            self.query_one("#history-detail", HistoryDetail).scroll_down(animate=False)
        else:
            self.table.action_cursor_down()

    def action_cursor_up(self) -> None:
        if self._detail_focused():
            self.query_one("#history-detail", HistoryDetail).scroll_up(animate=False)
        else:
            self.table.action_cursor_up()

    def action_cursor_top(self) -> None:
        if self._detail_focused():
            self.query_one("#history-detail", HistoryDetail).scroll_home(animate=False)
        elif self.events:
            self.table.move_cursor(row=0, animate=False)

    def action_cursor_bottom(self) -> None:
        if self._detail_focused():
            self.query_one("#history-detail", HistoryDetail).scroll_end(animate=False)
        elif self.events:
            self.table.move_cursor(row=len(self.events) - 1, animate=False)
            self._maybe_load_more(len(self.events) - 1)

    def action_verify(self) -> None:
        self.verify()

    def action_export(self) -> None:
        from signoff.console.screens.export import ExportResult, ExportScreen

        def done(result: ExportResult | None) -> None:
            if result is not None:
                self.app.notify(f"exported {result.count:,} events to {result.path}", title="Export")

        self.app.push_screen(ExportScreen(self.query_text, backend=self._backend(), now=now_of(self.app)), done)

    # -- small helpers ------------------------------------------------------------------
    def _set_error(self, message: str | None) -> None:
        error = self.query_one("#history-error", Static)
        error.update(Text(message or ""))
        error.set_class(bool(message), "-shown")

    def _set_status(self, text: str) -> None:
        self.query_one("#history-status", Static).update(Text(text))
