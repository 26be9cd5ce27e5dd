"""Pilot tests: each console journey, against a real engine through LocalBackend."""
from __future__ import annotations

import tomllib

import pytest

from signoff.console.screens.bulk import BulkResultScreen
from signoff.console.screens.confirm import ConfirmScreen, FormGroupsScreen, ReasonScreen
from signoff.console.screens.help import HelpScreen
from signoff.console.widgets.pending_table import PendingTable
from tests.console.conftest import BOB, ME, loaded, make_env, wait_for
from tests.console.screen_text import screen_text

SIZE = (120, 40)

pytestmark = pytest.mark.anyio


def table(app) -> PendingTable:
    return app.pending_view.table


async def type_text(pilot, text: str) -> None:
    for ch in text:
        await pilot.press(ch if ch != " " else "space")


async def test_initial_list_in_due_order_with_context(env):
    app = env.app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        t = table(app)
        assert t.all_ids == env.pending_ids()
        assert t.row_count == 5
        await wait_for(pilot, lambda: app.pending_view.context.request_id == t.highlighted_id)
        # the context pane is set before the compositor has painted it: wait for the paint
        await wait_for(pilot, lambda: "Pay 100 EUR to Acme GmbH" in screen_text(app))
        text = screen_text(app)
        assert "ticket" in text and "on timeout: fail" in text
        assert "olivia @ embedded" in text


async def test_filter_and_approve_one_with_form(env):
    app = env.app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press("slash")
        await type_text(pilot, "globex")
        t = table(app)
        assert t.visible_count == 1
        target = t.highlighted_id
        # printable keys go to the filter while it has focus: `y` must not approve
        await pilot.press("y")
        assert app.pending_view.filter_input.value == "globexy"
        assert t.visible_count == 0
        await pilot.press("backspace", "enter")  # keep the filter, back to the list
        assert t.visible_count == 1 and app.focused is t
        await pilot.press("enter")  # open the form
        from signoff.console.screens.form_screen import FormScreen

        await wait_for(pilot, lambda: isinstance(app.screen, FormScreen))
        form = app.screen
        await type_text(pilot, "bad")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: "ticket" in (form._last.errors or {}) if form._last else False)
        await pilot.pause(0.2)
        assert app.screen is form  # refused
        assert form.resume_form.error_text("ticket")
        await pilot.press("backspace", "backspace", "backspace")
        await type_text(pilot, "T-42")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: not isinstance(app.screen, FormScreen))
        # a single request with a form: the form is the confirmation
        await wait_for(pilot, lambda: target not in t.all_ids)
        request = env.service.get_request(ME, target)
        assert request["state"] == "APPROVED"
        assert request["decisions"][0]["inputs"] == {"ticket": "T-42"}
        assert request["decisions"][0]["by"] == "olivia"
        # esc in the filter clears it
        await pilot.press("slash", "escape")
        assert t.filter_text == "" and t.visible_count == 4


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
async def test_what_is_typed_in_the_form_is_on_screen(env, size):
    """The form's fields, the reason and the pending list's filter are one-row inputs without a
    border. The app's own input border once applied to them too and left that one row to the
    border, so what was typed could not be seen (the resume form's other tests host the form
    in a bare App)."""
    from textual.widgets import Input

    from signoff.console.screens.form_screen import FormScreen

    app = env.app()
    async with app.run_test(size=size) as pilot:
        await loaded(pilot)
        await pilot.press("enter")  # the first request, a payment with a ticket field
        await wait_for(pilot, lambda: isinstance(app.screen, FormScreen))
        await type_text(pilot, "T-4711")
        await pilot.press("tab")
        await type_text(pilot, "seen on screen")
        await pilot.pause(0.1)
        inputs = list(app.screen.query(Input))
        assert inputs and all(i.content_region.height >= 1 for i in inputs), [i.region for i in inputs]
        text = screen_text(app)
        assert "T-4711" in text and "seen on screen" in text, text
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, FormScreen))
        await pilot.press("slash")
        await type_text(pilot, "zzq")
        for focused in (True, False):  # while typing, and kept after enter
            await pilot.pause(0.1)
            box = app.pending_view.filter_input
            assert box.content_region.height == 1 and "zzq" in screen_text(app).splitlines()[1]
            if focused:
                await pilot.press("enter")


