"""Links to requests (engine.links): the two forms, parsing what `signoff open` accepts, the
link in the notifications signoff sends itself, and appLink() in the seed flow's Slack
payload (captured by a real local HTTP listener) resolving to its request."""
from __future__ import annotations

import base64
import json
from datetime import timedelta
from pathlib import Path

import pytest

from signoff.console.backend import LocalBackend
from signoff.console.open_link import resolve_request
from signoff.engine.clock import FakeClock
from signoff.engine.core import Engine
from signoff.engine.errors import NotFound, UsageError
from signoff.engine.links import check_public_url, parse_link, request_link
from signoff.engine.notify.config import NotificationConfig, Target
from signoff.engine.service import ApprovalService
from tests.support import ALICE, BOB, write_flows
from tests.test_governance import CFO, ESCALATING

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_flows"
PUBLIC = "https://signoff.example.com"


# ------------------------------------------------------------------ forms and parsing


def test_link_forms():
    assert request_link(None, "r0000000001ab") == "signoff://request/r0000000001ab"
    assert request_link(PUBLIC, "r0000000001ab") == f"{PUBLIC}/r/r0000000001ab"
    assert request_link(PUBLIC + "/", "r0000000001ab") == f"{PUBLIC}/r/r0000000001ab"


@pytest.mark.parametrize("text", [
    "signoff://request/r0000000001ab", "https://signoff.example.com/r/r0000000001ab",
    "http://127.0.0.1:8750/r/r0000000001ab/", "https://example.com/approvals/r/r0000000001ab",
    "r0000000001ab", "  R0000000001AB  "])
def test_parse_link_accepts_both_forms_and_a_bare_id(text):
    assert parse_link(text) == "r0000000001ab"


@pytest.mark.parametrize("text", [
    "", "signoff://request/", "signoff://executions/a/b/c", "https://signoff.example.com/",
    "https://signoff.example.com/r/../etc", "ftp://x/r/r0000000001ab", "r000/../x", "abc", "r-1; rm -rf /"])
def test_parse_link_refuses_what_is_not_a_link(text):
    with pytest.raises(UsageError, match="is not a signoff link"):
        parse_link(text)


@pytest.mark.parametrize("url", ["signoff.example.com", "ftp://x", "https://", "https://x/?a=1", "https://x/#f"])
def test_public_url_must_be_http(url):
    with pytest.raises(UsageError, match="must be an http:// or https:// URL"):
        check_public_url(url)


# ------------------------------------------------------------------ notifications


def service_with(tmp_path: Path, flows: dict[str, str] | None, public_url: str | None, *,
                 clock: FakeClock | None = None, flow_dirs: list[Path] | None = None) -> ApprovalService:
    dirs = list(flow_dirs or [])
    if flows:
        dirs.append(write_flows(tmp_path / "flows", flows))
    return ApprovalService(Engine(tmp_path / "data", dirs, clock=clock or FakeClock("2026-01-05T09:00:00Z"),
                                  public_url=public_url))


@pytest.mark.parametrize("public_url", [PUBLIC, None])
def test_created_reminded_escalated_notifications_carry_the_link(tmp_path, http_listener, public_url):
    clock = FakeClock("2026-01-05T09:00:00Z")
    svc = service_with(tmp_path, {"pay.yaml": ESCALATING}, public_url, clock=clock)
    svc.engine.notifications = NotificationConfig([Target("slack", http_listener.url + "/slack", ["*"])])
    ex = svc.start_execution(BOB, "company.finance", "pay", {})
    rid = ex["requests"][0]["id"]
    link = f"{PUBLIC}/r/{rid}" if public_url else f"signoff://request/{rid}"
    clock.advance(timedelta(minutes=31))
    svc.tick()  # the PT30M reminder
    clock.advance(timedelta(minutes=30))
    svc.tick()  # the timeout: escalated to the cfo group
    texts = [r.json["text"] for r in http_listener.requests_to("/slack")]
    kinds = [t.splitlines()[0].split(":")[0] for t in texts]
    assert kinds[0] == "Approval requested" and "Reminder" in kinds and "Escalated" in kinds, texts
    for text in texts:
        assert f"Decide: {link}" in text.splitlines(), text
        assert f"In a terminal: signoff open {rid}" in text.splitlines(), text
    [outcome] = svc.approve(CFO, [rid], reason="ok")
    assert outcome.ok, outcome
    assert http_listener.requests_to("/slack")[-1].json["text"].startswith("Approval decided")
    assert "Decide:" not in http_listener.requests_to("/slack")[-1].json["text"]
    svc.engine.close()


# ------------------------------------------------------------------ the seed flow


