"""The flows view on a real engine: the list, the detail pane, starting with and without inputs."""
from __future__ import annotations

import pytest
from textual.app import App, ComposeResult
from textual.widgets import DataTable, Static

from signoff.console.backend import LocalBackend
from signoff.console.screens.flows import FlowsView
from signoff.engine.clock import FakeClock
from signoff.engine.ids import SequentialIds
from tests.console.conftest import wait_for
from tests.console.screen_text import rendered
from tests.support import ALICE, make_service

pytestmark = pytest.mark.anyio

FLOWS = {
    "payment.yaml": """
        id: payment
        namespace: acme.finance
        description: |
          Pay a supplier.
          Finance reviews every payment.
        labels:
          team: finance
        inputs:
          - id: amount
            type: INT
            description: Amount in EUR
            min: 1
          - id: payee
            type: STRING
            defaults: Acme GmbH
        tasks:
          - id: review
            type: io.kestra.plugin.core.flow.Pause
            context:
              summary: "Pay {{ inputs.amount }} EUR to {{ inputs.payee }}"
          - id: done
            type: io.kestra.plugin.core.log.Log
            message: paid
    """,
    "ping.yaml": """
        id: ping
        namespace: acme.platform
        description: Say hello
        tasks:
          - id: hello
            type: io.kestra.plugin.core.log.Log
            message: hello
    """,
}


class FlowsApp(App):
    """A minimal host: what SignoffApp gives its views (backend, clock), and nothing else."""

    def __init__(self, backend, clock) -> None:
        super().__init__()
        self.backend = backend
        self.clock = clock
        self.animation_level = "none"

    def compose(self) -> ComposeResult:
        yield FlowsView()

    def on_mount(self) -> None:
        self.query_one(FlowsView).on_show_view()


def build(tmp_path):
    clock = FakeClock("2026-01-05T09:00:00Z")
    svc = make_service(tmp_path, FLOWS, clock=clock)
    svc.engine.ids = SequentialIds()
    return svc, FlowsApp(LocalBackend(svc, identity=ALICE), clock)


async def test_lists_flows_with_details(tmp_path):
    svc, app = build(tmp_path)
    async with app.run_test(size=(140, 40)) as pilot:
        view = app.query_one(FlowsView)
        await wait_for(pilot, lambda: len(view.flows) == 2)
        table = app.query_one("#flows-table", DataTable)
        assert [table.get_row_at(i)[:3] for i in range(table.row_count)] == [
            ["acme.finance", "payment", "2"], ["acme.platform", "ping", "0"]]
        assert table.get_row_at(0)[3] == "Pay a supplier."
        detail = rendered(app.query_one("#flows-detail-body", Static))
        for expected in ("acme.finance.payment", "Finance reviews every payment.", "team", "finance",
                         "amount", "INT", "payee", "Acme GmbH", "review, done"):
            assert expected in detail, expected
        await pilot.press("j")
        await pilot.pause()
        detail = rendered(app.query_one("#flows-detail-body", Static))
        assert "acme.platform.ping" in detail and "starts without a form" in detail


async def test_start_flow_with_inputs_through_the_form(tmp_path):
    from signoff.console.screens.form_screen import FormScreen

    svc, app = build(tmp_path)
    async with app.run_test(size=(140, 40)) as pilot:
        view = app.query_one(FlowsView)
        await wait_for(pilot, lambda: len(view.flows) == 2)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, FormScreen))
        form = app.screen
        assert form.submit_label == "Start"
        await pilot.press("0")  # amount 0 is below min: 1
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: bool(form.resume_form.error_text("amount")))
        await pilot.pause(0.1)
        assert app.screen is form  # refused
        assert svc.list_executions(ALICE) == []
        await pilot.press("backspace", "4", "2")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: not isinstance(app.screen, FormScreen))
        await wait_for(pilot, lambda: view.last_execution is not None)
        [execution] = svc.list_executions(ALICE)
        assert (execution["flow_id"], execution["inputs"], execution["state"]) == (
            "payment", {"amount": 42, "payee": "Acme GmbH"}, "PAUSED")
        [request] = svc.get_execution(ALICE, execution["id"])["requests"]
        result = rendered(app.query_one("#flows-result", Static))
        assert execution["id"] in result and "PAUSED" in result and request["id"] in result
        assert any(request["id"] in n.message for n in app._notifications)


async def test_start_flow_without_inputs_asks_first(tmp_path):
    from signoff.console.screens.confirm import ConfirmScreen

    svc, app = build(tmp_path)
    async with app.run_test(size=(140, 40)) as pilot:
        view = app.query_one(FlowsView)
        await wait_for(pilot, lambda: len(view.flows) == 2)
        await pilot.press("G", "r")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("n")  # changed my mind
        await wait_for(pilot, lambda: not isinstance(app.screen, ConfirmScreen))
        assert svc.list_executions(ALICE) == []
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_for(pilot, lambda: view.last_execution is not None)
        [execution] = svc.list_executions(ALICE)
        assert (execution["flow_id"], execution["state"]) == ("ping", "SUCCESS")
        assert app.query_one("#flows-result", Static).has_class("-ok")


async def test_start_errors_are_shown_not_raised(tmp_path):
    svc, app = build(tmp_path)
    async with app.run_test(size=(140, 40)) as pilot:
        view = app.query_one(FlowsView)
        await wait_for(pilot, lambda: len(view.flows) == 2)
        view.start("acme.finance", "payment", {"amount": "lots"})  # InvalidInputs from the engine
        await wait_for(pilot, lambda: not view._starting)
        result = app.query_one("#flows-result", Static)
        assert result.has_class("-error") and "invalid inputs: amount" in rendered(result)
        view.start("acme.finance", "nope", {})  # an unknown flow
        await wait_for(pilot, lambda: not view._starting)
        assert result.has_class("-error") and "could not start acme.finance.nope" in rendered(result)
        assert svc.list_executions(ALICE) == []
