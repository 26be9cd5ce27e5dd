"""Pilot journeys of the console on the local server's Unix socket (issue 12): a real
`signoff serve --socket` subprocess, the console on `RemoteBackend.local` as this process's
account, and two other people - dana (starts) and bob (decides) - as real OS accounts whose
clients reach the socket through relays running as them (tests/socket_world.py), so the
server tells all three apart by the kernel's word alone.

Journeys: the status bar, approve with a form, bulk approve with marks, live updates, and the
server killed mid-session then started again on the same socket (the stale socket file is
replaced; the console reconnects by itself).
"""
from __future__ import annotations

import os
import pwd
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from signoff.console.config import ConsoleConfig
from signoff.console.screens.confirm import ConfirmScreen
from tests.accounts import Accounts, interpreter_paths, reachable, root_available
from tests.console.conftest import FLOWS, loaded, wait_for
from tests.console.screen_text import screen_text
from tests.socket_server import SocketServer
from tests.socket_world import Relay
from tests.support import write_flows

pytestmark = pytest.mark.anyio

SIZE = (140, 40)
PAYEES = ["Acme GmbH", "Globex Ltd", "Initech"]
ME = pwd.getpwuid(os.getuid()).pw_name


@pytest.fixture(scope="module")
def people():
    """dana and bob as OS accounts, each with a relay to the (per-test) socket path."""
    assert root_available(), "these tests create OS accounts: run them as root (CI does)"
    base = Path(tempfile.mkdtemp(prefix="signoff-socket-console-"))
    base.chmod(0o755)
    accounts = Accounts(base)
    relays: list[Relay] = []
    try:
        with reachable(*interpreter_paths()):
            found = {"base": base, "socket": base / "run" / "signoff.sock"}
            (base / "run").mkdir()
            for name in ("dana", "bob"):
                account = accounts.user(name[0])
                relay = Relay(account, base / f"relay-{name}", found["socket"])
                relays.append(relay)
                found[name] = (account, relay)
            yield found
    finally:
        for relay in relays:
            relay.stop()
        try:
            accounts.remove()
        finally:
            shutil.rmtree(base, ignore_errors=True)


class Local:
    """The local server, the console's account (this process) and dana and bob."""

    def __init__(self, root: Path, people: dict[str, Any]) -> None:
        from signoff.console.remote import RemoteBackend

        self.flows = write_flows(root / "flows", FLOWS)
        self.dana_name = people["dana"][0].name
        self.bob_name = people["bob"][0].name
        self.policy = root / "policy.yaml"
        self.policy.write_text("fourEyes: true\nbindings:\n  - role: admin\n"
                               f"    subjects: [user:{ME}, user:{self.dana_name}, user:{self.bob_name}]\n"
                               '    namespaces: ["*"]\n')
        self.socket = people["socket"]
        self.server = SocketServer(self.socket, root / "data", flows=self.flows, policy=self.policy,
                                   log_path=root / "server.log")
        self.server.start()
        self.dana = RemoteBackend.local(str(people["dana"][1].path), timeout=30.0)
        self.bob = RemoteBackend.local(str(people["bob"][1].path), timeout=30.0)
        self.backends = [self.dana, self.bob]

    def console_backend(self):
        from signoff.console.remote import RemoteBackend

        backend = RemoteBackend.local(str(self.socket), timeout=5.0)
        self.backends.append(backend)
        return backend

    def start(self, flow: str, inputs: dict[str, Any]) -> str:
        ns = "acme.finance" if flow == "payment" else "acme.platform"
        execution = self.dana.start_execution(ns, flow, inputs)
        end = time.monotonic() + 20
        while time.monotonic() < end:
            current = self.bob.get_execution(execution["id"])
            pending = [r["id"] for r in current.get("requests") or [] if r["state"] == "PENDING"]
            if pending:
                return pending[0]
            time.sleep(0.05)
        raise AssertionError(f"{flow}: no approval request within 20s")

    def close(self) -> None:
        for backend in self.backends:
            backend.close()
        self.server.stop()


