"""The pending list and bulk decisions in a real headless Chromium against a real `signoff
serve` on 127.0.0.1: the signed-in person's pending rows in the console's order, 20 marked
requests approved with one shared form while one of them is decided meanwhile over the API
("already decided by carol"), requests asking for different forms approved one group at a
time, and a bulk deny that follows commentRequired."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.contract.server import ServerProcess
from tests.server.webdriver import by_id, click_and_wait, ids_present, overflow, sign_in, start_browser, wait_until
from tests.support import write_flows

POLICY = """
fourEyes: true
bindings:
  - role: admin
    subjects: [user:alice, user:bob]
    namespaces: ["*"]
  - role: approver
    subjects: [user:carol]
    namespaces: ["*"]
"""

BATCH = """
id: batch
namespace: t.bulk
inputs:
  - id: n
    type: INT
tasks:
  - id: gate
    type: io.kestra.plugin.core.flow.Pause
    context:
      summary: "Payment {{ inputs.n }}"
    onResume:
      - {id: ok, type: BOOLEAN, description: Pay it?}
      - {id: note, type: STRING, required: false}
"""

OTHER = """
id: other
namespace: t.bulk
tasks:
  - id: gate
    type: io.kestra.plugin.core.flow.Approval
    commentRequired: ON_DENY
    context:
      summary: "Access for the auditors"
    inputs:
      - {id: days, type: INT, defaults: 3}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("web-bulk")
    flows = write_flows(root / "flows", {"batch.yaml": BATCH, "other.yaml": OTHER})
    policy = root / "policy.yaml"
    policy.write_text(POLICY)
    srv = ServerProcess(root / "server", policy=policy, flows=flows)
    srv.start()
    srv.tokens = {user: srv.issue_token(user) for user in ("alice", "bob", "carol")}  # type: ignore[attr-defined]
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    driver = start_browser(tmp_path_factory.mktemp("chromium-bulk"), width=390, height=844)
    try:
        yield driver
    finally:
        driver.quit()


def api(server: ServerProcess, user: str) -> Any:
    from signoff.console.remote import RemoteBackend

    return RemoteBackend(server.url, server.tokens[user], timeout=30.0)  # type: ignore[attr-defined]


def start_many(server: ServerProcess, flow: str, count: int) -> list[str]:
    """Start ``count`` executions as bob; their request ids."""
    client = api(server, "bob")
    try:
        executions = [client.start_execution("t.bulk", flow, {"n": i} if flow == "batch" else {})
                      for i in range(count)]
        return [str(wait_until(lambda e=e: client.get_execution(e["id"]).get("requests"))[0]["id"])
                for e in executions]
    finally:
        client.close()


def pending_ids(browser: Any) -> list[str]:
    from selenium.webdriver.common.by import By

    return [box.get_attribute("value") for box in browser.find_elements(By.CSS_SELECTOR, "input[name=id]")]


def mark(browser: Any, ids: list[str]) -> None:
    for request_id in ids:
        box = by_id(browser, f"mark-{request_id}")
        if not box.is_selected():
            box.click()


def test_bulk_approve_twenty_with_one_shared_form(server, browser):
    from selenium.webdriver.support.ui import Select

    ids = start_many(server, "batch", 20)
    sign_in(browser, f"{server.url}/web/pending", server.tokens["alice"])
    client = api(server, "alice")
    try:
        console_order = [r["id"] for r in client.list_pending()]
    finally:
        client.close()
    assert pending_ids(browser) == console_order and set(ids) <= set(console_order)

    mark(browser, ids)
    click_and_wait(browser, "bulk-approve", "bulk-form")
    assert by_id(browser, "bulk-title").text == "Approve 20 requests"
    assert "20 × t.bulk.batch" in by_id(browser, "bulk-flows").text
    listed = by_id(browser, "bulk-list").get_attribute("textContent")
    assert all(f"batch: Payment {n}" in listed for n in range(20))  # the marked requests, one tap away
    assert by_id(browser, "confirm").text == "Approve 20"
    assert overflow(browser) == []  # a phone-wide window (390 px)
    # one of them is decided elsewhere (over the API, by carol) while alice fills the form
    carol = api(server, "carol")
    try:
        [taken] = carol.decide([ids[7]], "approve", inputs={"ok": "true"}, reason="done by phone")
    finally:
        carol.close()
    assert taken.outcome == "decided"

    click_and_wait(browser, "confirm", "error-ok")  # the shared form's required field, from the engine
    assert by_id(browser, "error-ok").text == "Missing required input:`ok`"
    assert by_id(browser, "confirm").text == "Approve 20"  # nothing decided, the marks kept
    Select(by_id(browser, "in-ok")).select_by_value("true")
    by_id(browser, "in-note").send_keys("batch run 42")
    by_id(browser, "decision-reason").send_keys("month-end payments")
    click_and_wait(browser, "confirm", "outcome")
    assert by_id(browser, "outcome").text == "Approved 19 of 20 requests"
    assert overflow(browser) == []
    for request_id in ids:
        row = by_id(browser, f"o-{request_id}")
        if request_id == ids[7]:
            assert row.get_attribute("data-outcome") == "already_decided"
            assert "already decided by carol" in row.text
        else:
            assert row.get_attribute("data-outcome") == "decided" and "approved" in row.text, row.text

    client = api(server, "alice")
    try:
        request = client.get_request(ids[0])
        assert request["state"] == "APPROVED"
        [decision] = request["decisions"]
        assert decision["inputs"] == {"ok": True, "note": "batch run 42"}
        assert decision["reason"] == "month-end payments" and decision["origin"] == "web 127.0.0.1"
        assert not set(ids) & {r["id"] for r in client.list_pending()}
    finally:
        client.close()
    by_id(browser, "back").click()
    wait_until(lambda: ids_present(browser, "nav-pending") and not set(ids) & set(pending_ids(browser)))


