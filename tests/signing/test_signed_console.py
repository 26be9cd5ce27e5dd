"""The console signs decisions without extra steps when the agent holds a registered key
(the real Textual app driven by Pilot, a real ssh-agent); the context pane and History show
signed or unsigned; a banner says when signatures are required and no usable key exists."""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from signoff.console.backend import LocalBackend
from signoff.console.screens.confirm import ConfirmScreen, ReasonScreen
from signoff.console.screens.history import render_event, signature_text
from signoff.console.signing import AgentKeySigner, sign_key_registration
from signoff.engine.governance.policy_file import parse_policy
from signoff.engine.signing import sshsig
from tests.console.conftest import ME, loaded, make_env, wait_for
from tests.console.screen_text import screen_text
from tests.sshtools import make_key

SIZE = (120, 40)
pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _register(env, agent, tmp_path: Path) -> sshsig.PublicKey:
    private = make_key(tmp_path / "keys", "olivia")
    agent.add(private)
    text = (private.parent / "olivia.pub").read_text()
    key = sshsig.parse_public_key(text)
    backend = LocalBackend(env.service, ME)
    challenge = backend.key_challenge()
    backend.add_key(text, nonce=challenge["nonce"],
                    signature=sign_key_registration(ME.name, key, challenge["nonce"], AgentKeySigner(None, key)))
    return key


async def test_console_signs_deny_and_bulk_approve(tmp_path, monkeypatch, agent):
    monkeypatch.setenv("SIGNOFF_CONFIG_DIR", str(tmp_path / "config"))
    env = make_env(tmp_path, payments=1, deploys=1000)
    key = _register(env, agent, tmp_path)
    app = env.app()
    try:
        async with app.run_test(size=SIZE) as pilot:
            await loaded(pilot)
            t = app.pending_view.table
            await wait_for(pilot, lambda: t.highlighted_id is not None)
            target = t.highlighted_id
            await pilot.press("n")
            await wait_for(pilot, lambda: isinstance(app.screen, ReasonScreen))
            for ch in "no":
                await pilot.press(ch)
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
            await pilot.press("y")
            await wait_for(pilot, lambda: target not in t.all_ids, timeout=20)
            decided = env.service.get_request(ME, target)
            assert decided["decisions"][0]["signature"] == {"fingerprint": key.fingerprint, "key_type": "ssh-ed25519"}
            # the context pane shows the decision as signed, with the key
            app.pending_view.context.show_request(decided)
            shown = str(app.pending_view.context.query_one("#ctx-decisions").render())
            assert f"signed ssh-ed25519 {key.fingerprint}" in shown, shown

            # mark all 1,000 deploys and approve them: one confirmation, signed in this process
            await pilot.press("a")
            await wait_for(pilot, lambda: len(t.marked) == 1000)
            await pilot.press("y")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), timeout=20)
            await pilot.press("enter")
            await wait_for(pilot, lambda: not t.all_ids, timeout=120)
        result = env.service.verify_audit(ME)
        assert result["ok"] and result["signed"] == 1001 and result["unsigned"] == 0, result
        # History shows a decision event as signed, with the key
        [event] = env.service.history(ME, f"request:{target} action:request.denied", limit=1)
        assert signature_text(event["data"]["signature"]) == f"signed (ssh-ed25519 {key.fingerprint})"
        rendered = render_event(event, env.clock.now())
        from rich.console import Console

        console = Console(width=160, record=True)
        console.print(rendered)
        assert f"signed (ssh-ed25519 {key.fingerprint})" in console.export_text()
        assert signature_text(None) == "unsigned"
    finally:
        env.service.engine.close()


async def test_banner_when_required_and_no_usable_key(tmp_path, monkeypatch, agent):
    monkeypatch.setenv("SIGNOFF_CONFIG_DIR", str(tmp_path / "config"))
    env = make_env(tmp_path, payments=1, deploys=0)
    env.service.engine.policy = parse_policy(
        "fourEyes: false\nsignatures: required\nbindings:\n  - role: admin\n    subjects: [user:olivia]\n"
        "    namespaces: [\"*\"]\n", "policy.yaml")
    app = env.app()
    try:
        async with app.run_test(size=SIZE) as pilot:
            await loaded(pilot)
            await wait_for(pilot, lambda: "signed decisions are required here" in screen_text(app), timeout=10)
            meta = app.pending_view.context.query_one("#ctx-meta")
            await wait_for(pilot, lambda: "no usable key was found" in str(meta.render()), timeout=10)
            assert "ssh-add" in str(meta.render())
            # the decision is refused, and the result says how to fix it
            t = app.pending_view.table
            target = t.highlighted_id
            await pilot.press("n")
            await wait_for(pilot, lambda: isinstance(app.screen, ReasonScreen))
            for ch in "no":
                await pilot.press(ch)
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
            await pilot.press("y")
            await wait_for(pilot, lambda: "needs a signed decision" in screen_text(app), timeout=10)
            assert env.service.get_request(ME, target)["state"] == "PENDING"
    finally:
        env.clock.advance(timedelta(0))
        env.service.engine.close()
