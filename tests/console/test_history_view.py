"""The history view on a real engine: search, detail with frozen context, paging, export, verification."""
from __future__ import annotations

import csv
import json
import sqlite3
from datetime import timedelta

import pytest
from textual.app import App, ComposeResult
from textual.widgets import DataTable, Input, Static

from signoff.console.backend import LocalBackend
from signoff.console.screens.export import ExportScreen
from signoff.console.screens.history import PAGE, HistoryView
from signoff.engine.audit import append_event
from signoff.engine.clock import FakeClock
from signoff.engine.ids import SequentialIds
from tests.console.screen_text import rendered
from tests.support import ALICE, BOB, make_service

pytestmark = pytest.mark.anyio

GATE_FLOW = """
id: deploy
namespace: prod.payments
description: Deploy a service to production
inputs:
  - id: service
    type: STRING
tasks:
  - id: gate
    type: io.kestra.plugin.core.flow.Pause
    context:
      summary: "Deploy {{ inputs.service }} to prod"
      details: |
        ### Change

        - **Service:** `{{ inputs.service }}`
      impact: "Restarts {{ inputs.service }} pods"
    onResume:
      - id: ok
        type: BOOLEAN
  - id: done
    type: io.kestra.plugin.core.log.Log
    message: "deployed {{ inputs.service }}"
"""


def build(tmp_path, *, extra_events: int = 0):
    """Two deploys by bob: one approved by alice (reason "disk full on db-3"), one denied by carol."""
    clock = FakeClock("2026-01-05T09:00:00Z")
    svc = make_service(tmp_path, {"deploy.yaml": GATE_FLOW}, clock=clock)
    svc.engine.ids = SequentialIds()
    first = svc.start_execution(BOB, "prod.payments", "deploy", {"service": "billing"})
    clock.advance(timedelta(minutes=5))
    [ok] = svc.approve(ALICE, [first["requests"][0]["id"]], {"ok": True}, reason="disk full on db-3")
    assert ok.outcome == "decided"
    clock.advance(timedelta(minutes=5))
    second = svc.start_execution(BOB, "prod.payments", "deploy", {"service": "ledger"})
    clock.advance(timedelta(minutes=1))
    svc.deny(ALICE, [second["requests"][0]["id"]], reason="not during the freeze")
    with svc.db.write() as tx:  # many events fast: one transaction
        for i in range(extra_events):
            clock.advance(timedelta(seconds=1))
            append_event(tx, at=svc.engine.now(), actor="bob", action="kv.set", namespace="ops.bulk",
                         data={"key": f"key{i}"})
    return svc, clock


class HistoryApp(App):
    """A minimal host: what SignoffApp gives its views (backend, clock), and nothing else."""

    def __init__(self, backend, clock) -> None:
        super().__init__()
        self.backend = backend
        self.clock = clock
        self.animation_level = "none"

    def compose(self) -> ComposeResult:
        yield HistoryView()

    def on_mount(self) -> None:
        self.query_one("#history-query", Input).cursor_blink = False
        self.query_one(HistoryView).on_show_view()


async def settle(pilot, rounds: int = 4) -> None:
    for _ in range(rounds):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()


def actors(view: HistoryView) -> list[str]:
    return [e["actor"] for e in view.events]


async def search(pilot, query: str) -> None:
    await pilot.press("slash")
    field = pilot.app.query_one("#history-query", Input)
    field.value = ""
    await pilot.press(*query) if query else None
    await pilot.press("enter")
    await settle(pilot)


async def test_lists_newest_first_and_searches_by_actor(tmp_path):
    svc, clock = build(tmp_path)
    app = HistoryApp(LocalBackend(svc, identity=ALICE), clock)
    async with app.run_test(size=(140, 40)) as pilot:
        await settle(pilot)
        view = app.query_one(HistoryView)
        seqs = [e["seq"] for e in view.events]
        assert seqs == sorted(seqs, reverse=True) and len(seqs) == svc.last_change()
        assert app.query_one("#history-table", DataTable).row_count == len(seqs)

        await search(pilot, "actor:alice")
        assert actors(view) == ["alice", "alice"]
        assert [e["action"] for e in view.events] == ["request.denied", "request.approved"]
        assert app.query_one("#history-table", DataTable).row_count == 2
        assert app.focused is app.query_one("#history-table", DataTable)