@pytest.fixture
def local(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, people):
    monkeypatch.setenv("SIGNOFF_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.delenv("NO_COLOR", raising=False)
    world = Local(tmp_path, people)
    try:
        world.ids = [world.start("payment", {"amount": 100 * (i + 1), "payee": p}) for i, p in enumerate(PAYEES)]
        world.ids += [world.start("deploy", {"service": f"svc-{i + 1}"}) for i in range(2)]
        yield world
    finally:
        world.close()


def console(local: Local, **kwargs: Any):
    from signoff.console.app import SignoffApp

    kwargs.setdefault("config", ConsoleConfig(path=None))
    return SignoffApp(local.console_backend(), **kwargs)


async def type_text(pilot, text: str) -> None:
    for ch in text:
        await pilot.press(ch if ch != " " else "space")


async def test_status_bar_says_via_local_server(local):
    app = console(local)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        assert set(app.pending_view.table.all_ids) == set(local.ids)
        assert f"{ME} via local server ({local.socket})" in screen_text(app)


async def test_approve_one_with_form_over_the_socket(local):
    from signoff.console.screens.form_screen import FormScreen

    app = console(local)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        t = app.pending_view.table
        await pilot.press("slash")
        await type_text(pilot, "globex")
        await pilot.press("enter")
        await wait_for(pilot, lambda: t.visible_count == 1)
        target = t.highlighted_id
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, FormScreen), timeout=10)
        form = app.screen
        await type_text(pilot, "bad")
        await pilot.press("ctrl+s")  # the server's validation refuses it
        await wait_for(pilot, lambda: "ticket" in (form._last.errors or {}) if form._last else False, timeout=10)
        await pilot.press("backspace", "backspace", "backspace")
        await type_text(pilot, "T-42")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: target not in t.all_ids, timeout=10)
        decision = local.bob.get_request(target)["decisions"][0]
        assert (decision["by"], decision["inputs"]) == (ME, {"ticket": "T-42"})
        assert decision["origin"] == f"socket uid={os.getuid()}"


async def test_bulk_approve_with_marks_over_the_socket(local):
    from signoff.console.screens.form_screen import FormScreen

    app = console(local)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        t = app.pending_view.table
        await pilot.press("slash")
        await type_text(pilot, "payment")
        await pilot.press("enter", "a")
        marked = set(t.marked)
        assert len(marked) == 3
        await pilot.press("y")
        await wait_for(pilot, lambda: isinstance(app.screen, FormScreen), timeout=10)
        await type_text(pilot, "T-7")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), timeout=10)
        assert "Approve 3 requests in 1 flow" in screen_text(app)
        await pilot.press("enter")
        await wait_for(pilot, lambda: not (marked & set(t.all_ids)), timeout=10)
        for request_id in marked:
            request = local.bob.get_request(request_id)
            assert request["state"] == "APPROVED" and request["decisions"][0]["by"] == ME


async def test_live_updates_over_the_socket(local):
    app = console(local, poll_interval=0.2)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        t = app.pending_view.table
        target = t.highlighted_id
        [outcome] = local.bob.decide([target], "deny", reason="not today")
        assert outcome.ok
        await wait_for(pilot, lambda: target not in t.all_ids, timeout=10)
        assert f"denied by {local.bob_name}" in app.status_bar.notice
        late = local.start("deploy", {"service": "late"})
        await wait_for(pilot, lambda: late in t.all_ids, timeout=10)


async def test_server_killed_and_started_again_on_the_same_socket(local):
    app = console(local, poll_interval=0.2)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot)
        t = app.pending_view.table
        banner = app.connection_banner
        await wait_for(pilot, lambda: app.pending_view.last_seq > 0)
        local.server.kill()  # SIGKILL: the socket file stays behind, stale
        assert local.socket.exists()
        await wait_for(pilot, lambda: banner.shown, timeout=20)
        assert f"Connection to local server ({local.socket}) lost" in banner.text
        assert app.status_bar.connection == "offline"
        local.server.start()  # replaces the stale socket file
        await wait_for(pilot, lambda: not banner.shown, timeout=40)
        assert app.status_bar.connection == ""
        target = t.highlighted_id
        local.bob.decide([target], "deny", reason="after the restart")
        await wait_for(pilot, lambda: target not in t.all_ids, timeout=10)