@pytest.mark.parametrize("public_url", [PUBLIC, None])
def test_seed_flow_slack_payload_links_to_its_request(tmp_path, http_listener, monkeypatch, public_url):
    monkeypatch.setenv("SECRET_SLACK_HR_WEBHOOK",
                       base64.b64encode((http_listener.url + "/hooks/hr").encode()).decode())
    svc = service_with(tmp_path, None, public_url, flow_dirs=[SAMPLES])
    ex = svc.start_execution(ALICE, "hr.operations", "vacation_approval",
                             {"employee": "Ann", "start_date": "2026-02-01", "end_date": "2026-02-05"})
    [sent] = http_listener.requests_to("/hooks/hr")
    text = (sent.json if sent.json is not None else json.loads(sent.body))["text"]
    link = text.rsplit("Approve: ", 1)[1].strip()
    assert link == (f"{PUBLIC}/r/{ex['id']}" if public_url else f"signoff://request/{ex['id']}")
    # appLink() ran before the Pause made its request: the link names the execution, and
    # opening it leads to the execution's pending request
    [pending] = [r for r in svc.list_pending(ALICE) if r["execution_id"] == ex["id"]]
    backend = LocalBackend(svc, identity=ALICE)
    assert resolve_request(backend, link)["id"] == pending["id"]
    assert resolve_request(backend, pending["id"])["id"] == pending["id"]
    # once decided, the link still leads to that request (now decided), not nowhere
    svc.approve(ALICE, [pending["id"]], inputs={"approved": True, "reason": "enjoy"})
    assert resolve_request(backend, link)["state"] != "PENDING"
    with pytest.raises(NotFound, match="leads to no request or execution"):
        resolve_request(backend, "signoff://request/r999999999999")
    svc.engine.close()


# ------------------------------------------------------------------ the command line and the config


LINKED_FLOW = """
id: linked
namespace: t.links
tasks:
  - id: tell
    type: io.kestra.plugin.core.log.Log
    message: "Approve: {{ appLink('appId') }}"
  - id: gate
    type: io.kestra.plugin.core.flow.Pause
"""


def test_cli_run_uses_public_url_from_the_config_file(tmp_path):
    from tests.support import clean_env
    from tests.test_cli import run_cli

    config = tmp_path / "config"
    config.mkdir()
    (config / "config.toml").write_text('public_url = "https://approvals.example.com/"\n')
    flows = write_flows(tmp_path / "flows", {"linked.yaml": LINKED_FLOW})
    env = clean_env(SIGNOFF_CONFIG_DIR=str(config))
    started = run_cli("--data-dir", tmp_path / "data", "--flows", flows, "run", "t.links", "linked", "--json", env=env)
    assert started.code == 0, started
    execution = started.json
    shown = run_cli("--data-dir", tmp_path / "data", "--flows", flows, "executions", "show", execution["id"],
                    "--json", env=env).json
    messages = [log["message"] for log in shown["logs"]]
    assert f"Approve: https://approvals.example.com/r/{execution['id']}" in messages, messages
    # $SIGNOFF_PUBLIC_URL wins over the file; a bad one is refused with exit 2, nothing started
    bad = run_cli("--data-dir", tmp_path / "data", "--flows", flows, "run", "t.links", "linked",
                  env={**env, "SIGNOFF_PUBLIC_URL": "approvals.example.com"})
    assert bad.code == 2 and "must be an http:// or https:// URL" in bad.err, bad


def test_config_file_public_url_problems_are_reported(tmp_path):
    from signoff.console.config import ConsoleConfig

    path = tmp_path / "config.toml"
    path.write_text('public_url = "ftp://x"\n')
    assert any("must be an http:// or https:// URL" in p for p in ConsoleConfig.load(path).problems)
    path.write_text('public_url = 3\n')
    assert any("`public_url` must be" in p for p in ConsoleConfig.load(path).problems)
    path.write_text('public_url = "https://a.example/"\n')
    loaded = ConsoleConfig.load(path)
    assert loaded.public_url == "https://a.example" and loaded.problems == []


@pytest.mark.parametrize("args,message", [
    (["open", "javascript:alert(1)"], "is not a signoff link"),
    (["open", "r000000000001"], "needs an interactive terminal"),
    (["serve", "--single-user", "--port", "0", "--public-url", "ftp://x"], "must be an http:// or https:// URL"),
])
def test_cli_refusals(tmp_path, args, message):
    from tests.support import clean_env
    from tests.test_cli import run_cli

    result = run_cli("--data-dir", tmp_path / "data", *args, env=clean_env(SIGNOFF_CONFIG_DIR=str(tmp_path / "c")))
    assert result.code == 2 and message in result.err, result
