"""The Pending view: filter, virtual list, context pane, live updates and decisions.

Every backend call runs in a thread worker (:meth:`PendingView._call` wraps one and lets an
async worker await it), so the UI never blocks on the engine. Decision journeys are async
workers that await modal screens in turn (form / reason -> confirmation -> progress ->
result).
"""
from __future__ import annotations

import json
import threading
import uuid
from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container
from textual.timer import Timer
from textual.widget import Widget
from textual.widgets import Input
from textual.worker import WorkerFailed

from signoff.console.backend import FIRST_PAGE, AuthError, Backend, ConnectionLost
from signoff.console.widgets.context_pane import ContextPane
from signoff.console.widgets.pending_table import PendingTable, build_rows
from signoff.engine.approvals.outcome import APPROVE, DENY, Outcome, comment_mode, comment_required

if TYPE_CHECKING:
    from signoff.console.screens.bulk import BulkProgressScreen

# The decision dialogs (console.screens.confirm and .bulk) are imported by the journeys that
# open them: the first screen does without them (~4 ms of the console's start-up).

#: bulk work is sent in slices this big, so "stop" takes effect quickly
SLICE = 50
#: show the progress screen from this many requests on
PROGRESS_FROM = 20
#: wait this long after the cursor stops before fetching the context
CONTEXT_DEBOUNCE = 0.1
CACHE_SIZE = 512
#: tick the engine's timers every this many polls (local mode)
TICK_EVERY = 5

PAST = {"request.approved": "approved", "request.denied": "denied", "request.cancelled": "cancelled",
        "request.expired": "expired", "request.auto_approved": "auto-approved", "execution.ended": "closed",
        "request.escalated": "escalated", "request.reissued": "re-issued"}


def form_signature(form: Sequence[dict]) -> str:
    return json.dumps(list(form or []), sort_keys=True, default=str)


