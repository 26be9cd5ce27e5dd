"""Pilot tests of the console in remote mode: a real `signoff serve` subprocess on 127.0.0.1
(temp data dir, the console test flows, a small policy), tokens from `signoff token issue`,
the console on `RemoteBackend`.

The journeys of test_console.py that matter most over the network (approve with a form, bulk
approve with marks, live updates), then the connection itself: the server is killed mid-session
(banner), a request is decided while it is down, the server comes back on the same port and
data dir (banner gone, the decided request gone from the list), and a revoked token.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from signoff.console.config import ConsoleConfig
from signoff.console.screens.confirm import ConfirmScreen
from tests.console.conftest import FLOWS, loaded, wait_for
from tests.console.screen_text import screen_text
from tests.contract.server import ServerProcess, run_cli
from tests.support import write_flows

pytestmark = pytest.mark.anyio

SIZE = (140, 40)
PAYEES = ["Acme GmbH", "Globex Ltd", "Initech"]
POLICY = """\
fourEyes: true
bindings:
  - role: admin
    subjects: [user:olivia, user:bob, user:dana]
    namespaces: ["*"]
"""


class Remote:
    """One server and the people using it: olivia (at the console), dana (starts), bob (decides)."""

    def __init__(self, root: Path) -> None:
        from signoff.console.remote import RemoteBackend

        self.flows = write_flows(root / "flows", FLOWS)
        self.policy = root / "policy.yaml"
        self.policy.write_text(POLICY)
        self.server = ServerProcess(root / "server", policy=self.policy, flows=self.flows)
        self.tokens = {name: self.server.issue_token(name) for name in ("olivia", "dana", "bob")}
        self.server.start()
        self.dana = RemoteBackend(self.server.url, self.tokens["dana"], timeout=30.0)
        self.bob = RemoteBackend(self.server.url, self.tokens["bob"], timeout=30.0)
        self.backends = [self.dana, self.bob]

    def console_backend(self):
        from signoff.console.remote import RemoteBackend

        # the token is read again from here on ctrl+r, as the CLI reads the keyring again
        backend = RemoteBackend(self.server.url, self.tokens["olivia"], timeout=5.0,
                                token_source=lambda: self.tokens["olivia"])
        self.backends.append(backend)
        return backend

    def start(self, flow: str, inputs: dict[str, Any]) -> str:
        """Start ``flow`` as dana; the id of the approval request it waits on."""
        ns = "acme.finance" if flow == "payment" else "acme.platform"
        execution = self.dana.start_execution(ns, flow, inputs)
        end = time.monotonic() + 20
        while time.monotonic() < end:
            current = self.bob.get_execution(execution["id"])
            pending = [r["id"] for r in current.get("requests") or [] if r["state"] == "PENDING"]
            if pending:
                return pending[0]
            time.sleep(0.05)
        raise AssertionError(f"{flow}: no approval request within 20s ({current['state']})")

    def seed(self) -> list[str]:
        ids = [self.start("payment", {"amount": 100 * (i + 1), "payee": payee}) for i, payee in enumerate(PAYEES)]
        ids += [self.start("deploy", {"service": f"svc-{i + 1}"}) for i in range(2)]
        return ids

    def state(self, request_id: str) -> str:
        return self.bob.get_request(request_id)["state"]

    def close(self) -> None:
        for backend in self.backends:
            backend.close()
        self.server.stop()


@pytest.fixture
def remote(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SIGNOFF_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.delenv("NO_COLOR", raising=False)
    world = Remote(tmp_path)
    try:
        world.ids = world.seed()
        yield world
    finally:
        world.close()


def console(remote: Remote, **kwargs: Any):
    from signoff.console.app import SignoffApp

    kwargs.setdefault("config", ConsoleConfig(path=None))
    return SignoffApp(remote.console_backend(), **kwargs)


def table(app):
    return app.pending_view.table


async def type_text(pilot, text: str) -> None:
    for ch in text:
        await pilot.press(ch if ch != " " else "space")


def notices(app) -> list[str]:
    return [n.message for n in app._notifications]


async def test_status_bar_shows_identity_and_server(remote):
    app = console(remote)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        assert set(table(app).all_ids) == set(remote.ids)
        assert app.status_bar.identity == "olivia"
        assert app.status_bar.location == remote.server.url
        assert f"olivia @ {remote.server.url}" in screen_text(app)
        assert not app.connection_banner.shown


async def test_approve_one_with_form_remote(remote):
    app = console(remote)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        t = table(app)
        await pilot.press("slash")
        await type_text(pilot, "globex")
        await pilot.press("enter")
        await wait_for(pilot, lambda: t.visible_count == 1)
        target = t.highlighted_id
        await pilot.press("enter")  # the form
        from signoff.console.screens.form_screen import FormScreen

        await wait_for(pilot, lambda: isinstance(app.screen, FormScreen), timeout=10)
        form = app.screen
        await type_text(pilot, "bad")
        await pilot.press("ctrl+s")  # validated by the server: refused
        await wait_for(pilot, lambda: "ticket" in (form._last.errors or {}) if form._last else False, timeout=10)
        assert app.screen is form
        await pilot.press("backspace", "backspace", "backspace")
        await type_text(pilot, "T-42")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: target not in t.all_ids, timeout=10)
        request = remote.bob.get_request(target)
        assert request["state"] == "APPROVED"
        assert request["decisions"][0]["inputs"] == {"ticket": "T-42"}
        assert request["decisions"][0]["by"] == "olivia"


async def test_bulk_approve_with_marks_remote(remote):
    app = console(remote)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        t = table(app)
        await pilot.press("slash")
        await type_text(pilot, "payment")
        await pilot.press("enter", "a")  # mark the three payments
        marked = set(t.marked)
        assert len(marked) == 3 and {t.row(i).flow for i in marked} == {"payment"}
        await pilot.press("y")
        from signoff.console.screens.form_screen import FormScreen

        await wait_for(pilot, lambda: isinstance(app.screen, FormScreen), timeout=10)
        await type_text(pilot, "T-7")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), timeout=10)
        assert "Approve 3 requests in 1 flow" in screen_text(app)
        await pilot.press("enter")
        await wait_for(pilot, lambda: not (marked & set(t.all_ids)), timeout=10)
        assert not t.marked
        for request_id in marked:
            request = remote.bob.get_request(request_id)
            assert request["state"] == "APPROVED"
            assert request["decisions"][0]["inputs"] == {"ticket": "T-7"}
        await pilot.press("escape")
        assert t.row_count == 2


async def test_request_decided_elsewhere_disappears_live_remote(remote):
    app = console(remote, poll_interval=0.2)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        t = table(app)
        target = t.highlighted_id
        [outcome] = remote.bob.decide([target], "deny", reason="not today")
        assert outcome.ok
        await wait_for(pilot, lambda: target not in t.all_ids, timeout=10)
        assert t.row_count == 4
        assert "denied by bob" in app.status_bar.notice
        # and a new request appears live
        late = remote.start("deploy", {"service": "late"})
        await wait_for(pilot, lambda: late in t.all_ids, timeout=10)
        assert t.row_count == 5


async def test_server_killed_mid_session_then_back(remote):
    from signoff.engine.core import Engine
    from signoff.engine.identity import Identity
    from signoff.engine.policy import load_policy
    from signoff.engine.service import ApprovalService

    app = console(remote, poll_interval=0.2)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        t = table(app)
        banner = app.connection_banner
        await wait_for(pilot, lambda: app.pending_view.last_seq > 0)
        seen = app.pending_view.last_seq
        remote.server.kill()  # SIGKILL: no goodbye
        await wait_for(pilot, lambda: banner.shown, timeout=20)
        assert f"Connection to {remote.server.url} lost" in banner.text
        assert f"last change seen: seq {seen}" in banner.text
        await wait_for(pilot, lambda: "reconnecting…" in screen_text(app))  # on screen, under the status bar
        assert app.status_bar.connection == "offline"
        assert t.row_count == 5  # the last known list stays on screen

        # a decision attempted now fails with a clear notice, nothing is sent
        await pilot.press("y")
        await pilot.pause(0.1)
        assert not isinstance(app.screen, ConfirmScreen)
        await wait_for(pilot, lambda: any("Not connected" in m for m in notices(app)))  # notify() posts a message

        # while the server is down, another process decides one of the requests on its data dir
        decided = t.all_ids[-1]
        engine = Engine(remote.server.data_dir, [remote.flows], policy=load_policy(remote.policy))
        try:
            [outcome] = ApprovalService(engine).deny(Identity("bob", (), source="token"), [decided],
                                                    reason="decided while the server was down")
            assert outcome.ok
        finally:
            engine.close()
        assert decided in t.all_ids

        remote.server.start()  # same port, same data dir
        await wait_for(pilot, lambda: not banner.shown, timeout=40)
        assert app.status_bar.connection == ""
        await wait_for(pilot, lambda: any("Reconnected" in m for m in notices(app)))  # notify() posts a message
        await wait_for(pilot, lambda: decided not in t.all_ids, timeout=10)
        assert t.row_count == 4
        await wait_for(pilot, lambda: "Connection to" not in screen_text(app))

        # and decisions work again
        target = t.highlighted_id
        remote.bob.decide([target], "deny", reason="after the restart")
        await wait_for(pilot, lambda: target not in t.all_ids, timeout=10)


async def test_revoked_token_shows_login_banner(remote):
    app = console(remote, poll_interval=0.2)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        listed = run_cli("token", "list", "--user", "olivia", "--json", *remote.server.common(),
                         env=remote.server.env)
        assert listed.returncode == 0, listed.stderr
        [token] = json.loads(listed.stdout)
        revoked = run_cli("token", "revoke", token["id"], *remote.server.common(), env=remote.server.env)
        assert revoked.returncode == 0, revoked.stderr
        banner = app.connection_banner
        await wait_for(pilot, lambda: banner.shown, timeout=20)
        assert f"signoff login {remote.server.url}" in banner.text
        assert app.pending_view.auth_failed
        assert app.status_bar.connection == "signed out"
        await pilot.press("n")
        await pilot.pause(0.1)
        await wait_for(pilot, lambda: any("Not signed in" in m for m in notices(app)))  # notify() posts a message

        # ctrl+r with the same refused token: still signed out
        await pilot.press("ctrl+r")
        await pilot.pause(1.0)
        assert banner.shown and app.connection_problem == "auth"
        # `signoff login` with a new token, then ctrl+r: back, and the banner goes
        remote.tokens["olivia"] = remote.server.issue_token("olivia")
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: not banner.shown, timeout=20)
        assert app.connection_problem is None and not app.pending_view.auth_failed
        assert app.status_bar.connection == ""


async def test_identity_is_asked_when_the_backend_did_not_check(remote):
    """A remote backend made without checking the token shows "?" until the app's identity
    worker asked the server; the worker reports with a typed message."""
    from signoff.console.app import SignoffApp
    from signoff.console.remote import RemoteBackend

    backend = RemoteBackend(remote.server.url, remote.tokens["olivia"], timeout=5.0, check=False)
    remote.backends.append(backend)
    assert backend.identity == "?"
    seen: list[object] = []
    app = SignoffApp(backend, config=ConsoleConfig(path=None))
    async with app.run_test(size=SIZE, message_hook=seen.append) as pilot:
        await loaded(pilot)
        await wait_for(pilot, lambda: app.status_bar.identity == "olivia")
        assert [m.identity for m in seen if isinstance(m, SignoffApp.IdentityKnown)][-1] == "olivia"
