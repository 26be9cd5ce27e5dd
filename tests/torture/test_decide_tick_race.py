"""The console's bulk approve and its own background tick advance executions at the same time
(issue 10): each execution must still be advanced by one of them at a time.

The console (Pilot, LocalBackend on a real SQLite file) approves 200 payment requests in one
bulk action - its decision worker continues the executions it decided - while the poll worker
ticks the engine every few milliseconds and takes the same queued executions. Before the fix
both threads shared one lease (one owner id per process): the second walked an execution the
first was sending, skipped the finished If around the approval, and failed the payment with
``outputs.single_approval is not defined`` - or, with the payments API answering, sent it twice.

Counts: 200 executions with the payments API answering. With it refusing connections, each
payment spends ~1.5 s in the HTTP client's connect retries (httpx transport, 3 retries with
backoff), so the CI run takes 18 executions (each one in flight long enough for the tick to
try it many times) and ``--long`` takes 200 (about two minutes on two cores).
"""
from __future__ import annotations

import contextlib
import time
from pathlib import Path

import pytest

from signoff.console.backend import LocalBackend
from signoff.console.config import ConsoleConfig
from signoff.console.screens.bulk import BulkResultScreen
from signoff.console.screens.confirm import ConfirmScreen
from tests.console.conftest import loaded, wait_for
from tests.torture.conftest import long_mode
from tests.torture.payment_world import OLIVIA, PaymentWorld, build, check_outcome, refusing_port, settled

COUNT = 200
REFUSED_COUNT = (18, 200)  # (CI, --long)


async def approve_all_in_console(world: PaymentWorld, tmp_path: Path, count: int) -> None:
    from signoff.console.app import SignoffApp

    backend = LocalBackend(world.service, identity=OLIVIA)
    # a poll every 10 ms: the tick (every 5th poll) runs again and again during the bulk action
    app = SignoffApp(backend, config=ConsoleConfig.load(tmp_path / "config" / "config.toml"), poll_interval=0.01)
    ticks = 0
    real_tick = backend.tick

    def counted_tick() -> None:
        nonlocal ticks
        ticks += 1
        real_tick()

    backend.tick = counted_tick  # type: ignore[method-assign]  # counts the ticks of the real backend
    async with app.run_test(size=(120, 40)) as pilot:
        await loaded(pilot)
        table = app.pending_view.table
        assert table.row_count == count
        await pilot.press("a")
        assert len(table.marked) == count
        await pilot.press("y")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        ticks_before = ticks
        await pilot.press("y")
        # a bound for liveness, not a speed: the list changes when the decision worker has
        # continued what it decided, and with the API refusing each payment spends ~1.5 s in
        # connect retries, so --long's 200 take about two minutes on two cores (a fixed 120 s
        # ran out there, the test alone on a quiet machine)
        bound = max(120.0, 3.0 * count)
        await wait_for(pilot, lambda: table.row_count == len(world.waiting), timeout=bound)
        assert not isinstance(app.screen, BulkResultScreen)
        await wait_for(pilot, lambda: settled(world.service.engine), timeout=bound)
        assert ticks > ticks_before, "the tick never ran while the console decided"


@pytest.mark.parametrize("api", ["refused", "answering"])
def test_console_bulk_approve_while_the_tick_runs(tmp_path: Path, http_listener, api: str,
                                                 request: pytest.FixtureRequest) -> None:
    import asyncio

    if api == "answering":
        http_listener.respond("/payments", 201, {"status": "queued"})
        world = build(tmp_path, COUNT, http_listener.url)
        asyncio.run(approve_all_in_console(world, tmp_path, COUNT))
        check_outcome(world, answered=True, listener=http_listener)
    else:
        count = REFUSED_COUNT[long_mode(request.config)]
        with refusing_port() as url:
            world = build(tmp_path, count, url)
            asyncio.run(approve_all_in_console(world, tmp_path, count))
            check_outcome(world, answered=False)
    world.service.engine.close()


@pytest.mark.parametrize("api", ["refused", "answering"])
def test_server_bulk_approve_while_its_runner_works(tmp_path: Path, http_listener, api: str,
                                                   request: pytest.FixtureRequest) -> None:
    """The same through `signoff serve`: HTTP bulk approves in slices of 50 while the
    server's background runner continues the executions approved so far."""
    import httpx

    from signoff.console.settings import sample_flows_dir
    from tests.torture.server_support import Serve, issue_token

    with contextlib.ExitStack() as stack:
        if api == "answering":
            http_listener.respond("/payments", 201, {"status": "queued"})
            count, url = COUNT, http_listener.url
        else:
            count, url = REFUSED_COUNT[long_mode(request.config)], stack.enter_context(refusing_port())
        world = build(tmp_path, count, url)
        token = issue_token(world.data_dir, "olivia")["token"]
        server = Serve(world.data_dir, sample_flows_dir(), tmp_path, policy=world.policy_path).start()
        stack.callback(server.stop)
        ids = list(world.requests)
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=120) as client:
            for start in range(0, count, 50):
                r = client.post("/api/v1/approvals/bulk", json={"ids": ids[start:start + 50], "verdict": "approve"})
                assert r.status_code == 200, r.text
                assert all(o["outcome"] == "decided" for o in r.json()["outcomes"]), r.text
        deadline = time.monotonic() + 60 + 2 * count  # one runner; a refused payment takes ~1.5 s
        while not settled(world.service.engine):
            assert time.monotonic() < deadline, "the server's runner did not finish in time"
            time.sleep(0.05)
        check_outcome(world, answered=api == "answering", listener=http_listener if api == "answering" else None)
        assert "Traceback" not in server.log
    world.service.engine.close()