async def test_keys_and_reload_when_shown_again(tmp_path):
    svc, clock = build(tmp_path)
    app = HistoryApp(LocalBackend(svc, identity=ALICE), clock)
    async with app.run_test(size=(140, 40)) as pilot:
        await settle(pilot)
        view = app.query_one(HistoryView)
        table = app.query_one("#history-table", DataTable)
        await pilot.press("s")
        assert app.focused is app.query_one("#history-query", Input)
        await pilot.press("escape")
        assert app.focused is table
        await pilot.press("G")
        assert table.cursor_row == len(view.events) - 1
        await pilot.press("k")
        assert table.cursor_row == len(view.events) - 2
        await pilot.press("g")
        assert table.cursor_row == 0
        before = len(view.events)
        view.on_show_view()  # nothing happened meanwhile: the list stays as it is
        await settle(pilot)
        assert len(view.events) == before
        svc.kv_set(BOB, "ops", "colour", "blue")  # something happened while the view was hidden
        view.on_show_view()
        await settle(pilot)
        assert len(view.events) == before + 1 and view.events[0]["action"] == "kv.set"


async def test_free_text_finds_a_reason(tmp_path):
    svc, clock = build(tmp_path)
    app = HistoryApp(LocalBackend(svc, identity=ALICE), clock)
    async with app.run_test(size=(140, 40)) as pilot:
        await settle(pilot)
        view = app.query_one(HistoryView)
        await search(pilot, "disk")
        assert [(e["action"], e["data"]["reason"]) for e in view.events] == [("request.approved", "disk full on db-3")]
        row = app.query_one("#history-table", DataTable).get_row_at(0)
        assert "disk full on db-3" in row[-1] and row[1] == "alice"


async def test_open_event_shows_frozen_context(tmp_path):
    svc, clock = build(tmp_path)
    app = HistoryApp(LocalBackend(svc, identity=ALICE), clock)
    async with app.run_test(size=(140, 40)) as pilot:
        await settle(pilot)
        await search(pilot, "action:request.approved")
        view = app.query_one(HistoryView)
        assert len(view.events) == 1
        await pilot.press("enter")
        assert app.focused is app.query_one("#history-detail")
        text = rendered(app.query_one("#history-detail-body", Static))
        for expected in ("request.approved", "alice", "disk full on db-3", "frozen context",
                         "Deploy billing to prod", "Service: billing", "Restarts billing pods",
                         view.events[0]["hash"][:20], "prod.payments"):
            assert expected in text, expected
        assert '"service": "billing"' in text  # the frozen inputs
        await pilot.press("escape")
        assert app.focused is app.query_one("#history-table", DataTable)


async def test_paging_loads_more_when_scrolling_to_the_end(tmp_path):
    svc, clock = build(tmp_path, extra_events=230)
    total = svc.last_change()
    assert total > 2 * PAGE
    backend = LocalBackend(svc, identity=ALICE)
    calls = []
    real_history = backend.history

    def history(query, *, limit=100, before_seq=None):
        calls.append((query, limit, before_seq))
        return real_history(query, limit=limit, before_seq=before_seq)

    backend.history = history
    app = HistoryApp(backend, clock)
    async with app.run_test(size=(140, 40)) as pilot:
        await settle(pilot)
        view = app.query_one(HistoryView)
        table = app.query_one("#history-table", DataTable)
        assert len(view.events) == PAGE and calls == [("", PAGE, None)]
        table.move_cursor(row=PAGE - 20)  # walking down does not fetch until near the end
        await pilot.press("j")
        await settle(pilot)
        assert len(view.events) == PAGE
        await pilot.press("G")
        await settle(pilot)
        assert len(view.events) == 2 * PAGE
        assert calls[1] == ("", PAGE, view.events[PAGE - 1]["seq"])
        await pilot.press("G")
        await settle(pilot)
        assert len(view.events) == total and view.exhausted
        assert [e["seq"] for e in view.events] == list(range(total, 0, -1))
        assert table.row_count == total
        assert "all loaded" in rendered(app.query_one("#history-status", Static))


