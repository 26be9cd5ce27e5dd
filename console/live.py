"""The pending list's live state, without Textual: loading, polling, reconnecting.

`PendingLive` keeps in one place what the console knows about the engine's change feed: the
last change seen, whether the list is loaded, whether a poll is out, and the connection state
(lost with a retry backoff, or the token refused). The app's banner and its "nothing was sent"
refusals read that state from here; the pending view runs the blocking halves (``read_*``,
``poll_once``) in worker threads and hands their typed results back to the methods that change
the state (``page_shown``, ``polled``) on the UI thread. Nothing here touches the screen, so it
is tested without a terminal (tests/console/test_live_model.py).

Decisions (see ARCHITECTURE.md): after a lost connection the first retry comes after
``RETRY_FIRST`` seconds and the wait doubles up to ``RETRY_MAX``; a refused token stops the
polling until the operator asks again (ctrl+r: :meth:`reset_connection`), so a revoked token
is not hammered once a second; a server that comes back with an older database (restored)
makes the console read the whole list again.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from signoff.console.backend import FIRST_PAGE, AuthError, Backend, Change, ConnectionLost

#: tick the engine's timers every this many polls (local mode; a no-op on a server)
TICK_EVERY = 5

#: what is wrong with the connection: nothing (None), the server is "lost", or the token is
#: refused ("auth")
Problem = Literal["lost", "auth"]


@dataclass(frozen=True)
class Page:
    """Pending rows read at change sequence ``seq``; ``complete`` is False for a first page of a
    longer list (the rest follows)."""

    seq: int
    rows: list[Any]
    complete: bool


@dataclass(frozen=True)
class PollPlan:
    """What one poll asks for (decided on the UI thread by :meth:`PendingLive.next_poll`)."""

    after: int
    tick: bool
    recovering: bool
    reauth: bool


# -- what a poll found: one of these ---------------------------------------------------------
@dataclass(frozen=True)
class Changed:
    """The changes since ``after`` and the present state of the requests they touch."""

    changes: list[Change]
    #: the requests' summaries (those still visible to us), for the ids below
    summaries: list[dict[str, Any]]
    #: the request ids the changes name, in order, once each
    ids: list[str]
    #: executions that ended (their rows go, whatever the change says)
    ended: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class Unreachable:
    """The server cannot be reached; the console keeps the last list and retries."""

    detail: str


@dataclass(frozen=True)
class Unauthorized:
    """The server refused the token."""

    detail: str


@dataclass(frozen=True)
class Restarted:
    """The server came back with an older change sequence: read everything again."""


@dataclass(frozen=True)
class Failed:
    """A transient failure (a busy database, say): the next poll tries again."""

    detail: str


PollResult = Changed | Unreachable | Unauthorized | Restarted | Failed

#: how the connection state moved after a poll, for the banner: None (no change)
Transition = Literal["restored", "lost", "auth"]


class PendingLive:
    """The live state of the pending list, shared by the pending view and the app.

    ``convert`` turns batches of the backend's compact row tuples into the rows the console
    shows (the view passes console.widgets.pending_table.build_rows); ``monotonic`` is the
    clock of the retry backoff."""

    #: first retry after a lost connection, and the longest wait between retries (seconds)
    RETRY_FIRST = 1.0
    RETRY_MAX = 10.0

    def __init__(self, backend: Backend, *, convert: Callable[[list[tuple[Any, ...]]], list[Any]] | None = None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.backend = backend
        self.convert = convert or list
        self.monotonic = monotonic
        #: the newest change applied to the list
        self.last_seq = 0
        #: the whole list has been read once (polls start then)
        self.loaded = False
        #: only a first page is shown; the rest is loading
        self.partial = False
        #: a poll is out (one at a time)
        self.polling = False
        self.polls = 0
        #: the connection problem the banner shows (the last one reported), or None
        self.problem: Problem | None = None
        #: the server is lost (retrying with backoff) / the token was refused (not retrying)
        self.lost = False
        self.auth_failed = False
        self.retry_delay = 0.0
        self.retry_at = 0.0
        #: ctrl+r after a refused token: poll once more, with the token read again
        self.retry_auth = False

    # -- loading (read_* run in a worker thread) --------------------------------------------
    def take_prefetched(self) -> Page | None:
        """The first page the backend read while the console started, if it is there (never
        waits, no I/O)."""
        ready = self.backend.take_prefetched(FIRST_PAGE)
        if ready is None:
            return None
        seq, items = ready
        rows = self.convert(items)
        return Page(seq, rows, complete=len(rows) < FIRST_PAGE)

    def read_first(self) -> Page:
        """The change sequence, then the first FIRST_PAGE rows (cheap: index order, no sort of
        the whole table); complete when the list is that short. The sequence is read first so
        that nothing between the two calls is missed."""
        seq = self.backend.last_change()
        rows = self.backend.pending_rows(limit=FIRST_PAGE, convert=self.convert)
        return Page(seq, rows, complete=len(rows) < FIRST_PAGE)

    def read_all(self, seq: int) -> Page:
        """The whole list (after a first page read at ``seq``)."""
        return Page(seq, self.backend.pending_rows(convert=self.convert), complete=True)

    def page_shown(self, page: Page) -> bool:
        """A page is on screen; True when it completes a first page shown before (a follow-up,
        which keeps the context cache)."""
        followup = page.complete and self.partial
        self.partial = not page.complete
        if page.complete:
            self.last_seq = max(self.last_seq, page.seq)
            self.loaded = True
        return followup

    # -- polling ------------------------------------------------------------------------------
    def next_poll(self) -> PollPlan | None:
        """The poll to run now, or None: not loaded yet, a poll already out, the token refused
        (until ctrl+r), or the server lost and its retry not due yet."""
        if not self.loaded or self.polling or (self.auth_failed and not self.retry_auth):
            return None
        if self.lost and self.monotonic() < self.retry_at:
            return None
        self.polling = True
        self.polls += 1
        reauth, self.retry_auth = self.retry_auth, False
        return PollPlan(self.last_seq, self.polls % TICK_EVERY == 0, self.lost, reauth)

    def poll_once(self, plan: PollPlan) -> PollResult:
        """Run one poll (blocking: a worker thread) and say what it found; never raises."""
        backend = self.backend
        try:
            if plan.reauth:
                backend.refresh_token()  # `signoff login` may have stored a new one
            if plan.recovering and backend.last_change() < plan.after:
                return Restarted()
            if plan.tick:
                backend.tick()
            changes = backend.changes(plan.after)
            ids = list(dict.fromkeys(c.request_id for c in changes if c.request_id))
            summaries = backend.pending_summaries(ids) if ids else []
            # execution.ended carries no request id: the rows of that execution are re-checked
            ended = {c.execution_id for c in changes if c.action == "execution.ended" and c.execution_id}
        except ConnectionLost as exc:
            return Unreachable(str(exc))
        except AuthError as exc:
            return Unauthorized(str(exc))
        except Exception as exc:  # noqa: BLE001 - transient (e.g. database busy): try again next second
            return Failed(str(exc))
        return Changed(changes, summaries, ids, ended)

    def polled(self, result: PollResult) -> Transition | None:
        """Apply a poll's result to the state; the connection transition, if any, for the banner."""
        self.polling = False
        if isinstance(result, Changed):
            transition = self._connected()
            if result.changes:
                self.last_seq = max(self.last_seq, max(c.seq for c in result.changes))
            return transition
        if isinstance(result, Unreachable):
            self.retry_delay = min(self.retry_delay * 2, self.RETRY_MAX) if self.lost else self.RETRY_FIRST
            self.lost = True
            self.problem = "lost"
            self.retry_at = self.monotonic() + self.retry_delay
            return "lost"
        if isinstance(result, Unauthorized):
            self.auth_failed = True
            self.problem = "auth"
            return "auth"
        if isinstance(result, Restarted):
            transition = self._connected()
            self.loaded = False  # no polls until the list is read again
            self.last_seq = 0
            return transition
        return None  # Failed: transient, nothing changes

    def _connected(self) -> Transition | None:
        if not (self.lost or self.auth_failed):
            return None
        self.lost = self.auth_failed = False
        self.problem = None
        self.retry_delay = 0.0
        return "restored"

    def reset_connection(self) -> None:
        """Retry at the next poll (after `signoff login`, or not to wait for the backoff). The
        refused state stays until a poll succeeds, which then clears the banner."""
        self.retry_auth = self.auth_failed
        self.retry_at = 0.0


