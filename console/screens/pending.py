"""The Pending view: renders the list, the context pane and the filter, and routes keys.

It has three helpers, one job each: the live state (console.live.PendingLive: loading, polling,
reconnection, the connection state the app's banner shows), the request cache
(console.request_cache) and the decision journeys (console.screens.decisions). Every backend
call runs in a thread worker, and each worker reports back with one of the typed Messages
below (``Loaded``, ``Polled``, ``ContextFetched``...), handled here on the UI thread; the view
tells the app about connection changes with the bubbling ``ConnectionChanged``.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container
from textual.message import Message
from textual.timer import Timer
from textual.widget import Widget
from textual.widgets import Input
from textual.worker import WorkerFailed, get_current_worker

from signoff.console.backend import Backend
from signoff.console.live import (
    Changed,
    Page,
    PendingLive,
    PollPlan,
    PollResult,
    Restarted,
    Transition,
    Unauthorized,
    Unreachable,
    how_it_went,
    touched_rows,
)
from signoff.console.request_cache import RequestCache
from signoff.console.screens.decisions import Decisions
from signoff.console.screens.host import signoff_app
from signoff.console.widgets.context_pane import ContextPane
from signoff.console.widgets.pending_table import PendingTable

#: wait this long after the cursor stops before fetching the context
CONTEXT_DEBOUNCE = 0.1


class FilterInput(Input):
    """The `/` filter: printable keys type; esc clears and leaves; arrows still move the list."""

    BINDINGS = [
        Binding("escape", "leave(True)", "Clear filter", show=False),
        Binding("down", "move('cursor_down')", show=False),
        Binding("up", "move('cursor_up')", show=False),
        Binding("pagedown", "move('page_down')", show=False),
        Binding("pageup", "move('page_up')", show=False),
    ]

    def _view(self) -> PendingView | None:
        return next((node for node in self.ancestors if isinstance(node, PendingView)), None)

    def action_leave(self, clear: bool) -> None:
        view = self._view()
        if view is not None:
            view.close_filter(clear=clear)

    def action_move(self, method: str) -> None:
        view = self._view()
        if view is not None:
            getattr(view.table, method)()


class PendingView(Widget):
    DEFAULT_CSS = """
    PendingView { height: 1fr; layout: vertical; }
    PendingView FilterInput { dock: top; height: 1; border: none; padding: 0 1; background: $panel; display: none; }
    PendingView FilterInput.-shown { display: block; }
    PendingView FilterInput:focus { border: none; background: $boost; }
    PendingView #pending-body { layout: horizontal; height: 1fr; }
    PendingView #pending-body PendingTable { width: 3fr; height: 1fr; }
    PendingView #pending-body ContextPane { width: 2fr; height: 1fr; }
    PendingView.-narrow #pending-body { layout: vertical; }
    PendingView.-narrow #pending-body PendingTable { width: 1fr; height: 1fr; }
    PendingView.-narrow #pending-body ContextPane { width: 1fr; height: 1fr; }
    """

    BINDINGS = [Binding("escape", "clear_filter", "Clear filter", show=False)]

    #: below this terminal width the context pane goes under the list
    NARROW = 120

    # -- what the workers report (typed; see the module docstring) ------------------------
    class Loaded(Message):
        """A page of the list was read; ``painted`` (first pages only) is set once it is on
        screen, so the worker reads the rest only after that paint."""

        bubble = False  # for the view itself

        def __init__(self, page: Page, painted: threading.Event | None = None) -> None:
            super().__init__()
            self.page = page
            self.painted = painted

    class LoadFailed(Message):
        bubble = False  # for the view itself

        def __init__(self, error: Exception) -> None:
            super().__init__()
            self.error = error

    class Polled(Message):
        """One poll's result (console.live.PollResult)."""

        bubble = False  # for the view itself

        def __init__(self, result: PollResult) -> None:
            super().__init__()
            self.result = result

    class ContextFetched(Message):
        bubble = False  # for the view itself

        def __init__(self, request: dict[str, Any]) -> None:
            super().__init__()
            self.request = request

    class ContextFailed(Message):
        bubble = False  # for the view itself

        def __init__(self, request_id: str, error: Exception) -> None:
            super().__init__()
            self.request_id = request_id
            self.error = error

    class RowsRefreshed(Message):
        """Fresh summaries of requests that stay pending (a partial quorum)."""

        bubble = False  # for the view itself

        def __init__(self, summaries: list[dict[str, Any]]) -> None:
            super().__init__()
            self.summaries = summaries

    class ConnectionChanged(Message):
        """Bubbles to the app: the connection was lost, refused or restored (``live`` has the state)."""

        def __init__(self, transition: Transition, detail: str, live: PendingLive) -> None:
            super().__init__()
            self.transition = transition
            self.detail = detail
            self.live = live

    def __init__(self, live: PendingLive, *, clock: Callable[[], Any] | None = None, id: str | None = None) -> None:
        super().__init__(id=id)
        self._clock = clock
        self.live = live
        self.cache = RequestCache()
        self.decisions = Decisions(self)
        self._context_timer: Timer | None = None
        self._filter: FilterInput | None = None
        #: the request `signoff open LINK` asked for (a get_request dict): highlighted once loaded
        self.focus_request: dict[str, Any] | None = None
        #: (request shown, row highlighted then): a linked request no longer pending stays in the
        #: context pane until the cursor moves to another row
        self._pinned: tuple[str, str | None] | None = None

    # -- state the app and the tests read ---------------------------------------------------
    @property
    def loaded(self) -> bool:
        return self.live.loaded

    @property
    def last_seq(self) -> int:
        return self.live.last_seq

    @property
    def auth_failed(self) -> bool:
        return self.live.auth_failed

    @property
    def connection_lost(self) -> bool:
        return self.live.lost

    @property
    def busy(self) -> bool:
        return self.decisions.busy

    @property
    def backend(self) -> Backend:
        return self.live.backend

    # -- layout --------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        with Container(id="pending-body"):
            yield PendingTable(clock=self._clock, id="pending-table")
            yield ContextPane(clock=self._clock, id="context")

    @property
    def table(self) -> PendingTable:
        return self.query_one(PendingTable)

    @property
    def context(self) -> ContextPane:
        return self.query_one(ContextPane)

    @property
    def filter_input(self) -> FilterInput:
        """The filter field. It is hidden until "/" and mounted after the first paint (its
        styles cost ~4 ms of start-up), or at once if asked for earlier."""
        if self._filter is None:
            self._filter = FilterInput(placeholder="filter: namespace, flow, summary, requester, id — esc clears",
                                       id="pending-filter")
            self.mount(self._filter, before=0)
        return self._filter

    def on_mount(self) -> None:
        self._apply_width(self.app.size.width)
        self.table.focus()
        self.load()
        self.call_after_refresh(lambda: self.filter_input)  # mounts the hidden field after the first paint

    def on_resize(self) -> None:
        self._apply_width(self.app.size.width)

    def _apply_width(self, width: int) -> None:
        narrow = width < self.NARROW
        self.set_class(narrow, "-narrow")
        self.context.set_class(narrow, "-below")

    def on_show_view(self) -> None:
        self.table.focus()

    def _alive(self) -> bool:
        """Still on screen (a worker's message may arrive during shutdown)."""
        return self.is_attached and bool(self.children)

    # -- loading -----------------------------------------------------------------------------
    def load(self) -> None:
        """(Re)load the list. Rows the backend prefetched while the app was starting are shown
        at once (before the first paint, no I/O here); everything else is read in a worker."""
        page = self.live.take_prefetched()  # never waits
        if page is None:
            self._load_worker(None, None)
            return
        if page.complete:
            self._show_page(page)
            if self.backend.tick_after_load:
                self.run_worker(self.backend.run_deferred_tick, thread=True, group="pending-load-tick",
                                exit_on_error=False)
            return
        painted = threading.Event()
        self._show_page(page, painted)
        self._load_worker(page, painted)

    def reload(self) -> None:
        self.load()

    @work(thread=True, exclusive=True, group="pending-load", exit_on_error=False)
    def _load_worker(self, first: Page | None, painted: threading.Event | None) -> None:
        """Read the list in this thread. A long list comes in two steps: the first screenful is
        painted at once, then, once that paint is out, the whole list replaces it. ``first``:
        the first page is on screen already (prefetched), ``painted`` is set after its paint."""
        worker = get_current_worker()
        live = self.live
        try:
            if first is None:
                first = live.read_first()
                if first.complete:
                    self.post_message(self.Loaded(first))
                    self.backend.run_deferred_tick()
                    return
                painted = threading.Event()
                self.post_message(self.Loaded(first, painted))
            if painted is not None:
                painted.wait(2.0)  # let the first paint have the CPU
            if worker.is_cancelled:
                return
            page = live.read_all(first.seq)  # PendingRows already (converted batch by batch)
        except Exception as exc:  # noqa: BLE001 - shown to the operator
            self.post_message(self.LoadFailed(exc))
            return
        if worker.is_cancelled:
            return
        self.post_message(self.Loaded(page))
        self.backend.run_deferred_tick()

    @on(Loaded)
    def _on_loaded(self, message: Loaded) -> None:
        self._show_page(message.page, message.painted)

    @on(LoadFailed)
    def _on_load_failed(self, message: LoadFailed) -> None:
        self.table.loading_text = f"Could not load the pending list: {message.error}"
        self.table.refresh()
        self.app.notify(str(message.error), title="Load failed", severity="error")

    def _show_page(self, page: Page, painted: threading.Event | None = None) -> None:
        """The list (or its first page: ``painted`` is set once that is on screen)."""
        if not self._alive():
            if painted is not None:
                painted.set()
            return
        table = self.table
        followup = self.live.page_shown(page)
        table.set_rows(page.rows, complete=page.complete)
        if painted is not None:
            self.call_after_refresh(painted.set)
        if not followup:
            self.cache.clear()
        self.update_status()
        if not page.complete and not table.filter_text:
            signoff_app(self).update_status(counts=f"{table.row_count:,}+")  # more loading
        if not page.rows:
            self.context.show_message("No pending approval requests.")
        elif not followup or table.highlighted_id != self.context.request_id:
            self._highlight(table.highlighted_id)
        if self.focus_request is not None:
            self._show_focus(page.complete)

    def _show_focus(self, complete: bool) -> None:
        """Highlight the request a link led to, with its context; one no longer pending is
        shown in the context pane with a notice saying what became of it."""
        request = self.focus_request
        assert request is not None
        self.cache.remember(request)
        if self.table.row(request["id"]) is not None and self.table._move_to(request["id"]):
            self.focus_request = None
            self._highlight(request["id"])
            return
        if not complete:
            return  # the rest of the list is still loading
        self.focus_request = None
        if self._context_timer is not None:  # the first row's context must not replace it
            self._context_timer.stop()
            self._context_timer = None
        self._pinned = (request["id"], self.table.highlighted_id)
        self.context.show_request(request)
        state = request.get("state") or "?"
        if state == "PENDING":
            message = f"{request['id']} is pending but not in your list (not assigned to you, or filtered)"
        else:
            decisions = request.get("decisions") or []
            by = ", ".join(str(d.get("by")) for d in decisions if not d.get("automatic"))
            message = f"{request['id']} is no longer pending: {state}" + (f" by {by}" if by else "")
        self.app.notify(message, title="Opened link", severity="warning", timeout=10)

    # -- live updates ------------------------------------------------------------------------
    def poll(self) -> None:
        """Called every second by the app: fetch the changes since the last look, in a worker
        (the live model decides whether one is due: see console.live)."""
        plan = self.live.next_poll()
        if plan is not None:
            self._poll_worker(plan)

    def reset_connection(self) -> None:
        self.live.reset_connection()

    @work(thread=True, group="pending-poll", exit_on_error=False)
    def _poll_worker(self, plan: PollPlan) -> None:
        self.post_message(self.Polled(self.live.poll_once(plan)))

    @on(Polled)
    def _on_polled(self, message: Polled) -> None:
        result = message.result
        if not self._alive():
            self.live.polling = False
            return
        transition = self.live.polled(result)
        if transition is not None:
            detail = result.detail if isinstance(result, (Unreachable, Unauthorized)) else ""
            self.post_message(self.ConnectionChanged(transition, detail, self.live))
        if isinstance(result, Restarted):
            self.reload()
        elif isinstance(result, Changed) and result.changes:
            self._apply_changes(result)

    def _apply_changes(self, result: Changed) -> None:
        table = self.table
        for request_id in result.ids:
            self.cache.forget(request_id)
        add, remove = touched_rows(result, lambda ended: [r.id for r in table.rows_of_executions(ended)])
        highlighted = table.highlighted_id
        if add:
            table.add_rows(add)
        if remove:
            gone = table.remove_ids(remove)
            if highlighted in gone and highlighted not in self.decisions.in_flight:
                what = how_it_went(result, highlighted)
                self.app.notify(f"{highlighted[:8]}… was {what}", title="Request gone")
                signoff_app(self).set_notice(f"{highlighted[:8]}… {what}")
        if highlighted is not None and highlighted in result.ids and highlighted == table.highlighted_id:
            self._highlight(highlighted)  # refresh its context (approvals may have changed)
        self.update_status()

    def tick_countdown(self) -> None:
        self.table.tick()

    # -- status --------------------------------------------------------------------------
    def update_status(self) -> None:
        table = self.table
        counts = (f"{table.visible_count:,}/{table.row_count:,}" if table.filter_text
                  else f"{table.row_count:,}")
        signoff_app(self).update_status(counts=counts, marked=len(table.marked), filter=table.filter_text)

    @on(PendingTable.MarksChanged)
    def _marks_changed(self, _event: PendingTable.MarksChanged) -> None:
        self.update_status()

    # -- filter --------------------------------------------------------------------------
    def open_filter(self) -> None:
        field = self.filter_input
        field.add_class("-shown")
        # at once, not with focus() (which queues it): the keys read after "/" go to the filter
        self.screen.set_focus(field)

    def action_clear_filter(self) -> None:
        if self.table.filter_text or self.filter_input.value:
            self.close_filter(clear=True)

    def close_filter(self, *, clear: bool) -> None:
        if clear:
            self.filter_input.value = ""
            self.table.set_filter("")
            self.filter_input.remove_class("-shown")
        elif not self.filter_input.value:
            self.filter_input.remove_class("-shown")
        self.table.focus()
        self.update_status()

    @on(Input.Changed, "#pending-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.table.set_filter(event.value)
        self.update_status()

    @on(Input.Submitted, "#pending-filter")
    def _filter_submitted(self, _event: Input.Submitted) -> None:
        self.close_filter(clear=False)

    # -- context pane --------------------------------------------------------------------
    @on(PendingTable.Highlighted)
    def _on_highlighted(self, event: PendingTable.Highlighted) -> None:
        self._highlight(event.request_id)

    def show_highlighted(self) -> None:
        """The context of the highlighted request (after the list changed under it)."""
        current = self.table.highlighted_id
        if current:
            self._highlight(current)
        else:
            self.context.show_message("No pending approval requests.")

    def _highlight(self, request_id: str | None) -> None:
        if self._pinned is not None:
            if request_id == self._pinned[1]:
                return  # the cursor has not moved: keep showing the linked request
            self._pinned = None
        if self._context_timer is not None:
            self._context_timer.stop()
            self._context_timer = None
        if request_id is None:
            if self.live.loaded:
                self.context.show_message("No request highlighted." if self.table.row_count
                                          else "No pending approval requests.")
            return
        cached = self.cache.get(request_id)
        if cached is not None:
            self.context.show_request(cached)
            return
        self._context_timer = self.set_timer(CONTEXT_DEBOUNCE, lambda: self._fetch_context(request_id))

    @work(thread=True, exclusive=True, group="pending-context", exit_on_error=False)
    def _fetch_context(self, request_id: str) -> None:
        try:
            request = self.backend.get_request(request_id)
        except Exception as exc:  # noqa: BLE001 - shown in the context pane
            self.post_message(self.ContextFailed(request_id, exc))
            return
        self.post_message(self.ContextFetched(request))

    @on(ContextFetched)
    def _on_context_fetched(self, message: ContextFetched) -> None:
        if not self._alive():
            return
        self.cache.remember(message.request)
        if message.request["id"] == self.table.highlighted_id and self._pinned is None:
            self.context.show_request(message.request)

    @on(ContextFailed)
    def _on_context_failed(self, message: ContextFailed) -> None:
        if self._alive() and message.request_id == self.table.highlighted_id:
            self.context.show_message(f"Could not load {message.request_id}: {message.error}")

    def on_pending_table_activated(self, event: PendingTable.Activated) -> None:
        signoff_app(self).action_open_form()

    # -- decisions (console.screens.decisions) ---------------------------------------------
    def targets(self) -> list[str]:
        return self.decisions.targets()

    # The journeys are not exclusive workers: ``busy`` already refuses a second one, and an
    # exclusive worker would cancel the running journey (and lose its result) on that press.
    @work(group="pending-decide", exit_on_error=False)
    async def approve(self, with_form: bool = False) -> None:
        await self.decisions.approve(with_form)

    @work(group="pending-decide", exit_on_error=False)
    async def deny(self) -> None:
        await self.decisions.deny()

    @work(group="pending-decide", exit_on_error=False)
    async def cancel_requests(self) -> None:
        await self.decisions.cancel()

    async def run_blocking(self, fn: Callable[[], Any]) -> Any:
        """Run a blocking backend call in a thread worker and await its result."""
        worker = self.run_worker(fn, thread=True, group="pending-io", exit_on_error=False)
        try:
            return await worker.wait()
        except WorkerFailed as exc:
            raise exc.error from None

    def refresh_rows(self, ids: list[str]) -> None:
        """Read these rows again (in a worker): they stay pending, with new approval counts."""
        self._refresh_worker(ids)

    @work(thread=True, group="pending-refresh", exit_on_error=False)
    def _refresh_worker(self, ids: list[str]) -> None:
        try:
            summaries = self.backend.pending_summaries(ids)
        except Exception:  # noqa: BLE001 - the next poll will catch up
            return
        self.post_message(self.RowsRefreshed(summaries))

    @on(RowsRefreshed)
    def _on_rows_refreshed(self, message: RowsRefreshed) -> None:
        if self._alive():
            self.table.add_rows([s for s in message.summaries if s.get("state") == "PENDING"])