async def test_keys_typed_in_one_burst_after_slash_go_to_the_filter(env):
    """Over SSH "/globex" often arrives in one read: every key after "/" is queued before the
    first one is handled. They must all land in the filter; none may reach the list as a
    command (c = cancel, y = approve, ...)."""
    from textual import events
    from textual.keys import _character_to_key

    app = env.app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        for ch in "/cglobex":
            app.post_message(events.Key(_character_to_key(ch), ch))  # what the driver does per key read
        await wait_for(pilot, lambda: app.pending_view.filter_input.value == "cglobex")
        assert app.screen is app.main_screen  # no cancel dialog
        assert app.focused is app.pending_view.filter_input
        assert table(app).visible_count == 0
        # inside the filter "/" is text, not "open the filter"
        await pilot.press("slash")
        assert app.pending_view.filter_input.value == "cglobex/"


async def test_deny_with_reason(env):
    app = env.app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        t = table(app)
        target = t.highlighted_id
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, ReasonScreen))
        assert app.screen.required  # commentRequired: ON_DENY
        await pilot.press("enter")  # empty reason is refused
        assert isinstance(app.screen, ReasonScreen)
        await type_text(pilot, "wrong payee")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert "Deny 1 request in 1 flow" in screen_text(app)
        await pilot.press("y")
        await wait_for(pilot, lambda: target not in t.all_ids)
        request = env.service.get_request(ME, target)
        assert request["state"] == "DENIED"
        assert request["decisions"][0]["reason"] == "wrong payee"


async def test_marks_counts(env):
    app = env.app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        t = table(app)
        status = app.status_bar
        await pilot.press("space", "space")
        assert len(t.marked) == 2 and status.marked == 2
        assert t.cursor == 2
        await pilot.press("k", "space")  # unmark the second
        assert len(t.marked) == 1
        await pilot.press("a")
        assert len(t.marked) == 5 and status.marked == 5
        assert "5 marked" in screen_text(app)
        await pilot.press("u")
        assert not t.marked and status.marked == 0
        await pilot.press("slash")
        await type_text(pilot, "deploy")
        await pilot.press("enter", "a")  # mark all *visible*
        assert t.marked == {i for i in t.all_ids if t.row(i).flow == "deploy"}
        await pilot.press("slash")
        await pilot.press("ctrl+backslash")  # priority: works while typing in the filter
        assert not t.marked
        await pilot.press("enter", "G")
        assert t.cursor == t.visible_count - 1
        await pilot.press("escape", "G")
        assert t.cursor == 4
        await pilot.press("g")
        assert t.cursor == 0


async def test_bulk_approve_with_one_shared_form(env):
    app = env.app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        t = table(app)
        await pilot.press("space", "space", "space")  # the three payments
        marked = set(t.marked)
        assert {t.row(i).flow for i in marked} == {"payment"}
        await pilot.press("y")
        from signoff.console.screens.form_screen import FormScreen

        await wait_for(pilot, lambda: isinstance(app.screen, FormScreen))
        await type_text(pilot, "T-7")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert "Approve 3 requests in 1 flow" in screen_text(app)
        assert "payment (3)" in screen_text(app)
        await pilot.press("enter")
        await wait_for(pilot, lambda: not (marked & set(t.all_ids)))
        assert not t.marked
        for request_id in marked:
            request = env.service.get_request(ME, request_id)
            assert request["state"] == "APPROVED"
            assert request["decisions"][0]["inputs"] == {"ticket": "T-7"}


