"""The Executions and Insights views, driven by Pilot on a real engine: failed executions
first, task runs and logs of the highlighted one, `r` restart (the approval is not asked
again), `p` replay from a task, the state filter, the Insights numbers and chart; plus
snapshots (120x36 and 80x24 under NO_COLOR)."""
from __future__ import annotations

import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

from signoff.console.config import ConsoleConfig
from signoff.console.screens.confirm import ConfirmScreen
from tests.console.conftest import ME, make_env
from tests.console.screen_text import screen_text

FLAKY = """
id: flaky
namespace: acme.finance
inputs:
  - id: url
    type: STRING
tasks:
  - id: review
    type: io.kestra.plugin.core.flow.Approval
    context:
      summary: "Send the payment file"
  - id: send
    type: io.kestra.plugin.core.http.Request
    uri: "{{ inputs.url }}"
    method: POST
  - id: done
    type: io.kestra.plugin.core.log.Log
    message: sent
"""


def build(tmp_path: Path, url: str):
    env = make_env(tmp_path, payments=2, deploys=1)
    (tmp_path / "flows" / "flaky.yaml").write_text(textwrap.dedent(FLAKY).lstrip())
    env.service.engine.flows.reload()
    failed = env.start("flaky", {"url": url}, namespace="acme.finance")
    env.clock.advance(timedelta(minutes=30))
    env.service.approve(ME, [failed["requests"][0]["id"]])
    # one more decided payment so the insights have a decision time
    payment = env.pending()[0]
    env.clock.advance(timedelta(minutes=12))
    env.service.approve(ME, [payment["id"]], inputs={"ticket": "T-1"})
    return env, failed["id"]


async def wait_for(pilot, condition, timeout: float = 10.0) -> None:
    waited = 0.0

    def met() -> bool:
        try:
            return bool(condition())
        except Exception:  # noqa: BLE001 - not composed yet
            return False

    while not met():
        await pilot.pause(0.05)
        waited += 0.05
        if waited > timeout:
            raise AssertionError("condition not reached")
    await pilot.pause()


def _app(env):
    app = env.app(config=ConsoleConfig(path=None), poll_interval=0.2)
    app.animation_level = "none"
    return app


def _view(app, name: str):
    return app.main_screen.query_one(f"#{name}")


@pytest.mark.anyio
async def test_executions_view_restart_and_replay(tmp_path: Path, http_listener) -> None:
    answers = iter([503])
    http_listener.respond("/pay", lambda req: (next(answers, 200), "ok"))
    env, failed_id = build(tmp_path, f"{http_listener.url}/pay")
    assert env.service.get_execution(ME, failed_id)["state"] == "FAILED"
    app = _app(env)
    async with app.run_test(size=(140, 40)) as pilot:
        await wait_for(pilot, lambda: app.pending_view.loaded)
        await pilot.press("4")
        await wait_for(pilot, lambda: app.current_view == "executions" and _view(app, "executions").executions)
        view = _view(app, "executions")
        await wait_for(pilot, lambda: view.detail is not None)
        assert view.executions[0]["id"] == failed_id  # failed first, though not the newest
        assert [r["path"] for r in view.detail["task_runs"]] == ["review", "send"]
        text = screen_text(app)
        assert "HTTP 503" in text and "FAILED" in text and "send" in text

        # r: restart after a confirmation; the approval is not asked again
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_for(pilot, lambda: env.service.get_execution(ME, failed_id)["state"] == "SUCCESS")
        restarted = env.service.get_execution(ME, failed_id)
        assert len(restarted["requests"]) == 1 and len(http_listener.requests_to("/pay")) == 2
        await wait_for(pilot, lambda: "restart of" in screen_text(app))

        # the filter starts at FAILED after "all"; SUCCESS shows the restarted one
        await pilot.press("f")
        await wait_for(pilot, lambda: view.state_filter == "FAILED")
        await wait_for(pilot, lambda: all(e["state"] == "FAILED" for e in view.executions))
        for _ in range(4):
            await pilot.press("f")
        await wait_for(pilot, lambda: view.state_filter == "SUCCESS"
                       and failed_id in [e["id"] for e in view.executions])
        assert all(e["state"] == "SUCCESS" for e in view.executions)
        await pilot.press("g")
        for _ in range([e["id"] for e in view.executions].index(failed_id)):
            await pilot.press("j")
        await wait_for(pilot, lambda: view.detail is not None and view.detail["id"] == failed_id)

        # enter: into the task runs; p on `send` replays from it (the decision is copied)
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.screen.focused is view.tasks)
        await pilot.press("j")
        await pilot.pause()
        await pilot.press("p")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert "from task send" in screen_text(app)
        await pilot.press("y")
        await wait_for(pilot, lambda: len(http_listener.requests_to("/pay")) == 3)
        replays = [e for e in env.service.list_executions(ME) if e.get("original_id") == failed_id]
        assert len(replays) == 1
        replay = env.service.get_execution(ME, replays[0]["id"])
        assert replay["state"] == "SUCCESS" and replay["requests"] == []
        assert replay["started_by"] == ME.name

        # r on a successful execution: refused with the reason, nothing happens
        await pilot.press("escape")
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_for(pilot, lambda: "only FAILED or KILLED" in screen_text(app))


