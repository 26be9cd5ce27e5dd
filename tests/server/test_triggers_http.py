"""Triggers through a real `signoff serve`: the webhook on Kestra's path (right key, wrong key,
a body the flow uses), the trigger list and switch over the API and through `--server`."""
from __future__ import annotations

import time
from pathlib import Path

from tests.server.conftest import fresh_address, make_server, signoff

WEBHOOK_FLOW = """id: intake
namespace: company.finance
inputs:
  - id: vendor
    type: STRING
tasks:
  - id: check
    type: io.kestra.plugin.core.flow.Pause
    context:
      summary: "Pay {{ inputs.vendor }} {{ trigger.body.amount }} ({{ trigger.parameters.ref[0] }})"
triggers:
  - id: from_erp
    type: io.kestra.plugin.core.trigger.Webhook
    key: k3y-of-the-erp
    inputs:
      vendor: "{{ trigger.body.vendor }}"
"""


def _wait_pending(client, execution_id: str, timeout: float = 20) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        execution = client.get(f"/api/v1/executions/{execution_id}").json()
        if execution["requests"]:
            return execution
        time.sleep(0.05)
    raise AssertionError(f"execution {execution_id} opened no request")


def test_webhook_through_a_real_server(tmp_path: Path) -> None:
    server = make_server(tmp_path)
    (tmp_path / "flows" / "intake.yaml").write_text(WEBHOOK_FLOW)
    server.start()
    try:
        url = "/api/v1/executions/webhook/company.finance/intake/k3y-of-the-erp"
        with server.client() as anonymous:  # no token: the key is the secret
            r = anonymous.post(url + "?ref=INV-7", json={"vendor": "ACME <b>", "amount": 120.5},
                               headers={"X-Source": "erp", "Authorization": "Bearer not-kept"})
            assert r.status_code == 200, r.text
            started = r.json()
            assert started["namespace"] == "company.finance" and started["flow_id"] == "intake"
            assert started["started_by"] == "trigger:company.finance.intake.from_erp"
        with server.client("root-admin") as admin:
            execution = _wait_pending(admin, started["id"])
            assert execution["inputs"] == {"vendor": "ACME <b>"}
            variables = execution["origin"]["variables"]
            assert variables["body"] == {"vendor": "ACME <b>", "amount": 120.5}
            assert variables["headers"]["x-source"] == ["erp"] and "authorization" not in variables["headers"]
            assert variables["parameters"] == {"ref": ["INV-7"]}
            [request] = execution["requests"]
            assert request["summary"] == "Pay ACME <b> 120.5 (INV-7)"
            events = admin.get("/api/v1/audit", params={"q": f"execution:{started['id']} action:execution.started"})
            [event] = events.json()["items"]
            assert event["actor"] == "trigger:company.finance.intake.from_erp"
            assert event["data"]["origin"]["type"] == "io.kestra.plugin.core.trigger.Webhook"

            # a wrong key, an unknown flow: the same 404, counted like failed authentications
            address = fresh_address()
            with server.client(address=address) as stranger:
                for path in ("company.finance/intake/wrong-key-123", "company.finance/nope/k3y-of-the-erp"):
                    r = stranger.post(f"/api/v1/executions/webhook/{path}", json={"vendor": "x"})
                    assert r.status_code == 404 and r.json()["detail"] == "no webhook at this address", r.text
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                failures = admin.get("/api/v1/audit", params={"q": "action:auth.failed"}).json()["items"]
                mine = [e for e in failures if e["data"]["client"] == address]
                if mine:  # the first failure is audited at once, the next ones in batches
                    break
                time.sleep(0.2)
            assert mine and mine[0]["data"]["reason"] == "webhook_key", failures
            # GET works too (Kestra accepts both); body-less: the flow's input is missing -> 422
            r = admin.get(url)
            assert r.status_code == 422 and "vendor" in r.text, r.text

            # the switch, over HTTP: admins only; disabled answers 404 like a wrong key
            [listed] = [t for t in admin.get("/api/v1/triggers").json()["items"] if t["flow_id"] == "intake"]
            assert listed["last_execution_id"] == started["id"] and "k3y" not in str(listed)
            with server.client("alice") as alice:
                r = alice.post("/api/v1/triggers/company.finance/intake/from_erp/disable")
                assert r.status_code == 403, r.text
            r = admin.post("/api/v1/triggers/company.finance/intake/from_erp/disable")
            assert r.status_code == 200 and r.json()["disabled"] == "operator", r.text
            with server.client(address=fresh_address()) as anonymous:
                assert anonymous.post(url, json={"vendor": "late"}).status_code == 404

        # the CLI through --server: list and enable again
        token_file = tmp_path / "token"
        token_file.write_text(server.tokens["root-admin"])
        token_file.chmod(0o600)
        remote = ["--server", server.url, "--token-file", str(token_file)]
        done = signoff([*remote, "triggers", "list"], server.env)
        assert done.returncode == 0, done.stderr
        assert "company.finance.intake" in done.stdout and "off (operator)" in done.stdout
        done = signoff([*remote, "triggers", "enable", "company.finance", "intake", "from_erp"], server.env)
        assert done.returncode == 0 and "enabled" in done.stdout, done.stderr
        done = signoff([*remote, "triggers", "enable", "company.finance", "intake", "nope"], server.env)
        assert done.returncode == 1 and "no trigger `nope`" in done.stderr, done.stderr
        with server.client() as anonymous:
            assert anonymous.post(url, json={"vendor": "again"}).status_code == 200
    finally:
        assert server.stop() == 0, server.log