async def test_marks_with_different_forms_are_narrowed(env):
    app = env.app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        t = table(app)
        await pilot.press("a", "y")
        await wait_for(pilot, lambda: isinstance(app.screen, FormGroupsScreen))
        text = screen_text(app)
        assert "2 different forms" in text and "payment (3)" in text and "deploy (2)" in text
        groups = app.screen.groups
        index = next(i for i, g in enumerate(groups) if "deploy" in g.label)
        await pilot.press(str(index + 1))
        await wait_for(pilot, lambda: len(t.marked) == 2)
        assert {t.row(i).flow for i in t.marked} == {"deploy"}
        # no form now: a plain confirmation
        await pilot.press("y")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_for(pilot, lambda: t.row_count == 3)


async def test_bulk_where_some_fail_stay_marked(tmp_path, monkeypatch):
    monkeypatch.setenv("SIGNOFF_CONFIG_DIR", str(tmp_path / "config"))
    env = make_env(tmp_path, payments=0, deploys=3, selfcheck=1)
    app = env.app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        t = table(app)
        await pilot.press("a", "y")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        ids = list(t.all_ids)
        # meanwhile another process decides one of them
        other = env.other_service()
        decided_elsewhere = next(i for i in ids if t.row(i).flow == "deploy")
        other.approve(BOB, [decided_elsewhere])
        other.engine.close()
        four_eyes = next(i for i in ids if t.row(i).flow == "selfcheck")
        await pilot.press("y")
        await wait_for(pilot, lambda: isinstance(app.screen, BulkResultScreen))
        text = screen_text(app)
        assert "2 of 4 approved; 2 not approved (still marked)" in text
        assert "already decided: approved by bob" in text
        assert "four-eyes rule" in text
        assert t.marked == {four_eyes}  # the one decided elsewhere left the list
        assert set(t.all_ids) == {four_eyes}
        assert app.status_bar.marked == 1
        await pilot.press("escape")
        assert not isinstance(app.screen, BulkResultScreen)
    env.service.engine.close()


async def test_request_decided_elsewhere_disappears_live(env):
    app = env.app(poll_interval=0.1)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        t = table(app)
        target = t.highlighted_id
        other = env.other_service()
        other.deny(BOB, [target], reason="not today")
        other.engine.close()
        await wait_for(pilot, lambda: target not in t.all_ids)
        assert t.row_count == 4
        assert "denied by bob" in app.status_bar.notice
        # and new requests appear live, in due-time order
        env.start("deploy", {"service": "late"})
        await wait_for(pilot, lambda: t.row_count == 5)
        assert t.all_ids == env.pending_ids()


async def test_cancel_request(env):
    app = env.app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        t = table(app)
        await pilot.press("G")
        target = t.highlighted_id
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, ReasonScreen))
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_for(pilot, lambda: target not in t.all_ids)
        assert env.service.get_request(ME, target)["state"] == "CANCELLED"


async def test_confirmation_can_be_declined(env):
    app = env.app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        t = table(app)
        await pilot.press("G", "y")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("n")
        await pilot.pause(0.1)
        assert t.row_count == 5
        assert env.service.get_request(ME, t.highlighted_id)["state"] == "PENDING"


async def test_a_refused_second_decision_leaves_the_running_one_alone(env):
    """While one journey waits (here on its confirmation), another decision is refused as
    "already in progress" - and the first one must still finish when confirmed."""
    app = env.app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        t = table(app)
        await pilot.press("G")
        target = t.highlighted_id
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, ReasonScreen))
        app.pending_view.deny()  # a second decision while the first is open (e.g. from the palette)
        await pilot.pause(0.1)
        assert isinstance(app.screen, ReasonScreen)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_for(pilot, lambda: target not in t.all_ids)
        assert env.service.get_request(ME, target)["state"] == "CANCELLED"


