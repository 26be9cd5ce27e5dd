"""`signoff open LINK`, driven with Pilot: the console opens with the linked request
highlighted and its context shown, for both link forms (signoff://request/ID and
https://HOST/r/ID), for a link naming the execution (what appLink() renders), for a request
no longer pending (shown with a notice), on the embedded engine and against a real server."""
from __future__ import annotations

from typing import Any

import pytest

from signoff.console.open_link import resolve_request
from signoff.engine.links import request_link
from tests.console.conftest import loaded, wait_for
from tests.console.screen_text import screen_text
from tests.console.test_remote_console import console as remote_console
from tests.console.test_remote_console import remote  # noqa: F401 - the fixture
from tests.support import ALICE

pytestmark = pytest.mark.anyio

SIZE = (140, 40)


def notices(app: Any) -> list[str]:
    return [n.message for n in app._notifications]


async def open_on(pilot: Any, request_id: str) -> None:
    app = pilot.app
    await loaded(pilot)
    await wait_for(pilot, lambda: app.pending_view.table.highlighted_id == request_id)
    await wait_for(pilot, lambda: app.pending_view.context.request_id == request_id)


@pytest.mark.parametrize("public_url", [None, "https://signoff.example.com"], ids=["signoff-scheme", "https"])
async def test_open_link_highlights_the_request_with_its_context(env, public_url):
    ids = env.pending_ids()
    target = ids[3]  # not the first row: the cursor must move there
    link = request_link(public_url, target)
    app = env.app(open_request=resolve_request(env.backend, link))
    async with app.run_test(size=SIZE) as pilot:
        await open_on(pilot, target)
        request = env.service.get_request(ALICE, target)
        assert request["summary"] in screen_text(app)
        assert app.pending_view.table.highlighted_id != ids[0]


async def test_open_link_naming_the_execution_leads_to_its_pending_request(env):
    target = env.pending()[2]
    link = request_link("https://signoff.example.com", target["execution_id"])
    app = env.app(open_request=resolve_request(env.backend, link))
    async with app.run_test(size=SIZE) as pilot:
        await open_on(pilot, target["id"])


async def test_open_link_to_a_decided_request_says_so(env):
    target = [r["id"] for r in env.pending() if r["flow_id"] == "deploy"][0]
    [outcome] = env.other_service().approve(ALICE, [target], reason="done elsewhere")
    assert outcome.ok, outcome
    app = env.app(open_request=resolve_request(env.backend, f"signoff://request/{target}"))
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        await wait_for(pilot, lambda: app.pending_view.context.request_id == target)
        await wait_for(pilot, lambda: any("no longer pending" in str(n) for n in notices(app)))
        assert any(f"{target} is no longer pending: APPROVED by alice" in n for n in notices(app)), notices(app)
        assert target not in app.pending_view.table.all_ids
        await pilot.pause(0.5)  # the first row's context does not replace the linked request
        assert app.pending_view.context.request_id == target
        await pilot.press("down")  # moving the cursor shows the rows' context again
        t = app.pending_view.table
        await wait_for(pilot, lambda: app.pending_view.context.request_id == t.highlighted_id)


async def test_open_link_remote(remote):  # noqa: F811 - the fixture
    target = remote.ids[2]
    backend = remote.console_backend()
    link = f"{remote.server.url}/r/{target}"
    app = remote_console(remote, open_request=resolve_request(backend, link))
    async with app.run_test(size=SIZE) as pilot:
        await open_on(pilot, target)