#: how a request left the list, by the change that took it
PAST = {"request.approved": "approved", "request.denied": "denied", "request.cancelled": "cancelled",
        "request.expired": "expired", "request.auto_approved": "auto-approved", "execution.ended": "closed",
        "request.escalated": "escalated", "request.reissued": "re-issued"}


def touched_rows(result: Changed, rows_of_executions: Callable[[set[str]], Sequence[str]]
                 ) -> tuple[list[dict[str, Any]], list[str]]:
    """(rows to add or update, ids to remove) for a poll's changes: a request still PENDING is
    (re)added; one that is decided, or that we no longer see, or whose execution ended, goes."""
    found = {s["id"] for s in result.summaries}
    add = [s for s in result.summaries if s.get("state") == "PENDING"]
    remove = [s["id"] for s in result.summaries if s.get("state") != "PENDING"]
    remove += [i for i in result.ids if i not in found]
    if result.ended:
        remove += list(rows_of_executions(result.ended))
    return add, remove


def how_it_went(result: Changed, request_id: str) -> str:
    """"approved by bob", "closed"...: why ``request_id`` left the list, from the poll's last
    change to it and its present state."""
    change = next((c for c in reversed(result.changes) if c.request_id == request_id), None)
    state = next((s.get("state") or "" for s in result.summaries if s["id"] == request_id), "")
    what = PAST.get(change.action, state.lower() or "closed") if change else (state.lower() or "closed")
    by = f" by {change.actor}" if change and change.actor else ""
    return f"{what}{by}"