@pytest.mark.anyio
async def test_insights_view_shows_the_stats(tmp_path: Path, http_listener) -> None:
    env, _ = build(tmp_path, f"{http_listener.url}/pay")
    app = _app(env)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_for(pilot, lambda: app.pending_view.loaded)
        await pilot.press("5")
        view = None
        await wait_for(pilot, lambda: app.current_view == "insights")
        view = _view(app, "insights")
        await wait_for(pilot, lambda: view.stats is not None)
        stats = env.service.stats(ME, since="30d")
        by_flow = {f["flow_id"]: f for f in stats["flows"]}
        shown = {f["flow_id"]: f for f in view.stats["flows"]}
        assert set(shown) == set(by_flow)
        for flow, item in by_flow.items():
            assert (shown[flow]["created"], shown[flow]["median_decision_s"]) == (item["created"],
                                                                                 item["median_decision_s"])
        from signoff.engine.durations import human_seconds

        text = screen_text(app)
        median = human_seconds(by_flow["payment"]["median_decision_s"])
        assert "acme.finance.payment" in text and median != "-" and median in text
        assert f"backlog {view.stats['totals']['pending']}" in text
        assert "decisions per day" in text
        await pilot.press("w")
        await wait_for(pilot, lambda: view.window == "7d" and "last 7d" in screen_text(app))


def _snapshot_app(tmp_path: Path):
    env, _ = build(tmp_path, "http://127.0.0.1:9/unreachable")
    env.backend.location = "embedded · /srv/signoff/data"
    app = _app(env)
    app.CSS = app.CSS + "\nInput { }\n"
    return env, app


@pytest.mark.parametrize("view, size", [("executions", (120, 36)), ("insights", (120, 36)),
                                        ("insights", (80, 24))])
def test_snapshot_workflow_views(tmp_path: Path, snap_compare, monkeypatch, view: str, size: tuple[int, int]) -> None:
    if size == (80, 24):
        monkeypatch.setenv("NO_COLOR", "1")
    else:
        monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("SIGNOFF_CONFIG_DIR", str(tmp_path / "config"))
    env, app = _snapshot_app(tmp_path)

    async def run_before(pilot) -> None:
        await wait_for(pilot, lambda: app.pending_view.loaded)
        await pilot.press("4" if view == "executions" else "5")
        await wait_for(pilot, lambda: app.current_view == view)
        target = _view(app, view)
        if view == "executions":
            await wait_for(pilot, lambda: target.detail is not None and target.tasks.row_count > 0)
        else:
            await wait_for(pilot, lambda: target.stats is not None)
        for _ in range(3):  # (both views)  # the chart paints after the tables: let every pending refresh land
            await pilot.pause(0.3)

    try:
        assert snap_compare(app, terminal_size=size, run_before=run_before)
    finally:
        env.service.engine.close()
