"""The web approval page (`/r/<id>` on a real `signoff serve` on 127.0.0.1), in a real
headless Chromium driven by Selenium: the seed's vacation_approval posts its link to Slack
(a local listener), the browser opens it, signs in with a token, sees the context, submits
`approved` empty (the engine's required-field message), approves with a reason, and the HR
listener receives status=APPROVED. Then: CSRF, sign-out, security headers, hostile Markdown."""
from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.contract.server import ServerProcess
from tests.server.webdriver import overflow, sign_in, start_browser, wait_until
from tests.support import write_flows

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "sample_flows"


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    driver = start_browser(tmp_path_factory.mktemp("chromium-page"))
    try:
        yield driver
    finally:
        driver.quit()


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.fixture
def server(tmp_path: Path, http_listener: Any) -> Iterator[ServerProcess]:
    flows = write_flows(tmp_path / "flows", {"vacation_approval.yaml": (SAMPLES / "vacation_approval.yaml").read_text(),
                                             "hostile.yaml": HOSTILE})
    srv = ServerProcess(tmp_path / "server", policy=None, flows=flows)
    srv.extra_args = ("--public-url", srv.url)
    srv.env["SECRET_SLACK_HR_WEBHOOK"] = b64(http_listener.url + "/hooks/hr")
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


HOSTILE = """
id: hostile
namespace: t.web
inputs:
  - id: note
    type: STRING
tasks:
  - id: gate
    type: io.kestra.plugin.core.flow.Pause
    context:
      summary: "Check {{ inputs.note }}"
      details: "{{ inputs.note }}"
    onResume:
      - id: echo
        type: STRING
        defaults: "{{ inputs.note }}"
      - id: mode
        type: SELECT
        values: ["{{ inputs.note }}", plain]
"""


