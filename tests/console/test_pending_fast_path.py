"""The console's fast path for long lists: compact rows from one query, first page first,
and the list's own navigation keys (no timing asserts; the benchmark measures speed)."""
from __future__ import annotations

import pytest

from signoff.console.backend import FIRST_PAGE
from signoff.console.widgets.pending_table import ROW_FIELDS, PendingRow, build_rows
from signoff.engine.service import PENDING_ROW_FIELDS
from tests.console.conftest import ME, make_env

pytestmark = pytest.mark.anyio


def test_pending_rows_match_list_pending(env):
    env.service.approve(ME, [env.pending_ids()[0]])  # one with an approval counted (or gone)
    env.start("deploy", {"service": "late"}, minutes_later=3)
    full = env.service.list_pending(ME)
    rows = env.service.pending_rows(ME)
    assert ROW_FIELDS == PENDING_ROW_FIELDS
    assert [dict(zip(PENDING_ROW_FIELDS, r, strict=True)) for r in rows] == [
        {k: d[k] for k in PENDING_ROW_FIELDS} for d in full]
    assert env.service.pending_rows(ME, limit=2) == rows[:2]
    assert env.backend.pending_rows(convert=build_rows)[0].id == full[0]["id"]


def test_row_from_tuple_equals_row_from_dict(env):
    item = env.pending()[0]
    a = PendingRow(item)
    b = PendingRow.from_tuple(tuple(item[k] for k in ROW_FIELDS))
    assert a.data == b.data and a.search == b.search and a.sort_key == b.sort_key
    assert a.data["execution_id"] == item["execution_id"]


def test_prefetch_is_taken_once(env):
    env.backend.prefetch_pending(FIRST_PAGE)
    env.backend._prefetch[0].join(5)
    seq, rows = env.backend.take_prefetched(FIRST_PAGE)
    assert seq == env.backend.last_change() and [r[0] for r in rows] == env.pending_ids()
    assert env.backend.take_prefetched(FIRST_PAGE) is None


async def test_long_list_loads_in_two_steps_and_keys_move_the_cursor(tmp_path, monkeypatch):
    monkeypatch.setenv("SIGNOFF_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setattr("signoff.console.live.FIRST_PAGE", 3)  # the live model reads the list
    env = make_env(tmp_path, payments=4, deploys=4)
    try:
        app = env.app()
        async with app.run_test(size=(120, 30)) as pilot:
            for _ in range(100):
                if app.pending_view.loaded:
                    break
                await pilot.pause(0.05)
            table = app.pending_view.table
            assert table.row_count == 8 and table.all_ids == env.pending_ids()
            await pilot.press("down", "down")
            assert table.cursor == 2 and table.scroll_y == 0
            await pilot.press("up")
            assert table.cursor == 1
            await pilot.press("end")
            assert table.cursor == 7
            await pilot.press("home")
            assert table.cursor == 0
    finally:
        env.service.engine.close()
