"""The pending list's live model (console.live) without a terminal, the decisions' plain
helpers, and the typed Messages the pending view's workers post (seen with Pilot's
``message_hook``). Everything runs on a real engine (SQLite file) or a real socket."""
from __future__ import annotations

import socket

import pytest

from signoff.console.live import (
    TICK_EVERY,
    Changed,
    Failed,
    PendingLive,
    Restarted,
    Unauthorized,
    Unreachable,
    how_it_went,
    touched_rows,
)
from signoff.console.remote import RemoteBackend
from signoff.console.screens.decisions import group_by_form, sort_outcomes, strictest_comment_mode
from signoff.console.screens.pending import PendingView
from signoff.engine.approvals.outcome import Outcome
from tests.console.conftest import DANA, loaded, wait_for

SIZE = (120, 40)


class Monotonic:
    """The backoff's clock, moved by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def closed_port() -> int:
    """A local port nothing listens on (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_long_list_loads_as_a_first_page_then_the_rest(env, monkeypatch) -> None:
    monkeypatch.setattr("signoff.console.live.FIRST_PAGE", 3)
    live = PendingLive(env.backend)
    first = live.read_first()
    assert not first.complete and len(first.rows) == 3
    assert live.page_shown(first) is False and live.partial and not live.loaded
    assert live.next_poll() is None  # no polls before the whole list is there
    rest = live.read_all(first.seq)
    assert rest.complete and [r[0] for r in rest.rows] == env.pending_ids()
    assert live.page_shown(rest) is True  # a follow-up: the context cache stays
    assert live.loaded and not live.partial and live.last_seq == first.seq == env.backend.last_change()


def test_a_short_list_is_complete_in_one_read(env) -> None:
    live = PendingLive(env.backend, convert=lambda batch: [row[0] for row in batch])
    page = live.read_first()
    assert page.complete and page.rows == env.pending_ids()
    assert live.page_shown(page) is False and live.loaded


def test_polls_one_at_a_time_and_tick_every_fifth(env) -> None:
    live = PendingLive(env.backend)
    live.page_shown(live.read_first())
    ticks = []
    for _ in range(2 * TICK_EVERY):
        plan = live.next_poll()
        assert plan is not None and live.next_poll() is None  # one poll out at a time
        ticks.append(plan.tick)
        assert live.polled(live.poll_once(plan)) is None  # connected all along: no transition
    assert ticks.count(True) == 2 and ticks[TICK_EVERY - 1] and ticks[-1]


def test_a_decision_elsewhere_reaches_the_list(env) -> None:
    live = PendingLive(env.backend)
    live.page_shown(live.read_first())
    target, untouched = env.pending_ids()[:2]
    env.other_service().deny(DANA, [target], reason="not today")
    env.start("deploy", {"service": "late"})
    plan = live.next_poll()
    assert plan is not None
    result = live.poll_once(plan)
    assert isinstance(result, Changed) and target in result.ids
    live.polled(result)
    assert live.last_seq == max(c.seq for c in result.changes) == env.backend.last_change()
    add, remove = touched_rows(result, lambda ended: [])
    assert remove == [target] and untouched not in remove
    assert [s["summary"] for s in add] == ["Deploy late"]
    assert how_it_went(result, target) == "denied by dana"


def test_lost_server_backs_off_then_recovers(env) -> None:
    clock = Monotonic()
    remote = RemoteBackend(f"http://127.0.0.1:{closed_port()}", "t0ken", check=False, timeout=2)
    live = PendingLive(remote, monotonic=clock)
    live.loaded = True
    delays = []
    for _ in range(6):
        plan = live.next_poll()
        assert plan is not None
        result = live.poll_once(plan)
        assert isinstance(result, Unreachable) and "cannot reach" in result.detail
        assert live.polled(result) == "lost"
        assert live.problem == "lost" and live.lost
        delays.append(live.retry_delay)
        assert live.next_poll() is None  # not before the retry is due
        clock.now += live.retry_delay
    assert delays == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    remote.close()
    # the server is back (here: the local engine answers): the next poll restores the connection
    live.backend = env.backend
    plan = live.next_poll()
    assert plan is not None and plan.recovering
    assert live.polled(live.poll_once(plan)) == "restored"
    assert live.problem is None and not live.lost and live.retry_delay == 0.0


def test_a_server_restored_from_an_older_database_is_read_again(env) -> None:
    live = PendingLive(env.backend)
    live.page_shown(live.read_first())
    live.lost, live.last_seq = True, env.backend.last_change() + 50  # we saw more than it has now
    plan = live.next_poll()
    assert plan is not None
    result = live.poll_once(plan)
    assert isinstance(result, Restarted)
    assert live.polled(result) == "restored"
    assert not live.loaded and live.last_seq == 0 and live.next_poll() is None


def test_a_refused_token_stops_polling_until_asked() -> None:
    remote = RemoteBackend(f"http://127.0.0.1:{closed_port()}", "t0ken", check=False)
    live = PendingLive(remote)
    live.loaded = True
    live.polling = True
    assert live.polled(Unauthorized("the token was revoked")) == "auth"
    assert live.problem == "auth" and live.auth_failed and not live.polling
    assert live.next_poll() is None  # a revoked token is not hammered
    live.reset_connection()  # ctrl+r
    plan = live.next_poll()
    assert plan is not None and plan.reauth
    assert live.next_poll() is None
    live.polled(Failed("busy"))  # transient: nothing changes
    assert live.problem == "auth" and live.next_poll() is None
    remote.close()


def test_form_groups_comment_rule_and_outcomes() -> None:
    forms = {"a": [{"id": "ticket"}], "b": [], "c": [{"id": "ticket"}]}
    groups = group_by_form(["a", "b", "c"], forms.__getitem__)
    assert [(g.ids, g.form) for g in groups] == [(["a", "c"], [{"id": "ticket"}]), (["b"], [])]
    assert strictest_comment_mode(["NEVER", "ON_DENY"]) == "ON_DENY"
    assert strictest_comment_mode(["ON_DENY", "ALWAYS", "ON_APPROVE"]) == "ALWAYS"
    assert strictest_comment_mode([]) == "NEVER"
    outcomes = [Outcome("done", "decided", "", state="APPROVED"),
                Outcome("more", "decided", "", state="PENDING"),
                Outcome("gone", "already_decided", "", state="DENIED"),
                Outcome("refused", "not_eligible", "", state="PENDING")]
    sorted_ = sort_outcomes(outcomes)
    assert sorted_.done == ["done"] and sorted_.partial == ["more"] and sorted_.gone == ["gone"]
    assert [o.id for o in sorted_.failed] == ["gone", "refused"]


@pytest.mark.anyio
async def test_workers_report_through_typed_messages(env) -> None:
    seen: list[object] = []
    app = env.app(poll_interval=0.1)
    async with app.run_test(size=SIZE, message_hook=seen.append) as pilot:
        await loaded(pilot)
        loads = {id(m): m for m in seen if isinstance(m, PendingView.Loaded)}  # the hook sees each dispatch
        [page] = [m.page for m in loads.values()]
        assert page.complete and [r.id for r in page.rows] == env.pending_ids()
        view = app.pending_view
        await wait_for(pilot, lambda: any(isinstance(m, PendingView.ContextFetched) for m in seen))
        fetched = next(m for m in seen if isinstance(m, PendingView.ContextFetched))
        assert fetched.request["id"] == view.table.highlighted_id
        target = env.pending_ids()[-1]
        env.other_service().deny(DANA, [target], reason="elsewhere")
        await wait_for(pilot, lambda: target not in view.table.all_ids)
        polled = [m.result for m in seen if isinstance(m, PendingView.Polled)
                  and isinstance(m.result, Changed) and m.result.changes]
        assert polled and target in polled[-1].ids
        assert not any(isinstance(m, PendingView.ConnectionChanged) for m in seen)
        assert app.connection_problem is None


@pytest.mark.anyio
async def test_lost_connection_is_one_state_shared_with_the_app(env) -> None:
    """The pending view's poll loses the server; the app's banner and its refusals read the
    same state (the live model) and a ConnectionChanged message carries the transition."""
    seen: list[object] = []
    app = env.app(poll_interval=0.1)
    async with app.run_test(size=SIZE, message_hook=seen.append) as pilot:
        await loaded(pilot)
        remote = RemoteBackend(f"http://127.0.0.1:{closed_port()}", "t0ken", check=False, timeout=2)
        app.live.backend = remote  # as if the server went away under a remote console
        try:
            await wait_for(pilot, lambda: app.connection_banner.shown, timeout=10)
            assert app.connection_problem == "lost" and app.pending_view.connection_lost
            changed = [m for m in seen if isinstance(m, PendingView.ConnectionChanged)]
            assert changed[0].transition == "lost" and changed[0].live is app.live
            assert app.status_bar.connection == "offline"
        finally:
            remote.close()
        app.live.backend = env.backend
        app.live.reset_connection()
        await wait_for(pilot, lambda: not app.connection_banner.shown, timeout=10)
        assert app.connection_problem is None
        assert [m.transition for m in seen if isinstance(m, PendingView.ConnectionChanged)][-1] == "restored"


@pytest.mark.anyio
async def test_space_and_enter_belong_to_the_pending_list(env) -> None:
    """check_action: outside the pending list, the mark and form keys do nothing there."""
    app = env.app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        assert app.check_action("toggle_mark", ()) is True
        await pilot.press("3")  # the Flows view
        await wait_for(pilot, lambda: app.current_view == "flows")
        assert app.check_action("toggle_mark", ()) is False and app.check_action("open_form", ()) is False
        await pilot.press("space")
        assert not app.pending_view.table.marked