def test_seed_flow_link_in_slack_opens_the_page_and_approves(server, http_listener, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    from signoff.console.remote import RemoteBackend

    token = server.issue_token("alice")
    http_listener.respond("/hr/approvals", 200, {"ok": True})
    api = RemoteBackend(server.url, token, timeout=30.0)
    try:
        api.kv_set("hr.operations", "HR_API_ENDPOINT", http_listener.url + "/hr")
        execution = api.start_execution("hr.operations", "vacation_approval",
                                        {"employee": "Ann <b>Lee</b>", "start_date": "2026-02-01",
                                         "end_date": "2026-02-05"})
    finally:
        api.close()
    [sent] = wait_until(lambda: http_listener.requests_to("/hooks/hr"))
    link = sent.json["text"].rsplit("Approve: ", 1)[1].strip()
    assert link == f"{server.url}/r/{execution['id']}"

    browser.get(link)  # not signed in: the sign-in form, and no token in any URL
    assert browser.find_elements(By.ID, "token")
    sign_in(browser, link, token)
    request_url = browser.current_url
    assert "/r/r" in request_url and token not in request_url
    assert "Ann <b>Lee</b>" in browser.find_element(By.ID, "inputs").text  # shown as text, not markup
    assert browser.find_element(By.ID, "state").text == "PENDING"

    browser.find_element(By.ID, "approve").click()  # `approved` left empty
    message = wait_until(lambda: browser.find_elements(By.ID, "error-approved"))[0].text
    assert "approved" in message and "required" in message.lower(), message
    Select(browser.find_element(By.ID, "in-approved")).select_by_value("true")
    browser.find_element(By.ID, "in-reason").send_keys("enjoy the break")  # the flow's own field
    browser.find_element(By.ID, "decision-reason").send_keys("cover arranged")
    browser.find_element(By.ID, "approve").click()
    try:
        wait_until(lambda: browser.find_elements(By.ID, "outcome"))
    except AssertionError:
        raise AssertionError(browser.page_source[-3000:]) from None
    assert browser.find_element(By.ID, "state").text == "APPROVED"
    [hr] = wait_until(lambda: http_listener.requests_to("/hr/approvals"))
    assert hr.form["status"] == "APPROVED" and hr.form["notes"] == "enjoy the break"

    browser.get(request_url)  # the decision is listed with its origin
    decisions = browser.find_element(By.ID, "decisions").text
    assert "approve by alice" in decisions and "web 127.0.0.1" in decisions, decisions


def test_csrf_headers_sign_out_and_hostile_content(server, browser, tmp_path):
    from selenium.webdriver.common.by import By

    from signoff.console.remote import RemoteBackend

    token = server.issue_token("bob")
    api = RemoteBackend(server.url, token, timeout=30.0)
    hostile = ("<script>document.title='pwned'</script> <img src=x onerror=\"document.title='pwned'\"> "
               "[click](javascript:alert(1)) " + "W" * 3000)
    try:
        execution = api.start_execution("t.web", "hostile", {"note": hostile})
    finally:
        api.close()
    link = f"{server.url}/r/{execution['id']}"
    sign_in(browser, link, token)
    assert browser.title != "pwned"
    details = browser.find_element(By.ID, "details")
    assert not details.find_elements(By.TAG_NAME, "script") and not details.find_elements(By.TAG_NAME, "img")
    assert all(not (a.get_attribute("href") or "").startswith("javascript:")
               for a in details.find_elements(By.TAG_NAME, "a"))
    assert "click" in details.text  # the javascript: link is left as inert text
    assert "<script>" in browser.find_element(By.ID, "inputs").text  # the raw input shown as text
    form = browser.find_element(By.ID, "decision-form")  # in the form too: a default and a choice
    assert browser.find_element(By.ID, "in-echo").get_attribute("value") == hostile
    assert not form.find_elements(By.TAG_NAME, "script") and not form.find_elements(By.TAG_NAME, "img")
    assert hostile in [o.get_attribute("value") for o in form.find_elements(By.CSS_SELECTOR, "#in-mode option")]

    # the layout holds on a phone and a desktop: nothing sticks out sideways, screenshots taken
    request_id = browser.current_url.rsplit("/", 1)[1]
    for width in (390, 1280):
        browser.set_window_size(width, 900)
        for url in (link, f"{server.url}/web/pending"):
            browser.get(url)
            wait_until(lambda: browser.find_elements(By.ID, "who"))
            assert browser.execute_script("return window.innerWidth") <= width
            shot = tmp_path / f"{'pending' if 'pending' in url else 'request'}-{width}.png"
            assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 1000
            assert overflow(browser) == [], (url, width, overflow(browser))
            assert browser.title != "pwned"
    assert browser.find_element(By.ID, f"row-{request_id}")  # the hostile request on the list, wrapped
    assert len(browser.find_element(By.ID, f"row-{request_id}").find_element(By.CLASS_NAME, "summary").text) <= 201
    browser.get(link)  # a long summary is cut in the heading; the whole text is one tap away
    assert browser.find_element(By.ID, "summary").text.endswith("…")
    assert hostile in browser.find_element(By.ID, "full-summary").get_attribute("textContent")
    browser.set_window_size(1280, 900)

    # a real cross-site post (a page of another origin submitting a form to this server): the
    # SameSite=Strict cookie is not sent, so there is no session and nothing is decided
    browser.get("data:text/html,<form method=post action='" + server.url + "/r/" + request_id + "/decide'>"
                "<input name=verdict value=approve><input name=csrf value=guess></form>"
                "<script>document.forms[0].submit()</script>")
    wait_until(lambda: browser.find_elements(By.ID, "token"))
    assert "sign in again" in browser.find_element(By.ID, "error").text
    browser.get(link)
    assert browser.find_element(By.ID, "state").text == "PENDING"

    # a cross-site post with the session cookie but without the page's CSRF token is refused
    cookie = browser.get_cookie("signoff_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    forged = httpx.post(f"{server.url}/r/{request_id}/decide", cookies={"signoff_session": cookie["value"]},
                        data={"verdict": "approve", "csrf": "forged"})
    assert forged.status_code == 403 and "CSRF" in forged.text
    page = httpx.get(f"{server.url}/r/{request_id}", cookies={"signoff_session": cookie["value"]})
    assert page.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert "PENDING" in page.text  # nothing was decided

    bad = httpx.post(f"{server.url}/web/sign-in", data={"token": "so_wrong", "next": "/r/x"})
    assert bad.status_code == 401 and "not valid" in bad.text and "set-cookie" not in bad.headers

    browser.find_element(By.ID, "sign-out").click()
    wait_until(lambda: browser.find_elements(By.ID, "token"))
    after = httpx.post(f"{server.url}/r/{request_id}/decide", cookies={"signoff_session": cookie["value"]},
                       data={"verdict": "approve", "csrf": "x"})
    assert after.status_code == 401 and "sign in again" in after.text


def test_an_expired_session_asks_to_sign_in_again(tmp_path, browser):
    """A server whose sessions last 4 s ($SIGNOFF_WEB_SESSION), reached as `localhost` so its
    cookie is not the other tests' (cookies are per host, not per port)."""
    from selenium.webdriver.common.by import By

    flows = write_flows(tmp_path / "flows", {"hostile.yaml": HOSTILE})
    srv = ServerProcess(tmp_path / "server", policy=None, flows=flows)
    srv.env["SIGNOFF_WEB_SESSION"] = "PT4S"  # room for a slow sign-in on a busy machine
    srv.start()
    try:
        token = srv.issue_token("erin")
        from signoff.console.remote import RemoteBackend

        api = RemoteBackend(srv.url, token, timeout=30.0)
        try:
            execution = api.start_execution("t.web", "hostile", {"note": "short session"})
        finally:
            api.close()
        link = f"http://localhost:{srv.port}/r/{execution['id']}"
        sign_in(browser, link, token)
        # the session was made before sign_in returned: 4.5 s from now it is surely over,
        # however slowly the sign-in went (timed from before it, a slow one left it alive)
        signed_in = time.monotonic()
        assert browser.find_element(By.ID, "approve")
        time.sleep(max(0.0, signed_in + 4.5 - time.monotonic()))
        browser.find_element(By.ID, "approve").click()  # the form of a page loaded before the end
        wait_until(lambda: browser.find_elements(By.ID, "token"))
        assert browser.find_element(By.ID, "error").text == "Your session has ended: sign in again.", \
            browser.page_source[:2000]
        browser.get(link)  # a plain visit says the same
        assert browser.find_element(By.ID, "error").text == "Your session has ended: sign in again."
        browser.find_element(By.ID, "token").send_keys(token)
        browser.find_element(By.ID, "sign-in").click()
        wait_until(lambda: browser.find_elements(By.ID, "state"))
        assert browser.find_element(By.ID, "state").text == "PENDING"  # back on the request, nothing decided
    finally:
        srv.stop()
