"""Snapshot tests of the console (pytest-textual-snapshot).

Deterministic: a FakeClock drives both the engine and the app, ids are sequential, the
location shown in the status bar is fixed, animations are off and cursors do not blink.
Baselines live in tests/__snapshots__/test_snapshots/. Update them with
``pytest tests/test_snapshots.py --snapshot-update``
and look at the SVGs before committing them.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from signoff.console.config import ConsoleConfig
from signoff.console.screens.bulk import BulkResultScreen
from signoff.console.screens.confirm import ConfirmScreen
from signoff.console.screens.help import HelpScreen
from tests.console.conftest import BOB, make_env

LOCATION = "embedded · /srv/signoff/data"


@pytest.fixture
def snap_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SIGNOFF_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.delenv("NO_COLOR", raising=False)
    envs = []

    def build(**kwargs):
        env = make_env(tmp_path, **kwargs)
        env.backend.location = LOCATION
        envs.append(env)
        return env

    yield build
    for env in envs:
        env.service.engine.close()


def fixed_app(env, **kwargs):
    app = env.app(config=ConsoleConfig(path=None), poll_interval=0.2, **kwargs)
    app.animation_level = "none"
    app.CSS = app.CSS + "\nInput { }\n"
    return app


async def settle(pilot, condition=lambda: True, timeout: float = 5.0) -> None:
    app = pilot.app
    waited = 0.0

    def ready() -> bool:
        try:
            return app.pending_view.loaded and condition()
        except Exception:  # noqa: BLE001 - not composed yet
            return False

    while not ready():
        await pilot.pause(0.05)
        waited += 0.05
        if waited > timeout:
            raise AssertionError("app did not settle")
    await pilot.pause(0.3)  # context pane debounce + fetch
    for input_ in app.screen.query("Input"):
        input_.cursor_blink = False
    await pilot.pause()


def test_snapshot_pending_with_context(snap_compare, snap_env):
    app = fixed_app(snap_env())

    async def run_before(pilot):
        await settle(pilot, lambda: app.pending_view.context.request_id is not None)
        await pilot.press("j", "space", "j", "space")  # two marks, cursor on the third row
        await settle(pilot, lambda: app.pending_view.context.request_id == app.pending_view.table.highlighted_id)

    assert snap_compare(app, terminal_size=(140, 36), run_before=run_before)


def test_snapshot_80x24(snap_compare, snap_env):
    app = fixed_app(snap_env())

    async def run_before(pilot):
        await settle(pilot, lambda: app.pending_view.context.request_id is not None)

    assert snap_compare(app, terminal_size=(80, 24), run_before=run_before)


def test_snapshot_filtered(snap_compare, snap_env):
    app = fixed_app(snap_env())

    async def run_before(pilot):
        await settle(pilot)
        await pilot.press("slash", "d", "e", "p")
        await settle(pilot, lambda: app.pending_view.context.request_id == app.pending_view.table.highlighted_id)

    assert snap_compare(app, terminal_size=(120, 30), run_before=run_before)


def test_snapshot_bulk_confirmation(snap_compare, snap_env):
    app = fixed_app(snap_env(payments=0, deploys=3, selfcheck=2))

    async def run_before(pilot):
        await settle(pilot)
        await pilot.press("a", "y")
        await settle(pilot, lambda: isinstance(app.screen, ConfirmScreen)
                     and app.pending_view.context.request_id == app.pending_view.table.highlighted_id)

    assert snap_compare(app, terminal_size=(120, 30), run_before=run_before)


def test_snapshot_bulk_result(snap_compare, snap_env):
    env = snap_env(payments=0, deploys=3, selfcheck=1)
    app = fixed_app(env)

    async def run_before(pilot):
        await settle(pilot)
        await pilot.press("a", "y")
        await settle(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        other = env.other_service()
        other.approve(BOB, ["r000000000002"])
        other.engine.close()
        await pilot.press("y")
        await settle(pilot, lambda: isinstance(app.screen, BulkResultScreen)
                     and app.pending_view.context.request_id == app.pending_view.table.highlighted_id)

    assert snap_compare(app, terminal_size=(120, 30), run_before=run_before)


def test_snapshot_help(snap_compare, snap_env):
    app = fixed_app(snap_env())

    async def run_before(pilot):
        await settle(pilot)
        await pilot.press("question_mark")
        await settle(pilot, lambda: isinstance(app.screen, HelpScreen))

    assert snap_compare(app, terminal_size=(100, 60), run_before=run_before)


@pytest.mark.parametrize("theme", ["signoff-light", "signoff-high-contrast"])
def test_snapshot_themes(snap_compare, snap_env, theme):
    app = fixed_app(snap_env(), theme=theme)

    async def run_before(pilot):
        await settle(pilot, lambda: app.pending_view.context.request_id is not None)
        await pilot.press("space")

    assert snap_compare(app, terminal_size=(120, 30), run_before=run_before)


def test_snapshot_history_with_query(tmp_path, snap_compare):
    from tests.console.test_history_view import ALICE, HistoryApp, LocalBackend, build, search
    from tests.console.test_history_view import settle as history_settle

    svc, clock = build(tmp_path)
    app = HistoryApp(LocalBackend(svc, identity=ALICE), clock)

    async def run_before(pilot) -> None:
        await history_settle(pilot)
        await search(pilot, "ns:prod* action:request.*")
        await pilot.press("j", "j")  # the approval, with its reason
        await history_settle(pilot)

    assert snap_compare(app, terminal_size=(120, 40), run_before=run_before)


def test_snapshot_form_with_validation_errors(tmp_path, snap_compare):
    from tests.console.test_resume_form import _engine, _form, _form_app, _type_into
    from tests.console.test_resume_form import settle as form_settle

    _, backend, request, _ = _engine(tmp_path)
    app = _form_app(backend, request)

    async def run_before(pilot) -> None:
        await form_settle(pilot)
        form = _form(app)
        await _type_into(pilot, form, "replicas", "25")
        await _type_into(pilot, form, "window", "2026-13-01")
        await _type_into(pilot, form, "config", '{"a": ')
        form.field_widget("go").focus()
        await form_settle(pilot)
        for widget in app.screen.query("Input, TextArea"):
            widget.cursor_blink = False
        form.query_one("#form-scroll").scroll_home(animate=False)
        await pilot.pause()

    assert snap_compare(app, terminal_size=(100, 40), run_before=run_before)
