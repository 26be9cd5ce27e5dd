"""The request page's form in a real headless Chromium against a real `signoff serve` on
127.0.0.1: one control per input type with its default and required mark, a dependsOn field
that appears with the script and without it (a re-render), the engine's own messages next to
the fields, commentRequired, a viewer who sees no form, a policy that requires signatures
(no form, and an unsigned post refused), and refusals (no session, bad CSRF) audited."""
from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from tests.contract.server import ServerProcess
from tests.server.webdriver import (
    by_id,
    click_and_wait,
    ids_present,
    is_stale,
    sign_in,
    start_browser,
    wait_new_page,
    wait_until,
)
from tests.support import fresh_address, write_flows

POLICY = """
fourEyes: true
bindings:
  - role: admin
    subjects: [user:alice, user:bob]
    namespaces: ["t.web", "t.web.*"]
  - role: admin
    subjects: [user:auditor]
    namespaces: ["*"]
  - role: viewer
    subjects: [user:victor]
    namespaces: ["*"]
  - role: admin
    subjects: [user:alice, user:bob]
    namespaces: [t.signed]
    signatures: required
"""

ALL_TYPES = """
id: all_types
namespace: t.web
inputs:
  - id: ticket
    type: STRING
tasks:
  - id: gate
    type: io.kestra.plugin.core.flow.Pause
    context:
      summary: "Change {{ inputs.ticket }}"
      details: "Ticket **{{ inputs.ticket }}**"
    onResume:
      - {id: approved, type: BOOLEAN, description: Go ahead?}
      - {id: note, type: STRING, required: false, defaults: looks fine}
      - {id: count, type: INT, min: 1, max: 10, defaults: 2}
      - {id: ratio, type: FLOAT, required: false}
      - {id: region, type: SELECT, values: [eu, us, apac], defaults: eu}
      - {id: env, type: ENUM, values: [dev, prod], required: false}
      - {id: owner, type: SELECT, values: [ann, bo], allowCustomValue: true, required: false}
      - {id: targets, type: MULTISELECT, values: [web, db, cache], required: false}
      - {id: day, type: DATE, required: false}
      - {id: at, type: DATETIME, required: false}
      - {id: slot, type: TIME, required: false}
      - {id: wait, type: DURATION, required: false}
      - {id: contact, type: EMAIL, required: false}
      - {id: docs, type: URI, required: false}
      - {id: payload, type: JSON, required: false}
      - {id: extra, type: YAML, required: false}
      - {id: tags, type: ARRAY, itemType: STRING, required: false}
      - {id: pin, type: SECRET, required: false}
      - {id: attachment, type: FILE, required: false}
      - id: rollback_plan
        type: STRING
        displayName: Rollback plan
        dependsOn:
          inputs: [region]
          condition: "{{ inputs.region == 'us' }}"
"""

COMMENTED = """
id: commented
namespace: t.web
tasks:
  - id: gate
    type: io.kestra.plugin.core.flow.Approval
    commentRequired: ON_DENY
    context:
      summary: Needs a reason to deny
"""

QUORUM = """
id: quorum
namespace: t.web
tasks:
  - id: gate
    type: io.kestra.plugin.core.flow.Approval
    required: 2
    context:
      summary: Two people must agree
"""

SIGNED = """
id: signed
namespace: t.signed
tasks:
  - id: gate
    type: io.kestra.plugin.core.flow.Pause
    context:
      summary: Signed only
"""