async def test_bad_query_shows_the_message(tmp_path):
    svc, clock = build(tmp_path)
    app = HistoryApp(LocalBackend(svc, identity=ALICE), clock)
    async with app.run_test(size=(140, 40)) as pilot:
        await settle(pilot)
        await search(pilot, "colour:blue")
        error = app.query_one("#history-error", Static)
        assert error.display and "unknown field `colour:`" in rendered(error)
        assert app.query_one(HistoryView).events == []
        await search(pilot, "actor:bob")  # a good query clears the message
        assert not error.display
        assert set(actors(app.query_one(HistoryView))) == {"bob"}


async def test_export_writes_csv_and_jsonl(tmp_path):
    svc, clock = build(tmp_path)
    app = HistoryApp(LocalBackend(svc, identity=ALICE), clock)
    expected = list(reversed(svc.history(ALICE, "actor:bob", limit=1000)))
    assert expected and len(expected) < svc.last_change()  # the query filters something out
    async with app.run_test(size=(140, 40)) as pilot:
        await settle(pilot)
        await search(pilot, "actor:bob")
        await pilot.press("e")
        dialog = app.screen
        assert isinstance(dialog, ExportScreen)
        path_input = dialog.query_one("#export-path", Input)
        assert path_input.value == "./signoff-audit-20260105-091100.csv"
        path_input.value = str(tmp_path / "out.csv")
        await pilot.press("enter")
        await settle(pilot)
        assert not isinstance(app.screen, ExportScreen)
        with open(tmp_path / "out.csv", newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        assert [int(r["seq"]) for r in rows] == [e["seq"] for e in expected]
        assert [r["action"] for r in rows] == [e["action"] for e in expected]
        assert json.loads(rows[-1]["data"]) == expected[-1]["data"]
        assert any("exported" in n.message and "out.csv" in n.message for n in app._notifications)

        await pilot.press("e")
        dialog = app.screen
        await pilot.click("#export-jsonl")
        path_input = dialog.query_one("#export-path", Input)
        assert path_input.value.endswith(".jsonl")
        path_input.value = str(tmp_path / "out.jsonl")
        await pilot.press("tab")  # from the format choice to the path
        assert app.focused is path_input
        await pilot.press("enter")
        await settle(pilot)
        lines = (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()
        assert [json.loads(line) for line in lines] == expected


async def test_export_never_overwrites_without_asking(tmp_path):
    svc, clock = build(tmp_path)
    target = tmp_path / "existing.csv"
    target.write_text("keep me\n")
    app = HistoryApp(LocalBackend(svc, identity=ALICE), clock)
    async with app.run_test(size=(140, 40)) as pilot:
        await settle(pilot)
        await pilot.press("e")
        dialog = app.screen
        dialog.query_one("#export-path", Input).value = str(target)
        await pilot.press("enter")
        await settle(pilot)
        assert app.screen is dialog and target.read_text() == "keep me\n"
        assert "already exists" in " ".join(rendered(dialog.query_one("#export-message", Static)).split())
        await pilot.press("enter")  # the second press confirms
        await settle(pilot)
        assert app.screen is not dialog
        assert target.read_text().startswith("seq,at,actor,action")
        assert len(target.read_text().splitlines()) == svc.last_change() + 1


async def test_verify_ok_then_broken_after_tampering(tmp_path):
    svc, clock = build(tmp_path)
    app = HistoryApp(LocalBackend(svc, identity=ALICE), clock)
    async with app.run_test(size=(140, 40)) as pilot:
        await settle(pilot)
        chain = app.query_one("#history-chain", Static)
        head = svc.db.query_one("SELECT hash FROM audit ORDER BY seq DESC LIMIT 1")[0]
        assert rendered(chain).strip() == f"chain verified: {svc.last_change()} events, head {head[:4]}…"
        assert not chain.has_class("-broken")

        conn = sqlite3.connect(svc.engine.db.path)
        with conn:
            conn.execute("UPDATE audit SET actor='mallory' WHERE seq=3")
        conn.close()
        await pilot.press("v")
        await settle(pilot)
        assert rendered(chain).startswith("CHAIN BROKEN at event 3: ")
        assert chain.has_class("-broken")
