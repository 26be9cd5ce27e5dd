"""The program's start (console/startup.py): the garbage collector is held off only until the
console has painted or the command line is parsed, and only when the program itself held it."""
from __future__ import annotations

import gc

import pytest

from signoff.console import startup
from signoff.console.cli import main
from tests.console.conftest import loaded

SIZE = (120, 40)


@pytest.fixture
def collector():
    """Put the process's collector back the way it was, whatever a test left behind."""
    was_enabled = gc.isenabled()
    yield
    startup._held = False
    gc.unfreeze()
    if was_enabled:
        gc.enable()
    else:  # pragma: no cover - pytest runs with the collector on
        gc.disable()


def test_release_switches_back_on_only_what_hold_switched_off(collector):
    startup.hold_collector()
    assert not gc.isenabled()
    startup.release_collector()
    assert gc.isenabled()
    assert gc.get_freeze_count() > 0  # start-up's objects are out of later collections

    gc.disable()  # switched off by someone else: not ours to switch on
    startup.release_collector()
    assert not gc.isenabled()


def test_a_command_releases_the_collector(collector, tmp_path, capsys):
    startup.hold_collector()
    main(["--data-dir", str(tmp_path / "data"), "--flows", str(tmp_path / "flows"), "pending", "--json"])
    assert capsys.readouterr().out.strip() == "[]"
    assert gc.isenabled()


def test_a_refused_command_releases_it_too(collector, tmp_path):
    startup.hold_collector()
    with pytest.raises(SystemExit) as exc:
        main(["--data-dir", str(tmp_path / "data"), "show", "r-nope"])
    assert exc.value.code == 1  # no such request
    assert gc.isenabled()


@pytest.mark.anyio
async def test_the_console_releases_it_after_its_first_paint(collector, env):
    startup.hold_collector()
    app = env.app()
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await pilot.pause()
        assert gc.isenabled()