class FilterInput(Input):
    """The `/` filter: printable keys type; esc clears and leaves; arrows still move the list."""

    BINDINGS = [
        Binding("escape", "leave(True)", "Clear filter", show=False),
        Binding("down", "move('cursor_down')", show=False),
        Binding("up", "move('cursor_up')", show=False),
        Binding("pagedown", "move('page_down')", show=False),
        Binding("pageup", "move('page_up')", show=False),
    ]

    def action_leave(self, clear: bool) -> None:
        view = self.ancestors_with_self[1]
        for node in self.ancestors:
            if isinstance(node, PendingView):
                view = node
                break
        if isinstance(view, PendingView):
            view.close_filter(clear=clear)

    def action_move(self, method: str) -> None:
        for node in self.ancestors:
            if isinstance(node, PendingView):
                getattr(node.table, method)()
                return


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

    def __init__(self, *, clock: Callable | None = None, id: str | None = None) -> None:
        super().__init__(id=id)
        self._clock = clock
        self.last_seq = 0
        self.loaded = False
        self._polling = False
        self._poll_count = 0
        self._cache: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._context_timer: Timer | None = None
        self._in_flight: set[str] = set()
        self.busy = False
        #: only the first rows are shown so far (the whole list is loading)
        self._partial = False
        self._filter: FilterInput | None = None

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

    @property
    def backend(self) -> Backend:
        return self.app.backend  # type: ignore[attr-defined, no-any-return]

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

    # -- loading and live updates --------------------------------------------------------
    def load(self) -> None:
        """(Re)load the list. Rows the backend prefetched while the app was starting are shown
        at once (before the first paint, no I/O here); everything else is read in a worker."""
        ready = self.backend.take_prefetched(FIRST_PAGE)  # never waits
        if ready is None:
            self._load_worker(None)
            return
        seq, items = ready
        rows = build_rows(items)
        if len(rows) < FIRST_PAGE:
            self._loaded(rows, seq)
            if self.backend.tick_after_load:
                self.run_worker(self.backend.run_deferred_tick, thread=True, group="pending-load-tick",
                                exit_on_error=False)
            return
        painted = threading.Event()
        self._loaded(rows, seq, painted)
        self._load_worker((seq, painted))

    @work(thread=True, exclusive=True, group="pending-load", exit_on_error=False)
    def _load_worker(self, first: tuple[int, threading.Event] | None) -> None:
        """Fetch the list in this thread. A long list comes in two steps: the first screenful
        (FIRST_PAGE rows, cheap: index order, no sort of the whole table) is painted at once,
        then, once that paint is out, the whole list replaces it. ``first``: the first step
        was done already (prefetched): its change sequence and "painted" event."""
        from textual.worker import get_current_worker

        backend = self.backend
        worker = get_current_worker()
        try:
            if first is not None:
                seq, painted = first
                painted.wait(2.0)  # let the first paint have the CPU
                items: list[Any] = backend.pending_rows(convert=build_rows)
            else:
                seq = backend.last_change()  # first, so nothing between the two calls is missed
                items = backend.pending_rows(limit=FIRST_PAGE, convert=build_rows)
                if len(items) >= FIRST_PAGE:
                    painted = threading.Event()
                    self.app.call_from_thread(self._loaded, items, seq, painted)
                    painted.wait(2.0)
                    if worker.is_cancelled:
                        return
                    items = backend.pending_rows(convert=build_rows)
            rows = items  # PendingRows already (converted by the backend, batch by batch)
        except Exception as exc:  # noqa: BLE001 - shown to the operator
            self.app.call_from_thread(self._load_failed, exc)
            return
        if worker.is_cancelled:
            return
        self.app.call_from_thread(self._loaded, rows, seq)
        backend.run_deferred_tick()

    def _load_failed(self, exc: Exception) -> None:
        self.table.loading_text = f"Could not load the pending list: {exc}"
        self.table.refresh()
        self.app.notify(str(exc), title="Load failed", severity="error")

    def _loaded(self, rows: list[Any], seq: int, first_page: threading.Event | None = None) -> None:
        """The list (or, with ``first_page``, its first rows: the event is set once painted)."""
        if not self.is_attached or not self.children:
            if first_page is not None:
                first_page.set()
            return
        table = self.table
        partial = first_page is not None
        followup = not partial and self._partial
        self._partial = partial
        table.set_rows(rows, complete=not partial)
        if partial:
            self.call_after_refresh(first_page.set)
        else:
            self.last_seq = max(self.last_seq, seq)
            self.loaded = True
        if not followup:
            self._cache.clear()
        self._update_status()
        if partial and not table.filter_text:
            self.app.update_status(counts=f"{table.row_count:,}+")  # type: ignore[attr-defined]  # more loading
        if not rows:
            self.context.show_message("No pending approval requests.")
        elif not followup or table.highlighted_id != self.context.request_id:
            self._highlight(table.highlighted_id)

    # connection state (remote mode): set by the poll worker's outcome, shown by the app's banner
    #: first retry after a lost connection, and the longest wait between retries (seconds)
    RETRY_FIRST = 1.0
    RETRY_MAX = 10.0
    connection_lost = False
    auth_failed = False
    #: ctrl+r after a refused token: poll once more, with the token read again
    _retry_auth = False
    _retry_delay = 0.0
    _retry_at = 0.0

    def poll(self) -> None:
        """Called every second by the app: fetch changes since the last look (in a worker).
        While the server is lost, tries again after 1, 2, 4... (at most 10) seconds; once the
        token is refused, not at all until :meth:`reset_connection` (ctrl+r)."""
        import time

        if not self.loaded or self._polling or (self.auth_failed and not self._retry_auth):
            return
        if self.connection_lost and time.monotonic() < self._retry_at:
            return
        self._polling = True
        self._poll_count += 1
        reauth, self._retry_auth = self._retry_auth, False
        self._poll(self.last_seq, self._poll_count % TICK_EVERY == 0, self.connection_lost, reauth)

    def reset_connection(self) -> None:
        """Retry at the next poll (after `signoff login`, or not to wait for the backoff).
        The refused state stays until a poll succeeds, which then clears the banner."""
        self._retry_auth = self.auth_failed
        self._retry_at = 0.0

    @work(thread=True, group="pending-poll", exit_on_error=False)
    def _poll(self, after: int, tick: bool, recovering: bool = False, reauth: bool = False) -> None:
        backend = self.backend
        try:
            if reauth:
                backend.refresh_token()  # `signoff login` may have stored a new one
            if recovering and backend.last_change() < after:
                # the server came back with an older database (restored): read everything again
                self.app.call_from_thread(self._poll_restart)
                return
            if tick:
                backend.tick()
            changes = backend.changes(after)
            summaries: list[dict[str, Any]] = []
            ids = list(dict.fromkeys(c.request_id for c in changes if c.request_id))
            if ids:
                summaries = backend.pending_summaries(ids)
            # execution.ended carries no request id: re-check the rows of that execution
            ended = {c.execution_id for c in changes if c.action == "execution.ended" and c.execution_id}
        except ConnectionLost as exc:
            self.app.call_from_thread(self._poll_lost, exc)
            return
        except AuthError as exc:
            self.app.call_from_thread(self._poll_unauthorized, exc)
            return
        except Exception:  # noqa: BLE001 - transient (e.g. database busy): try again next second
            self.app.call_from_thread(self._poll_done, None, [], [], set())
            return
        self.app.call_from_thread(self._poll_done, changes, summaries, ids, ended)

    def _poll_done(self, changes, summaries: list[dict[str, Any]], ids: list[str], ended: set[str]) -> None:
        if not self.is_attached or not self.children:
            self._polling = False
            return
        self._polling = False
        if changes is not None:
            self._poll_connected()
        if not changes:
            return
        self.last_seq = max(self.last_seq, max(c.seq for c in changes))
        last_by_request = {c.request_id: c for c in changes if c.request_id}
        for request_id in ids:
            self._cache.pop(request_id, None)
        found = {s["id"]: s for s in summaries}
        add = [s for s in summaries if s.get("state") == "PENDING"]
        remove = [s["id"] for s in summaries if s.get("state") != "PENDING"]
        remove += [i for i in ids if i not in found]  # no longer visible to us
        if ended:
            remove += [r.id for r in self.table.rows_of_executions(ended)]
        highlighted = self.table.highlighted_id
        if add:
            self.table.add_rows(add)
        if remove:
            gone = self.table.remove_ids(remove)
            if highlighted in gone and highlighted not in self._in_flight:
                change = last_by_request.get(highlighted)
                state = (found.get(highlighted) or {}).get("state", "")
                what = PAST.get(change.action, state.lower() or "closed") if change else (state.lower() or "closed")
                by = f" by {change.actor}" if change and change.actor else ""
                self.app.notify(f"{highlighted[:8]}… was {what}{by}", title="Request gone")
                self.app.set_notice(f"{highlighted[:8]}… {what}{by}")  # type: ignore[attr-defined]
        if highlighted is not None and highlighted in ids and highlighted == self.table.highlighted_id:
            self._highlight(highlighted)  # refresh its context (approvals may have changed)
        self._update_status()

    def _poll_connected(self) -> None:
        if not (self.connection_lost or self.auth_failed):
            return
        self.connection_lost = self.auth_failed = False
        self._retry_delay = 0.0
        restored = getattr(self.app, "connection_restored", None)
        if callable(restored):
            restored()

    def _poll_lost(self, exc: Exception) -> None:
        import time

        self._polling = False
        if not self.is_attached or not self.children:
            return
        self._retry_delay = (min(self._retry_delay * 2, self.RETRY_MAX) if self.connection_lost
                             else self.RETRY_FIRST)
        self.connection_lost = True
        self._retry_at = time.monotonic() + self._retry_delay
        lost = getattr(self.app, "connection_lost", None)
        if callable(lost):
            lost(self.last_seq, str(exc))

    def _poll_unauthorized(self, exc: Exception) -> None:
        self._polling = False
        if not self.is_attached or not self.children:
            return
        self.auth_failed = True
        refused = getattr(self.app, "authentication_lost", None)
        if callable(refused):
            refused(str(exc))

    def _poll_restart(self) -> None:
        self._polling = False
        if not self.is_attached or not self.children:
            return
        self._poll_connected()
        self.loaded = False  # no polls until the list is read again
        self.last_seq = 0
        self.reload()

    def tick_countdown(self) -> None:
        self.table.tick()

    def reload(self) -> None:
        self.load()

    # -- status --------------------------------------------------------------------------
    def _update_status(self) -> None:
        table = self.table
        counts = (f"{table.visible_count:,}/{table.row_count:,}" if table.filter_text
                  else f"{table.row_count:,}")
        self.app.update_status(counts=counts, marked=len(table.marked),  # type: ignore[attr-defined]
                               filter=table.filter_text)

    @on(PendingTable.MarksChanged)
    def _marks_changed(self, _event: PendingTable.MarksChanged) -> None:
        self._update_status()

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
        self._update_status()

    @on(Input.Changed, "#pending-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.table.set_filter(event.value)
        self._update_status()

    @on(Input.Submitted, "#pending-filter")
    def _filter_submitted(self, _event: Input.Submitted) -> None:
        self.close_filter(clear=False)

    # -- context pane --------------------------------------------------------------------
    @on(PendingTable.Highlighted)
    def _on_highlighted(self, event: PendingTable.Highlighted) -> None:
        self._highlight(event.request_id)

    def _highlight(self, request_id: str | None) -> None:
        if self._context_timer is not None:
            self._context_timer.stop()
            self._context_timer = None
        if request_id is None:
            if self.loaded:
                self.context.show_message("No request highlighted." if self.table.row_count
                                          else "No pending approval requests.")
            return
        cached = self._cache.get(request_id)
        if cached is not None:
            self.context.show_request(cached)
            return
        self._context_timer = self.set_timer(CONTEXT_DEBOUNCE, lambda: self._fetch_context(request_id))

    @work(thread=True, exclusive=True, group="pending-context", exit_on_error=False)
    def _fetch_context(self, request_id: str) -> None:
        try:
            request = self.backend.get_request(request_id)
        except Exception as exc:  # noqa: BLE001
            self.app.call_from_thread(self._context_failed, request_id, exc)
            return
        self.app.call_from_thread(self._context_fetched, request)

    def _context_fetched(self, request: dict[str, Any]) -> None:
        if not self.is_attached or not self.children:
            return
        self._remember(request)
        if request["id"] == self.table.highlighted_id:
            self.context.show_request(request)

    def _context_failed(self, request_id: str, exc: Exception) -> None:
        if not self.is_attached or not self.children:
            return
        if request_id == self.table.highlighted_id:
            self.context.show_message(f"Could not load {request_id}: {exc}")

    def _remember(self, request: dict[str, Any]) -> None:
        self._cache[request["id"]] = request
        self._cache.move_to_end(request["id"])
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)

    def on_pending_table_activated(self, event: PendingTable.Activated) -> None:
        self.app.action_open_form()  # type: ignore[attr-defined]

    # -- decisions -----------------------------------------------------------------------
    def targets(self) -> list[str]:
        """The marked requests (in list order) if any, else the highlighted one."""
        table = self.table
        if table.marked:
            return [i for i in table.all_ids if i in table.marked]
        current = table.highlighted_id
        return [current] if current else []

    async def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run a blocking backend call in a thread worker and await its result."""
        worker = self.run_worker(lambda: fn(*args, **kwargs), thread=True, group="pending-io",
                                 exit_on_error=False)
        try:
            return await worker.wait()
        except WorkerFailed as exc:
            raise exc.error from None

    async def _requests_for(self, ids: list[str]) -> dict[tuple, dict[str, Any]]:
        """One full request per group (:meth:`_group_key`) among ``ids``: their forms and rules."""
        reps: dict[tuple, str] = {}
        for request_id in ids:
            reps.setdefault(self._group_key(request_id), request_id)
        missing = [i for i in reps.values() if i not in self._cache]
        if missing:
            fetched = await self._call(lambda: [self.backend.get_request(i) for i in missing])
            for request in fetched:
                self._remember(request)
        return {key: self._cache[request_id] for key, request_id in reps.items()}

    def _group_key(self, request_id: str) -> tuple:
        """(namespace, flow, task): requests of one group ask for the same form."""
        row = self.table.row(request_id)
        data = row.data if row else {}
        return (data.get("namespace"), data.get("flow_id"), data.get("task_id"))

    def _flows_of(self, ids: list[str]) -> list[tuple[str, int]]:
        counts = Counter(row.flow if (row := self.table.row(i)) else "?" for i in ids)
        return counts.most_common()

    def _confirm_text(self, verb: str, ids: list[str]) -> tuple[str, str]:
        from signoff.console.screens.confirm import flows_summary

        flows = self._flows_of(ids)
        noun = "request" if len(ids) == 1 else "requests"
        title = f"{verb} {len(ids)} {noun} in {len(flows)} flow{'s' if len(flows) != 1 else ''}"
        if len(ids) == 1:
            row = self.table.row(ids[0])
            body = f"{ids[0]} · {row.namespace}/{row.flow}\n{row.summary}" if row else ids[0]
        else:
            body = flows_summary(flows)
        return title, body

    def _begin(self) -> list[str] | None:
        if self.busy:
            self.app.notify("A decision is already in progress.", severity="warning")
            return None
        ids = self.targets()
        if not ids:
            self.app.notify("Nothing to act on: the list is empty.", severity="warning")
            return None
        return ids

    # The journeys are not exclusive workers: ``busy`` already refuses a second one, and an
    # exclusive worker would cancel the running journey (and lose its result) on that press.
    @work(group="pending-decide", exit_on_error=False)
    async def approve(self, with_form: bool = False) -> None:
        await self._journey("Approve", lambda ids: self._approve(ids, with_form))

    @work(group="pending-decide", exit_on_error=False)
    async def deny(self) -> None:
        await self._journey("Deny", self._deny)

    @work(group="pending-decide", exit_on_error=False)
    async def cancel_requests(self) -> None:
        await self._journey("Cancel", self._cancel)

    async def _journey(self, verb: str, run: Callable[[list[str]], Any]) -> None:
        """One decision journey at a time, on the marked (or highlighted) requests; a failure
        is shown, never raised."""
        ids = self._begin()
        if ids is None:
            return
        self.busy = True
        try:
            await run(ids)
        except Exception as exc:  # noqa: BLE001
            self.app.notify(str(exc), title=f"{verb} failed", severity="error")
        finally:
            self.busy = False

    async def _approve(self, ids: list[str], with_form: bool) -> None:
        from signoff.console.screens.confirm import (
            ConfirmScreen,
            FormGroup,
            FormGroupsScreen,
            ReasonScreen,
            flows_summary,
        )

        requests = await self._requests_for(ids)
        # group the targets by the form they ask for
        signatures: dict[str, list[str]] = {}
        forms: dict[str, list[dict]] = {}
        for request_id in ids:
            form = (requests.get(self._group_key(request_id)) or {}).get("form") or []
            sig = form_signature(form)
            signatures.setdefault(sig, []).append(request_id)
            forms[sig] = form
        if len(signatures) > 1:
            groups = []
            for sig, group_ids in signatures.items():
                label = flows_summary(self._flows_of(group_ids))
                fields = ", ".join(f.get("id", "?") for f in forms[sig])
                groups.append(FormGroup(label=label, ids=group_ids, fields=fields))
            choice = await self.app.push_screen_wait(FormGroupsScreen(groups))
            if choice is not None:
                self.table.set_marks(groups[choice].ids)
                self.app.notify(f"Kept {len(groups[choice].ids)} marks ({groups[choice].label}); press y to approve.")
            return
        (sig, _), = signatures.items()
        form = forms[sig]
        modes = {comment_mode(r.get("rules")) for r in requests.values()}
        # the strictest rule of the group decides whether this approval needs a reason
        combined = next((m for m in ("ALWAYS", "ON_APPROVE", "ON_DENY") if m in modes), "NEVER")
        values: dict[str, Any] = {}
        reason: str | None = None
        form_shown = False
        if form or with_form:
            screen_cls = _form_screen()
            if screen_cls is not None:
                first = ids[0]
                title, _body = self._confirm_text("Approve", ids)
                subtitle = (self.table.row(first).summary if len(ids) == 1 and self.table.row(first)
                            else flows_summary(self._flows_of(ids)))
                result = await self.app.push_screen_wait(screen_cls(
                    title, form, validate=lambda v: self.backend.validate(first, v),
                    comment_mode=combined, subtitle=subtitle))
                if result is None:
                    return
                values, reason = dict(result.values), result.reason
                form_shown = True
            elif form:
                self.app.notify("The form editor is not available; the form's defaults are used.",
                                severity="warning")
        if not form_shown and comment_required(combined, APPROVE):
            reason = await self.app.push_screen_wait(ReasonScreen("Why approve?", required=True))
            if reason is None:
                return
        if not (form_shown and len(ids) == 1):
            title, body = self._confirm_text("Approve", ids)
            if not await self.app.push_screen_wait(ConfirmScreen(title, body, confirm_label="Approve")):
                return
        await self._run_bulk("approve", ids, inputs=values, reason=reason)

    async def _deny(self, ids: list[str]) -> None:
        requests = await self._requests_for(ids)
        required = any(comment_required(comment_mode(r.get("rules")), DENY) for r in requests.values())
        await self._with_reason("deny", ids, required=required, confirm_label="Deny")

    async def _cancel(self, ids: list[str]) -> None:
        await self._with_reason("cancel", ids, required=False, confirm_label="Cancel requests",
                                note="; their executions are killed")

    async def _with_reason(self, verb: str, ids: list[str], *, required: bool, confirm_label: str,
                           note: str = "") -> None:
        """Deny or cancel: ask why, confirm (a danger button), then decide in bulk."""
        from signoff.console.screens.confirm import ConfirmScreen, ReasonScreen

        title, body = self._confirm_text(verb.capitalize(), ids)
        reason = await self.app.push_screen_wait(
            ReasonScreen(f"Why {verb}? ({title.lower()}){note}", required=required))
        if reason is None:
            return
        if not await self.app.push_screen_wait(ConfirmScreen(title, body, confirm_label=confirm_label, danger=True)):
            return
        await self._run_bulk(verb, ids, reason=reason or None)

    async def _run_bulk(self, verb: str, ids: list[str], *, inputs: dict[str, Any] | None = None,
                        reason: str | None = None) -> None:
        progress: BulkProgressScreen | None = None
        stop = threading.Event()
        if len(ids) >= PROGRESS_FROM:
            from signoff.console.screens import bulk

            progress = bulk.BulkProgressScreen(verb, len(ids))
            stop = progress.stop_requested
            self.app.push_screen(progress)
        self._in_flight.update(ids)
        # labels now: a live update may remove rows (decided elsewhere) before the result shows
        labels = {i: f"{row.flow}: {row.summary}" for i in ids if (row := self.table.row(i)) is not None}
        key = str(uuid.uuid4())
        backend = self.backend
        app = self.app

        def run() -> list[Outcome]:
            outcomes: list[Outcome] = []
            for start in range(0, len(ids), SLICE):
                if stop.is_set():
                    outcomes += [Outcome(i, "skipped", "not decided: the bulk action was stopped")
                                 for i in ids[start:]]
                    break
                part = ids[start:start + SLICE]
                if verb == "cancel":
                    outcomes += backend.cancel(part, reason)
                else:
                    outcomes += backend.decide(part, verb, inputs=inputs, reason=reason, idempotency_key=key)
                if progress is not None:
                    app.call_from_thread(progress.advance, len(outcomes), len(ids))
            return outcomes

        try:
            outcomes = await self._call(run)
        finally:
            if progress is not None and progress.is_attached:
                progress.dismiss()
            self._in_flight.difference_update(ids)
        self._finish(verb, ids, outcomes, labels)

    def _finish(self, verb: str, ids: list[str], outcomes: list[Outcome], labels: dict[str, str]) -> None:
        from signoff.console.screens.bulk import BulkResultScreen

        table = self.table
        had_marks = bool(table.marked)
        for o in outcomes:
            self._cache.pop(o.id, None)
        done = [o.id for o in outcomes if o.ok and o.state != "PENDING"]
        partial = [o.id for o in outcomes if o.ok and o.state == "PENDING"]  # quorum not reached yet
        gone = [o.id for o in outcomes if not o.ok and o.state not in (None, "PENDING")]
        failed = [o for o in outcomes if not o.ok]
        table.remove_ids(done + gone)
        if had_marks:
            table.set_marks([o.id for o in failed])
        if partial:
            table.marked.difference_update(partial)
            self._refresh_rows(partial)
        self._update_status()
        past = {"approve": "Approved", "deny": "Denied", "cancel": "Cancelled"}[verb]
        if failed:
            self.app.push_screen(BulkResultScreen(verb, outcomes, labels))
        else:
            extra = f" ({len(partial)} waiting for more approvals)" if partial else ""
            self.app.notify(f"{past} {len(outcomes)} request{'s' if len(outcomes) != 1 else ''}{extra}.",
                            title=past)
        current = table.highlighted_id
        if current:
            self._highlight(current)
        else:
            self.context.show_message("No pending approval requests.")

    @work(thread=True, group="pending-refresh", exit_on_error=False)
    def _refresh_rows(self, ids: list[str]) -> None:
        try:
            summaries = self.backend.pending_summaries(ids)
        except Exception:  # noqa: BLE001 - the next poll will catch up
            return
        self.app.call_from_thread(self.table.add_rows, [s for s in summaries if s.get("state") == "PENDING"])


def _form_screen():
    try:
        from signoff.console.screens.form_screen import FormScreen
    except ImportError:  # built by another part of the project; degrade gracefully without it
        return None
    return FormScreen