CONTROLS = {  # input id -> (tag, type attribute or None)
    "approved": ("select", None), "note": ("input", "text"), "count": ("input", "number"),
    "ratio": ("input", "number"), "region": ("select", None), "env": ("select", None),
    "owner": ("input", "text"), "day": ("input", "date"), "at": ("input", "text"), "slot": ("input", "time"),
    "wait": ("input", "text"), "contact": ("input", "email"), "docs": ("input", "url"),
    "payload": ("textarea", None), "extra": ("textarea", None), "tags": ("input", "text"),
    "pin": ("input", "password"),
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("web-forms")
    flows = write_flows(root / "flows", {"all_types.yaml": ALL_TYPES, "commented.yaml": COMMENTED,
                                         "quorum.yaml": QUORUM, "signed.yaml": SIGNED})
    policy = root / "policy.yaml"
    policy.write_text(POLICY)
    srv = ServerProcess(root / "server", policy=policy, flows=flows)
    srv.start()
    srv.tokens = {user: srv.issue_token(user) for user in ("alice", "bob", "victor", "auditor")}  # type: ignore[attr-defined]
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    driver = start_browser(tmp_path_factory.mktemp("chromium-forms"))
    try:
        yield driver
    finally:
        driver.quit()


def api(server: ServerProcess, user: str) -> Any:
    from signoff.console.remote import RemoteBackend

    return RemoteBackend(server.url, server.tokens[user], timeout=30.0)  # type: ignore[attr-defined]


def start(server: ServerProcess, namespace: str, flow: str, inputs: dict[str, Any] | None = None) -> str:
    """Start an execution as bob (so alice may approve it: four-eyes); its request's id."""
    client = api(server, "bob")
    try:
        execution = client.start_execution(namespace, flow, inputs or {})
        return str(wait_until(lambda: client.get_execution(execution["id"]).get("requests"))[0]["id"])
    finally:
        client.close()


@contextmanager
def session_for(server: ServerProcess, user: str) -> Iterator[tuple[httpx.Client, str]]:
    """A signed-in session outside the browser (for posts a page would not send): the client
    and the CSRF token of a page."""
    with httpx.Client(base_url=server.url, timeout=30.0, follow_redirects=True) as client:
        signed = client.post("/web/sign-in", data={"token": server.tokens[user], "next": "/web/pending"})  # type: ignore[attr-defined]
        assert signed.status_code == 200 and f'id="who">{user}<' in signed.text, signed.text[:500]
        yield client, csrf_of(signed.text)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html[:1000]
    return found.group(1)


def test_one_control_per_type_defaults_required_and_depends_on(server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    request_id = start(server, "t.web", "all_types", {"ticket": "CHG-1"})
    sign_in(browser, f"{server.url}/r/{request_id}", server.tokens["alice"])
    for input_id, (tag, kind) in CONTROLS.items():
        element = by_id(browser, f"in-{input_id}")
        assert element.tag_name == tag, input_id
        if kind is not None:
            assert element.get_attribute("type") == kind, input_id
    assert len(browser.find_elements(By.CSS_SELECTOR, "input[type=checkbox][name='in-targets']")) == 3
    assert by_id(browser, "in-attachment").tag_name == "p"  # decisions carry no files, anywhere
    assert "decisions cannot carry files" in by_id(browser, "field-attachment").text
    # defaults prefilled, bounds carried to the number box, required marks only on required fields
    assert by_id(browser, "in-note").get_attribute("value") == "looks fine"
    assert by_id(browser, "in-count").get_attribute("value") == "2"
    assert (by_id(browser, "in-count").get_attribute("min"), by_id(browser, "in-count").get_attribute("max")) == \
        ("1", "10")
    assert Select(by_id(browser, "in-region")).first_selected_option.get_attribute("value") == "eu"
    assert [o.get_attribute("value") for o in Select(by_id(browser, "in-env")).options] == ["", "dev", "prod"]
    assert by_id(browser, "field-approved").find_elements(By.CSS_SELECTOR, ".req")
    assert not by_id(browser, "field-note").find_elements(By.CSS_SELECTOR, ".req")
    assert by_id(browser, "in-pin").get_attribute("value") == ""
    # dependsOn: hidden while region is eu; choosing us shows it (the script presses "Update the form")
    assert not ids_present(browser, "in-rollback_plan")
    old = browser.find_element(By.TAG_NAME, "html")
    Select(by_id(browser, "in-region")).select_by_value("us")
    wait_new_page(browser, old, "in-rollback_plan")
    assert "Rollback plan" in by_id(browser, "field-rollback_plan").text
    assert by_id(browser, "field-rollback_plan").find_elements(By.CSS_SELECTOR, ".req")

    # the engine's messages next to the fields; nothing is decided
    count = by_id(browser, "in-count")
    count.clear()
    count.send_keys("50")
    click_and_wait(browser, "approve", "error-approved")
    assert by_id(browser, "error-approved").text == "Missing required input:`approved`"
    assert by_id(browser, "error-rollback_plan").text == "Missing required input:`rollback_plan`"
    assert "`count`" in by_id(browser, "error-count").text and "10" in by_id(browser, "error-count").text
    assert by_id(browser, "state").text == "PENDING"
    assert by_id(browser, "in-count").get_attribute("value") == "50"  # what was typed is kept

    Select(by_id(browser, "in-approved")).select_by_value("true")
    for input_id, text in (("count", "3"), ("rollback_plan", "restore snapshot"), ("owner", "zed"),
                           ("at", "2026-03-01T09:30:00+01:00"), ("wait", "PT2H"), ("contact", "ops@example.com"),
                           ("docs", "https://example.com/runbook"), ("payload", '{"a": 1}'), ("tags", "x, y"),
                           ("pin", "1234"), ("ratio", "0.5")):
        box = by_id(browser, f"in-{input_id}")
        box.clear()
        box.send_keys(text)
    browser.execute_script("document.getElementById('in-day').value = '2026-03-02';"
                           "document.getElementById('in-slot').value = '07:15:00';")
    for box in browser.find_elements(By.CSS_SELECTOR, "input[name='in-targets']"):
        if box.get_attribute("value") in ("web", "db"):
            box.click()
    by_id(browser, "decision-reason").send_keys("window agreed")
    click_and_wait(browser, "approve", "outcome")
    assert by_id(browser, "state").text == "APPROVED"

    client = api(server, "alice")
    try:
        request = client.get_request(request_id)
    finally:
        client.close()
    [decision] = request["decisions"]
    assert decision["origin"] == "web 127.0.0.1" and decision["signature"] is None
    assert decision["reason"] == "window agreed"
    values = decision["inputs"]
    assert values["approved"] is True and values["count"] == 3 and values["region"] == "us"
    assert values["targets"] == ["web", "db"] and values["payload"] == {"a": 1} and values["tags"] == ["x", "y"]
    assert values["owner"] == "zed" and values["pin"] == "***" and values["note"] == "looks fine"
    assert values["day"] == "2026-03-02" and values["at"] == "2026-03-01T08:30:00Z" and values["ratio"] == 0.5
    browser.get(f"{server.url}/r/{request_id}")
    assert "origin web 127.0.0.1" in by_id(browser, "decisions").text
    assert "unsigned" in by_id(browser, "decisions").text
    assert not ids_present(browser, "decision-form") and ids_present(browser, "closed")


def test_depends_on_without_javascript_is_a_rerender(server):
    request_id = start(server, "t.web", "all_types", {"ticket": "CHG-2"})
    with session_for(server, "alice") as (client, csrf):
        page = client.get(f"/r/{request_id}")
        assert 'id="in-rollback_plan"' not in page.text and 'id="refresh"' in page.text
        shown = client.post(f"/r/{request_id}/decide", data={"csrf": csrf, "verdict": "refresh", "in-region": "us",
                                                             "in-count": "4"})
        assert shown.status_code == 200 and 'id="in-rollback_plan"' in shown.text
        assert 'name="in-count" type="number" value="4"' in shown.text  # the values posted are kept
        hidden = client.post(f"/r/{request_id}/decide", data={"csrf": csrf, "verdict": "refresh", "in-region": "apac"})
        assert 'id="in-rollback_plan"' not in hidden.text
        refused = client.post(f"/r/{request_id}/decide", data={"csrf": csrf, "verdict": "approve", "in-region": "us",
                                                               "in-approved": "true"})
        assert refused.status_code == 422
        assert 'id="error-rollback_plan">Missing required input:`rollback_plan`' in refused.text
        # a field hidden by its condition is ignored, as the engine ignores it
        done = client.post(f"/r/{request_id}/decide", data={"csrf": csrf, "verdict": "approve", "in-region": "eu",
                                                            "in-approved": "false", "in-rollback_plan": "x"})
        assert done.status_code == 200 and 'data-outcome="decided"' in done.text


def test_comment_required_to_deny(server, browser):
    request_id = start(server, "t.web", "commented")
    sign_in(browser, f"{server.url}/r/{request_id}", server.tokens["alice"])
    assert "required to deny" in by_id(browser, "reason-required").text
    click_and_wait(browser, "deny", "error-reason")
    assert by_id(browser, "error-reason").text == \
        "A comment is required to deny this request (commentRequired: ON_DENY)"
    assert by_id(browser, "state").text == "PENDING"
    by_id(browser, "decision-reason").send_keys("not this week")
    click_and_wait(browser, "deny", "outcome")
    assert by_id(browser, "state").text == "DENIED"


def test_viewer_sees_the_page_without_the_form(server, browser):
    request_id = start(server, "t.web", "commented")
    sign_in(browser, f"{server.url}/r/{request_id}", server.tokens["victor"])
    assert by_id(browser, "summary").text == "Needs a reason to deny"
    assert "not decide it" in by_id(browser, "view-only").text
    assert not ids_present(browser, "decision-form") and not ids_present(browser, "approve")
    # a post the page never offered is refused by the engine, and audited there
    with session_for(server, "victor") as (client, csrf):
        answer = client.post(f"/r/{request_id}/decide", data={"csrf": csrf, "verdict": "approve"})
    assert answer.status_code == 409 and 'data-outcome="not_eligible"' in answer.text
    history = api(server, "alice")
    try:
        events = history.history(f"action:policy.denied request:{request_id}")
    finally:
        history.close()
    assert any(e["actor"] == "victor" for e in events), events


def test_the_pending_list_offers_marks_only_where_one_may_decide(server):
    request_id = start(server, "t.web", "commented")
    with session_for(server, "victor") as (client, _csrf):  # a viewer everywhere
        page = client.get("/web/pending").text
    assert f'id="row-{request_id}"' in page and f'id="view-only-{request_id}"' in page
    assert 'name="id"' not in page and 'id="bulk-approve"' not in page and 'id="mark-all"' not in page
    assert 'id="view-only-list"' in page
    with session_for(server, "alice") as (client, _csrf):  # an admin of t.web
        page = client.get("/web/pending").text
    assert f'id="mark-{request_id}"' in page and 'id="bulk-approve"' in page
    assert f'id="view-only-{request_id}"' not in page and 'id="view-only-list"' not in page


def test_signatures_required_means_console_or_cli(server, browser):
    request_id = start(server, "t.signed", "signed")
    sign_in(browser, f"{server.url}/r/{request_id}", server.tokens["alice"])
    notice = by_id(browser, "signature-required").text
    assert "console" in notice and "CLI" in notice and "SSH agent" in notice
    assert not ids_present(browser, "decision-form")
    with session_for(server, "alice") as (client, csrf):  # never accepted unsigned, even when posted by hand
        answer = client.post(f"/r/{request_id}/decide", data={"csrf": csrf, "verdict": "approve"})
        assert answer.status_code == 409 and 'data-outcome="signature_required"' in answer.text
        assert "PENDING" in client.get(f"/r/{request_id}").text


def test_refusals_are_audited(server):
    request_id = start(server, "t.web", "commented")
    address = fresh_address()
    transport = httpx.HTTPTransport(local_address=address)
    with httpx.Client(base_url=server.url, transport=transport, timeout=30.0) as anonymous:
        answer = anonymous.post(f"/r/{request_id}/decide", data={"verdict": "approve", "csrf": "x"})
    assert answer.status_code == 401 and "sign in again" in answer.text
    with session_for(server, "alice") as (client, _csrf):
        forged = client.post(f"/r/{request_id}/decide", data={"verdict": "approve", "csrf": "forged"})
        assert forged.status_code == 403 and "CSRF" in forged.text
        bulk = client.post("/web/bulk", data={"verdict": "approve", "id": request_id, "step": "form"})
        assert bulk.status_code == 403
    history = api(server, "auditor")  # events without a namespace are for admins of every namespace
    try:
        def reasons() -> set[str]:
            found: set[str] = set()
            for event in history.history("action:auth.failed"):
                data = event.get("data") or {}
                found.update([data.get("reason"), *(data.get("reasons") or [])])
            return found
        wait_until(lambda: {"web_session", "csrf"} <= reasons(), timeout=30)
        assert "PENDING" == history.get_request(request_id)["state"]
    finally:
        history.close()


def test_four_eyes_and_quorum_outcomes(server):
    own = start(server, "t.web", "commented")  # started by bob
    with session_for(server, "bob") as (client, csrf):
        page = client.get(f"/r/{own}")
        assert 'id="four-eyes"' in page.text and 'id="decision-form"' in page.text  # bob may still deny
        answer = client.post(f"/r/{own}/decide", data={"csrf": csrf, "verdict": "approve"})
        assert answer.status_code == 409 and 'data-outcome="self_approval"' in answer.text
        assert "four-eyes rule: bob started execution" in answer.text
    request_id = start(server, "t.web", "quorum")
    with session_for(server, "alice") as (client, csrf):
        assert "Needs 2 approvals; 0 so far." in client.get(f"/r/{request_id}").text
        form = client.get(f"/r/{request_id}").text
        key = re.search(r'name="key" value="([^"]+)"', form).group(1)
        first = client.post(f"/r/{request_id}/decide", data={"csrf": csrf, "verdict": "approve", "key": key})
        assert first.status_code == 200 and f"approval recorded for request {request_id} (1 of 2)" in first.text
        # the same page submitted twice (a double tap): the first answer again, nothing decided twice
        twice = client.post(f"/r/{request_id}/decide", data={"csrf": csrf, "verdict": "approve", "key": key})
        assert twice.status_code == 200 and f"approval recorded for request {request_id} (1 of 2)" in twice.text
        page = client.get(f"/r/{request_id}").text
        assert "Needs 2 approvals; 1 so far." in page and 'id="state">PENDING' in page
        again = client.post(f"/r/{request_id}/decide", data={"csrf": csrf, "verdict": "approve"})
        assert 'data-outcome="already_decided"' in again.text and "waiting for other approvers" in again.text


def test_behind_a_tls_proxy_on_the_same_host(server):
    """A TLS proxy on 127.0.0.1 passes X-Forwarded-Proto/-For (trusted from there by default):
    the cookie is Secure and the decision's origin is the client's address, not the proxy's."""
    request_id = start(server, "t.web", "commented")
    proxied = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}
    with httpx.Client(base_url=server.url, timeout=30.0, headers=proxied) as client:
        signed = client.post("/web/sign-in", data={"token": server.tokens["alice"], "next": f"/r/{request_id}"})
        cookie = signed.headers["set-cookie"]
        assert signed.status_code == 303 and "Secure" in cookie and "HttpOnly" in cookie
        assert "SameSite=strict" in cookie or "SameSite=Strict" in cookie
        session = cookie.split(";", 1)[0].split("=", 1)[1]
        client.cookies.set("signoff_session", session)
        csrf = csrf_of(client.get(f"/r/{request_id}").text)
        done = client.post(f"/r/{request_id}/decide", data={"csrf": csrf, "verdict": "approve"})
        assert done.status_code == 200, done.text[:500]
    client_api = api(server, "alice")
    try:
        [decision] = client_api.get_request(request_id)["decisions"]
    finally:
        client_api.close()
    assert decision["origin"] == "web 203.0.113.9"


def test_depends_on_in_a_browser_without_javascript(server, browser):
    """Scripts off in the page (DevTools' Emulation.setScriptExecutionDisabled): choosing a
    value changes nothing by itself, "Update the form" brings the field, approving works."""
    from selenium.webdriver.support.ui import Select

    request_id = start(server, "t.web", "all_types", {"ticket": "CHG-3"})
    sign_in(browser, f"{server.url}/r/{request_id}", server.tokens["alice"])
    browser.execute_cdp_cmd("Emulation.setScriptExecutionDisabled", {"value": True})
    try:
        browser.get(f"{server.url}/r/{request_id}")
        html = browser.find_element("tag name", "html")
        assert "js" not in (html.get_attribute("class") or "").split()  # the page's script did not run
        Select(by_id(browser, "in-region")).select_by_value("us")
        time.sleep(0.5)
        assert not ids_present(browser, "in-rollback_plan") and not is_stale(html)  # nothing happened by itself
        click_and_wait(browser, "refresh", "in-rollback_plan")
        assert Select(by_id(browser, "in-region")).first_selected_option.get_attribute("value") == "us"
        Select(by_id(browser, "in-approved")).select_by_value("true")
        by_id(browser, "in-rollback_plan").send_keys("revert the flag")
        click_and_wait(browser, "approve", "outcome")
        assert by_id(browser, "state").text == "APPROVED"
    finally:
        browser.execute_cdp_cmd("Emulation.setScriptExecutionDisabled", {"value": False})
    browser.get(f"{server.url}/r/{request_id}")  # and with scripts on, the script does run
    assert "js" in browser.find_element("tag name", "html").get_attribute("class").split()
