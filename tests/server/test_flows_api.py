"""Flows over the API through a real `signoff serve`: every endpoint (create, new revision,
show a revision, list revisions, validate, delete), invalid YAML with line numbers, a refused
non-editor, folder flows read-only, executions keeping their revision; then the CLI
(`flows push|revisions|show|delete`) through `--server`."""
from __future__ import annotations

import hashlib
import time
from pathlib import Path

from tests.server.conftest import issue_token, make_server, signoff

POLICY = """fourEyes: false
bindings:
  - role: editor
    subjects: [user:erin]
    namespaces: [company.finance, company.finance.*]
  - role: requester
    subjects: [user:erin, user:rita]
    namespaces: [company.finance, company.finance.*]
  - role: approver
    subjects: [user:alice]
    namespaces: [company.finance]
  - role: admin
    subjects: [user:root-admin]
    namespaces: ["*"]
"""

V1 = """id: vendor_onboarding
namespace: company.finance.vendors
description: Onboard a vendor
inputs:
  - id: vendor
    type: STRING
tasks:
  - id: review
    type: io.kestra.plugin.core.flow.Approval
    context:
      summary: "Onboard {{ inputs.vendor }}"
"""
V2 = V1.replace("description: Onboard a vendor", "description: Onboard a vendor (v2)") + """  - id: done
    type: io.kestra.plugin.core.log.Log
    message: "onboarded {{ inputs.vendor }}"
"""
BROKEN = """id: vendor_onboarding
namespace: company.finance.vendors
tasks:
  - id: review
    type: io.kestra.plugin.core.flow.Aproval
  - id: later
    type: io.kestra.plugin.core.log.Log
    mesage: hi
"""
YAML = {"Content-Type": "application/x-yaml"}


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_flows_over_the_api(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    server = make_server(tmp_path, policy=False, tokens=False, args=["--policy", str(policy)])
    for user in ("erin", "alice", "root-admin", "rita"):
        server.tokens[user] = issue_token(user, server.env)
    server.start()
    base = "/api/v1/flows/company.finance.vendors/vendor_onboarding"
    try:
        with server.client("erin") as erin, server.client("alice") as alice, server.client("root-admin") as root:
            # validate: every problem with line and column, 422; a valid text 200
            r = erin.post("/api/v1/flows/validate", content=BROKEN, headers=YAML)
            assert r.status_code == 422, r.text
            problems = r.json()["problems"]
            where = {(p["line"], p["col"]): p["message"] for p in problems}
            assert "Aproval" in where[(5, 11)] and "did you mean `message`" in where[(8, 5)], problems
            assert erin.post("/api/v1/flows/validate", content=V1, headers=YAML).json() == {"valid": True,
                                                                                          "problems": []}
            r = erin.post("/api/v1/flows/validate", content="tasks: [", headers=YAML)
            assert r.status_code == 422 and r.json()["problems"][0]["line"] >= 1, r.text

            # create: a non-editor is refused and audited; invalid YAML is a 422 with lines
            r = alice.post("/api/v1/flows", content=V1, headers=YAML)
            assert r.status_code == 403 and "alice may not edit" in r.json()["detail"], r.text
            denied = root.get("/api/v1/audit", params={"q": "action:policy.denied actor:alice"}).json()["items"]
            assert denied and denied[0]["data"]["operation"] == "edit"
            r = erin.post("/api/v1/flows", content=BROKEN, headers=YAML)
            assert r.status_code == 422 and "flow.yaml:5:11" in r.json()["detail"], r.text
            r = erin.post("/api/v1/flows", content=V1, headers=YAML)
            assert r.status_code == 201, r.text
            created = r.json()
            assert created["revision"] == 1 and created["origin"] == "api" and created["source"] == V1
            assert erin.post("/api/v1/flows", content=V1, headers=YAML).status_code == 409

            # it runs like any flow
            r = erin.post("/api/v1/executions", json={"namespace": "company.finance.vendors",
                                                      "flow_id": "vendor_onboarding", "inputs": {"vendor": "ACME"}})
            assert r.status_code == 201 and r.json()["revision"] == 1, r.text
            first_execution = r.json()["id"]

            # update: a new revision; same text again changes nothing; the id cannot change
            r = erin.put(base, content=V2, headers=YAML)
            assert r.status_code == 200 and r.json()["revision"] == 2 and r.json()["changed"] is True, r.text
            r = erin.put(base, content=V2, headers=YAML)
            assert r.json()["revision"] == 2 and r.json()["changed"] is False
            r = erin.put("/api/v1/flows/company.finance.vendors/other", content=V2, headers=YAML)
            assert r.status_code == 400 and "cannot change" in r.json()["detail"], r.text
            assert alice.put(base, content=V2, headers=YAML).status_code == 403

            # show and revisions
            assert erin.get(base).json()["source"] == V2
            assert erin.get(base, params={"revision": 1}).json()["source"] == V1
            assert erin.get(base, params={"revision": 7}).status_code == 404
            revisions = erin.get(base + "/revisions").json()["items"]
            assert [(r["revision"], r["sha256"], r["origin"], r["current"]) for r in revisions] == [
                (1, _sha(V1), "api", False), (2, _sha(V2), "api", True)]

            # folder flows are read-only through the API
            payment = (tmp_path / "flows" / "payment.yaml").read_text()
            r = root.put("/api/v1/flows/company.finance/payment", content=payment, headers=YAML)
            assert r.status_code == 409 and "read-only" in r.json()["detail"], r.text
            assert root.delete("/api/v1/flows/company.finance/payment").status_code == 409
            assert root.post("/api/v1/flows", content=payment, headers=YAML).status_code == 409

            # delete: not startable any more; the execution keeps its revision
            assert alice.delete(base).status_code == 403
            r = erin.delete(base)
            assert r.status_code == 200 and r.json() == {"namespace": "company.finance.vendors",
                                                         "id": "vendor_onboarding", "revision": 2, "deleted": True}
            assert erin.get(base).status_code == 404
            r = erin.post("/api/v1/executions", json={"namespace": "company.finance.vendors",
                                                      "flow_id": "vendor_onboarding", "inputs": {"vendor": "B"}})
            assert r.status_code == 404, r.text
            # the server's runner advances the execution in the background: wait for its pause
            deadline = time.monotonic() + 30
            kept = erin.get(f"/api/v1/executions/{first_execution}").json()
            while kept["state"] == "CREATED" and time.monotonic() < deadline:
                time.sleep(0.1)
                kept = erin.get(f"/api/v1/executions/{first_execution}").json()
            assert kept["revision"] == 1 and kept["state"] == "PAUSED"
            assert erin.delete(base).status_code == 404

            # every change is audited with the YAML's hash
            events = root.get("/api/v1/audit", params={"q": "action:flow.*", "limit": 10}).json()["items"]
            assert [(e["action"], e["actor"], e["data"]["revision"], e["data"]["sha256"]) for e in events] == [
                ("flow.deleted", "erin", 2, _sha(V2)), ("flow.updated", "erin", 2, _sha(V2)),
                ("flow.created", "erin", 1, _sha(V1))]

        # the CLI through --server
        token_file = tmp_path / "erin.token"
        token_file.write_text(server.tokens["erin"])
        token_file.chmod(0o600)
        remote = ["--server", server.url, "--token-file", str(token_file)]
        v3 = tmp_path / "v3.yaml"
        v3.write_text(V1)
        broken = tmp_path / "broken.yaml"
        broken.write_text(BROKEN)
        done = signoff([*remote, "flows", "push", str(v3), str(broken)], server.env)
        assert done.returncode == 2, done
        assert f"{broken}:5:11:" in done.stderr and f"{broken}:8:5:" in done.stderr, done.stderr
        done = signoff([*remote, "flows", "push", str(v3)], server.env)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == f"company.finance.vendors.vendor_onboarding  revision 1  from {v3}"
        done = signoff([*remote, "flows", "revisions", "company.finance.vendors", "vendor_onboarding", "--json"],
                       server.env)
        assert done.returncode == 0 and [r["current"] for r in __import__("json").loads(done.stdout)] == [True, False]
        done = signoff([*remote, "flows", "show", "company.finance.vendors", "vendor_onboarding", "--revision", "2"],
                       server.env)
        assert done.returncode == 0 and done.stdout == V2, done
        done = signoff([*remote, "flows", "delete", "company.finance", "payment"], server.env)
        assert done.returncode == 1 and "read-only through the API" in done.stderr, done.stderr
        done = signoff([*remote, "flows", "delete", "company.finance.vendors", "vendor_onboarding"], server.env)
        assert done.returncode == 0 and "deleted (last revision 1)" in done.stdout, done
    finally:
        assert server.stop() == 0, server.log
