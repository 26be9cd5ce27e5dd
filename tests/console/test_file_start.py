"""Starting a flow with a FILE input from the console's flows view, on the embedded engine and
on a real `signoff serve` (engine.inputs.uploads): the form checks the local path as you type,
and on a server the file reaches the engine as uploaded content, never as a path it reads."""
from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from textual.widgets import Input

from signoff.console.backend import LocalBackend
from signoff.console.screens.flows import FlowsView
from signoff.engine.clock import FakeClock
from tests.console.conftest import wait_for
from tests.console.test_flows_view import FlowsApp
from tests.contract.server import ServerProcess
from tests.support import ALICE, make_service, write_flows

pytestmark = pytest.mark.anyio

FLOWS = {
    "upload.yaml": """
        id: upload
        namespace: acme.ops
        inputs:
          - id: doc
            type: FILE
        tasks:
          - id: review
            type: io.kestra.plugin.core.flow.Pause
    """,
}


@pytest.fixture(params=["embedded", "server"])
def started(request, tmp_path):
    """(the console's backend, a function giving the executions, the engine's data dir)."""
    if request.param == "embedded":
        svc = make_service(tmp_path, FLOWS, clock=FakeClock("2026-01-05T09:00:00Z"))
        yield LocalBackend(svc, identity=ALICE), svc.engine.data_dir
        return
    from signoff.console.remote import RemoteBackend

    server = ServerProcess(tmp_path / "server", policy=None, flows=write_flows(tmp_path / "flows", FLOWS))
    token = server.issue_token("erin")
    server.start()
    backend = RemoteBackend(server.url, token, timeout=30.0)
    try:
        yield backend, server.data_dir
    finally:
        backend.close()
        server.stop()


async def test_a_file_input_is_checked_then_started(started, tmp_path: Path) -> None:
    from signoff.console.screens.form_screen import FormScreen

    backend, data_dir = started
    report = tmp_path / "change-list.csv"
    report.write_bytes(b"host,action\nweb-3,reboot\n")
    app = FlowsApp(backend, FakeClock("2026-01-05T09:00:00Z"))
    async with app.run_test(size=(120, 40)) as pilot:
        view = app.query_one(FlowsView)
        await wait_for(pilot, lambda: len(view.flows) == 1, timeout=10)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, FormScreen))
        form = app.screen
        path_box = form.query_one("#field-0 Input", Input)
        path_box.value = str(tmp_path / "missing.csv")
        await wait_for(pilot, lambda: "existing file" in form.resume_form.error_text("doc"), timeout=10)
        await pilot.press("ctrl+s")
        await pilot.pause(0.2)
        assert app.screen is form and backend.list_executions() == []  # refused, nothing started
        path_box.value = str(report)
        await wait_for(pilot, lambda: form.resume_form.error_text("doc") == "", timeout=10)
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: not isinstance(app.screen, FormScreen), timeout=10)
        await wait_for(pilot, lambda: view.last_execution is not None, timeout=10)
    [execution] = backend.list_executions()
    stored = Path(unquote(urlsplit(execution["inputs"]["doc"]).path))
    assert stored.is_relative_to(Path(data_dir).resolve()) and stored.name == "change-list.csv"
    assert stored.read_bytes() == b"host,action\nweb-3,reboot\n"