def test_different_forms_are_approved_one_group_at_a_time(server, browser):
    batch = start_many(server, "batch", 2)
    other = start_many(server, "other", 1)
    sign_in(browser, f"{server.url}/web/pending", server.tokens["alice"])
    mark(browser, [*batch, *other])
    click_and_wait(browser, "bulk-approve", "forms-differ")
    from selenium.webdriver.common.by import By

    groups = browser.find_elements(By.CSS_SELECTOR, "button.group")
    assert sorted(g.text for g in groups) == ["Approve these 1…", "Approve these 2…"]
    next(g for g in groups if g.text == "Approve these 1…").click()
    wait_until(lambda: ids_present(browser, "bulk-form"))
    assert by_id(browser, "bulk-title").text == "Approve 1 request"
    assert by_id(browser, "in-days").get_attribute("value") == "3"  # the default, prefilled
    click_and_wait(browser, "confirm", "outcome")
    assert by_id(browser, "state").text == "APPROVED"


def test_bulk_deny_follows_comment_required(server, browser):
    batch = start_many(server, "batch", 1)
    other = start_many(server, "other", 1)
    sign_in(browser, f"{server.url}/web/pending", server.tokens["alice"])
    mark(browser, [*batch, *other])
    click_and_wait(browser, "bulk-deny", "bulk-form")
    assert by_id(browser, "bulk-title").text == "Deny 2 requests"
    assert ids_present(browser, "reason-required")  # the strictest rule among them: ON_DENY
    click_and_wait(browser, "confirm", "error-reason")
    assert "commentRequired: ON_DENY" in by_id(browser, "error-reason").text
    by_id(browser, "decision-reason").send_keys("duplicates")
    click_and_wait(browser, "confirm", "outcome")
    assert by_id(browser, "outcome").text == "Denied 2 of 2 requests"


def test_nothing_marked_says_so(server, browser):
    start_many(server, "batch", 1)
    sign_in(browser, f"{server.url}/web/pending", server.tokens["alice"])
    click_and_wait(browser, "bulk-approve", "message")
    assert by_id(browser, "message").text == "Mark at least one request first."
    # the script's "mark all" box (hidden without the script) marks and clears every row
    assert by_id(browser, "mark-all-label").is_displayed()
    by_id(browser, "mark-all").click()
    assert pending_ids(browser) and all(by_id(browser, f"mark-{i}").is_selected() for i in pending_ids(browser))
    by_id(browser, "mark-all").click()
    assert not any(by_id(browser, f"mark-{i}").is_selected() for i in pending_ids(browser))


def test_unknown_ids_are_reported_not_grouped(server):
    import re

    import httpx

    [request_id] = start_many(server, "batch", 1)
    with httpx.Client(base_url=server.url, timeout=30.0, follow_redirects=True) as client:
        signed = client.post("/web/sign-in", data={"token": server.tokens["alice"], "next": "/web/pending"})
        csrf = re.search(r'name="csrf" value="([^"]+)"', signed.text).group(1)
        data = {"csrf": csrf, "step": "form", "verdict": "approve", "id": [request_id, "rnothere0000"],
                "in-ok": "true", "key": "bulk-page-key-1"}
        done = client.post("/web/bulk", data=data)
        assert done.status_code == 200 and "Approved 1 of 2 requests" in done.text
        assert 'id="o-rnothere0000" data-outcome="not_found"' in done.text
        unknown = client.post("/web/bulk", data={**data, "id": ["rnothere0000"], "key": "bulk-page-key-2"})
        assert unknown.status_code == 404 and "None of the marked requests is known here" in unknown.text
        assert client.get("/web/pending?page=abc").status_code == 200  # a hand-edited URL: the first page
        again = client.post("/web/bulk", data=data)  # the same page posted twice: the same answer
        assert "Approved 1 of 2 requests" in again.text and f'id="o-{request_id}" data-outcome="decided"' in again.text