async def test_help_lists_every_key(env):
    from signoff.console import keymap as km

    app = env.app()
    async with app.run_test(size=(120, 60)) as pilot:
        await loaded(pilot)
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
        text = screen_text(app)
        for _ in range(30):  # the list is longer than the dialog: read it while scrolling down
            await pilot.press("j")
            await pilot.pause()
            text += screen_text(app)
        for key in km.DEFAULT_KEYS:
            assert key.description in text, key.id
            assert key.display_keys() in text, key.id
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


async def test_keymap_override_from_config(env):
    env.config_path.parent.mkdir(parents=True, exist_ok=True)
    env.config_path.write_text('[keys]\ntoggle_mark = "x"\n')
    app = env.app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press("x")
        assert len(table(app).marked) == 1
        await pilot.press("question_mark")
        assert "Mark / unmark" in screen_text(app)


async def test_switch_theme_via_palette_is_remembered(env):
    app = env.app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        assert app.theme == "signoff-dark"
        await pilot.press("ctrl+p")
        await pilot.pause(0.2)
        await type_text(pilot, "theme signoff-light")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.theme == "signoff-light")
        await wait_for(pilot, lambda: env.config_path.is_file())
    assert tomllib.loads(env.config_path.read_text())["theme"] == "signoff-light"
    # the next start uses it
    app2 = env.app()
    assert app2.theme == "signoff-light"
    # --theme wins over the config for one run, without being remembered
    app3 = env.app(theme="signoff-high-contrast")
    assert app3.theme == "signoff-high-contrast"
    assert tomllib.loads(env.config_path.read_text())["theme"] == "signoff-light"


async def test_views_switch_with_keys(env):
    app = env.app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.press("2")
        await wait_for(pilot, lambda: app.current_view == "history")
        assert app.status_bar.view == "History"
        await pilot.press("1")
        await wait_for(pilot, lambda: app.current_view == "pending")
        await pilot.press("tab")
        await wait_for(pilot, lambda: app.current_view == "history")
        app.action_view_flows()
        await wait_for(pilot, lambda: app.current_view == "flows")
        app.action_view_pending()
        await wait_for(pilot, lambda: app.current_view == "pending")
        await wait_for(pilot, lambda: app.focused is table(app))


async def test_80x24_layout(env):
    app = env.app()
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(pilot)
        await wait_for(pilot, lambda: app.pending_view.context.request_id is not None)
        assert app.pending_view.has_class("-narrow")
        ctx = app.pending_view.context
        t = table(app)
        assert ctx.region.y > t.region.y  # the context pane is under the list
        assert t.region.height >= 6 and ctx.region.height >= 6
        text = screen_text(app)
        assert "Pay 100 EUR to Acme" in text
        assert all(len(line) <= 80 for line in text.splitlines())
        await pilot.press("j", "space", "y")
        from signoff.console.screens.form_screen import FormScreen

        await wait_for(pilot, lambda: isinstance(app.screen, FormScreen))
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, FormScreen))


async def test_empty_list_message(tmp_path, monkeypatch):
    monkeypatch.setenv("SIGNOFF_CONFIG_DIR", str(tmp_path / "config"))
    env = make_env(tmp_path, payments=0, deploys=0)
    app = env.app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        assert "No pending approval requests" in screen_text(app)
        await pilot.press("y")
        await pilot.pause(0.1)
        assert not isinstance(app.screen, ConfirmScreen)
    env.service.engine.close()


@pytest.mark.parametrize("name", ["signoff-dark", "signoff-light", "signoff-high-contrast"])
def test_bundled_themes_load(name):
    from signoff.console.themes import load_themes

    themes, problems = load_themes()
    assert name in themes and not problems


async def test_no_color_still_marks_cursor_and_due(env, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    app = env.app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        assert app.no_color
        t = table(app)
        await pilot.pause()
        # without colour the cursor is reverse video and "due soon" is underlined
        cursor = t.get_component_rich_style("pending-table--cursor")
        warning = t.get_component_rich_style("pending-table--warning")
        assert cursor.reverse and warning.underline
        assert "Pay 100 EUR" in screen_text(app)
