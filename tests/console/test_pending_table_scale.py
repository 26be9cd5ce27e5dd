"""Functional check at 100,000 rows: PendingTable builds, filters incrementally and paints.

No timing asserts here (the benchmark measures speed); this only proves the data path works
at that size and that painting touches only the visible window.
"""
from __future__ import annotations

import pytest
from textual.app import App, ComposeResult

from signoff.console.widgets.pending_table import PendingTable
from signoff.engine.clock import FakeClock

pytestmark = pytest.mark.anyio
N = 100_000


def rows(n: int = N) -> list[dict]:
    out = []
    for i in range(n):
        due = None if i % 10 == 9 else f"2026-01-05T{10 + (i * 7 // n):02d}:{i % 60:02d}:00.000000Z"
        out.append({"id": f"r{i:012d}", "execution_id": f"e{i}", "namespace": f"team{i % 37}.prod",
                    "flow_id": ("payment_approval", "access_request", "prod_deploy")[i % 3], "task_id": "t",
                    "summary": f"Pay {i} EUR to Supplier {i % 1000}", "requested_by": f"user{i % 50}",
                    "created_at": "2026-01-05T09:00:00.000000Z", "due_at": due, "approvals": 0, "required": 1})
    out.sort(key=lambda d: (d["due_at"] is None, d["due_at"] or "", d["created_at"], d["id"]))
    return out


class TableApp(App):
    def __init__(self, items):
        super().__init__()
        self.items = items
        self.clock = FakeClock("2026-01-05T10:00:00Z")

    def compose(self) -> ComposeResult:
        yield PendingTable(clock=self.clock.now)

    def on_mount(self) -> None:
        self.query_one(PendingTable).set_rows(self.items)


async def test_100k_rows_build_filter_and_paint(anyio_backend):
    items = rows()
    app = TableApp(items)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        table = app.query_one(PendingTable)
        assert table.row_count == N and table.visible_count == N
        assert table.virtual_size.height == N + 1
        # incremental filter: each extra character narrows the previous result
        table.set_filter("supplier 99")
        first = table.visible_count
        table.set_filter("supplier 999")
        assert 0 < table.visible_count < first
        assert all("supplier 999" in table.row(i).summary.lower() for i in table.visible_ids)
        table.set_filter("")
        assert table.visible_count == N
        # navigation and marks at the end of the list
        table.cursor_last()
        await pilot.pause()
        assert table.cursor == N - 1 and table.scroll_y > 0
        table.mark_all()
        assert len(table.marked) == N
        table.clear_marks()
        # live insert keeps due-time order; removal of many ids at once
        table.add_rows([{**items[0], "id": "rnew", "due_at": "2026-01-05T00:00:00.000000Z"}])
        assert table.all_ids[0] == "rnew"
        gone = table.remove_ids([d["id"] for d in items[:50_000]])
        assert len(gone) == 50_000 and table.row_count == N - 50_000 + 1
        # painting renders lines of the visible window only
        strip = table.render_line(1)
        assert strip.cell_length == table.scrollable_content_region.width
