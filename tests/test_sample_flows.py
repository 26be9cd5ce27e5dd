"""The sample flows, end to end: each one is started through the ApprovalService on a real
SQLite data directory with a FakeClock, its approval request is checked (summary and context
rendered from the inputs, form fields, rules), decided, and the finished execution, its task
runs, outputs, logs and what the local HTTP listener received are asserted."""
from __future__ import annotations

import base64
from datetime import timedelta
from pathlib import Path

import pytest

from signoff.engine.clock import FakeClock
from signoff.engine.core import Engine
from signoff.engine.errors import InvalidInputs
from signoff.engine.flows.loader import load_flow_dirs
from signoff.engine.identity import Identity
from signoff.engine.service import ApprovalService

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_flows"
START = "2026-01-05T09:00:00Z"

ALICE = Identity("alice", ("finance",))       # requester (finance clerk)
BOB = Identity("bob", ("finance",))
CAROL = Identity("carol", ("finance", "cfo"))
MALLORY = Identity("mallory", ("engineering",))  # in no assigned group
SAM = Identity("sam", ("security",))
DAVE = Identity("dave", ("platform-oncall",))
DANA = Identity("dana", ("data-stewards",))
MIA = Identity("mia", ("moderators",))
RITA = Identity("rita", ("release-managers",))

NEW_FLOWS = {
    ("company.finance", "payment_approval"),
    ("company.security", "access_request"),
    ("company.platform", "config_change"),
    ("company.data", "data_deletion"),
    ("company.trust", "content_moderation"),
    ("company.platform", "prod_deploy"),
}


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def service(tmp_path, clock):
    engine = Engine(tmp_path / "data", [SAMPLES], clock=clock)
    svc = ApprovalService(engine)
    try:
        yield svc
    finally:
        engine.close()


def pending_for(service: ApprovalService, execution: dict) -> list[dict]:
    return [r for r in service.list_pending(ALICE) if r["execution_id"] == execution["id"]]


def only_request(service: ApprovalService, execution: dict) -> dict:
    pending = pending_for(service, execution)
    assert len(pending) == 1, pending
    return service.get_request(ALICE, pending[0]["id"])


def runs(execution: dict) -> dict[str, dict]:
    return {r["path"]: r for r in execution["task_runs"]}


def log_messages(execution: dict) -> list[tuple[str, str, str]]:
    return [(log["path"], log["level"], log["message"]) for log in execution["logs"]]


def one_outcome(outcomes) -> object:
    assert len(outcomes) == 1, outcomes
    return outcomes[0]


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


# --------------------------------------------------------------------------- loading


def _pausing_tasks(tasks):
    for task in tasks:
        if task.short_type in ("Pause", "Approval"):
            yield task
        for block in task.blocks.values():
            yield from _pausing_tasks(block)


def test_sample_flows_load_without_problems():
    flows = load_flow_dirs([SAMPLES])
    assert [str(p) for p in flows.problems] == []
    assert NEW_FLOWS | {("hr.operations", "vacation_approval")} <= set(flows.flows)


@pytest.mark.parametrize("key", sorted(NEW_FLOWS), ids=lambda k: k[1])
def test_sample_flow_is_documented_and_gives_approvers_context(key):
    flow = load_flow_dirs([SAMPLES]).flows[key]
    assert flow.description and len(flow.description.strip()) > 40
    assert flow.labels.get("team") and flow.labels.get("use-case")
    assert flow.inputs and all(spec.description for spec in flow.inputs)
    pausing = list(_pausing_tasks(flow.tasks))
    assert pausing
    for task in pausing:
        context = task.props["context"]
        assert set(context) == {"summary", "details", "impact"}
        assert all("{{ inputs." in context[k] for k in ("summary", "details", "impact")), task.id


def test_seed_flow_is_untouched():
    seed = (SAMPLES / "vacation_approval.yaml").read_bytes()
    assert seed == (ROOT / "tests" / "data" / "flows_good" / "vacation_approval.yaml").read_bytes()


# --------------------------------------------------------------------------- payment_approval

PAYMENT = {"currency": "EUR", "payee": "ACME Office Supplies GmbH", "iban": "DE89370400440532013000",
           "reference": "INV-2026-0042"}


@pytest.fixture
def payments_api(service, http_listener):
    service.kv_set(ALICE, "company.finance", "PAYMENTS_API", http_listener.url + "/pay/v1")
    http_listener.respond("/pay/v1/payments", 201, {"id": "pmt_1", "status": "queued"})
    return http_listener


def test_payment_below_100_is_auto_approved_and_submitted(service, payments_api):
    execution = service.start_execution(ALICE, "company.finance", "payment_approval",
                                        {**PAYMENT, "amount": "42.50"})

    assert execution["state"] == "SUCCESS"
    assert pending_for(service, execution) == []
    [summary] = execution["requests"]
    assert (summary["task_id"], summary["state"], summary["required"]) == ("single_approval", "APPROVED", 1)
    request = service.get_request(ALICE, summary["id"])
    assert request["summary"] == "Pay 42.5 EUR to ACME Office Supplies GmbH"
    assert [(d["by"], d["verdict"], d["automatic"], d["origin"]) for d in request["decisions"]] == [
        ("signoff", "approve", True, "auto")]
    assert request["result"]["automatic"] is True

    by_path = runs(execution)
    assert by_path["route_by_amount"]["state"] == "SUCCESS"
    assert "route_by_amount/dual_approval" not in by_path
    approval = by_path["route_by_amount/single_approval"]
    assert approval["state"] == "SUCCESS"
    assert approval["outputs"]["decision"] == "APPROVED"
    assert approval["outputs"]["auto"] is True
    assert by_path["submit_payment"]["outputs"]["code"] == 201

    [sent] = payments_api.requests_to("/pay/v1/payments")
    assert sent.method == "POST"
    assert sent.headers["Idempotency-Key"] == f"{execution['id']}:submit_payment:1"
    assert sent.json["amount"] == 42.5
    assert {k: sent.json[k] for k in ("currency", "payee", "iban", "reference", "execution")} == {
        **{k: PAYMENT[k] for k in ("currency", "payee", "iban", "reference")}, "execution": execution["id"]}
    assert [d["by"] for d in sent.json["approved_by"]] == ["signoff"]
    assert log_messages(execution) == [
        ("log_result", "INFO", "Payment of 42.5 EUR to ACME Office Supplies GmbH (INV-2026-0042) submitted: HTTP 201")]


def test_payment_under_threshold_needs_one_finance_approver(service, payments_api):
    execution = service.start_execution(ALICE, "company.finance", "payment_approval",
                                        {**PAYMENT, "amount": "2500", "currency": "USD"})
    assert execution["state"] == "PAUSED"
    assert payments_api.requests == []

    request = only_request(service, execution)
    assert (request["task_id"], request["kind"], request["required"], request["approvals"]) == (
        "single_approval", "approval", 1, 0)
    assert request["summary"] == "Pay 2500.0 USD to ACME Office Supplies GmbH"
    assert request["due_at"] is None
    context = request["context"]
    assert context["summary"] == request["summary"]
    assert "| Payee | ACME Office Supplies GmbH |" in context["details"]
    assert "| IBAN | `DE89370400440532013000` |" in context["details"]
    assert "| Amount | **2500.0 USD** |" in context["details"]
    assert "| Reference | INV-2026-0042 |" in context["details"]
    assert context["impact"].startswith("Approving releases 2500.0 USD to ACME Office Supplies GmbH")
    assert context["inputs"] == {**PAYMENT, "currency": "USD", "amount": 2500.0}
    assert context["labels"] == {"team": "finance", "use-case": "payments", "risk": "high"}
    assert request["form"] == []
    assert request["rules"]["required"] == 1
    assert request["rules"]["assignment"] == {"groups": ["finance"]}

    # someone outside finance may not decide it
    refused = one_outcome(service.approve(MALLORY, [request["id"]]))
    assert refused.outcome == "not_eligible"
    assert "assigned to group finance" in refused.message
    assert service.get_execution(ALICE, execution["id"])["state"] == "PAUSED"

    outcome = one_outcome(service.approve(BOB, [request["id"]], reason="matches PO-7781"))
    assert (outcome.outcome, outcome.state) == ("decided", "APPROVED")

    done = service.get_execution(ALICE, execution["id"])
    assert done["state"] == "SUCCESS"
    approval = runs(done)["route_by_amount/single_approval"]["outputs"]
    assert (approval["decision"], approval["auto"], approval["by"], approval["comment"]) == (
        "APPROVED", False, "bob", "matches PO-7781")
    [sent] = payments_api.requests_to("/pay/v1/payments")
    assert (sent.json["amount"], sent.json["currency"]) == (2500.0, "USD")
    assert [(d["by"], d["verdict"]) for d in sent.json["approved_by"]] == [("bob", "approve")]
    assert done["requests"][0]["state"] == "APPROVED"


def test_large_payment_takes_the_dual_control_branch(service, payments_api, clock):
    execution = service.start_execution(ALICE, "company.finance", "payment_approval",
                                        {**PAYMENT, "amount": "25000", "currency": "GBP"})
    assert execution["state"] == "PAUSED"

    request = only_request(service, execution)
    assert (request["task_id"], request["required"], request["approvals"]) == ("dual_approval", 2, 0)
    assert request["summary"] == "Pay 25000.0 GBP to ACME Office Supplies GmbH (dual control)"
    assert request["due_at"] == "2026-01-05T13:00:00.000000Z"  # timeout: PT4H
    rules = request["rules"]
    assert rules["required"] == 2
    assert rules["assignment"] == {"groups": ["finance"]}
    assert rules["expireBehavior"] == "ESCALATE"
    assert rules["escalation"] == {"assignment": {"groups": ["cfo"]}, "timeout": "PT2H"}
    assert rules["reminders"] == ["PT1H", "PT15M"]
    assert rules["commentRequired"] == "ON_DENY"
    details = request["context"]["details"]
    assert details.startswith("### Outgoing payment — dual control\n")
    assert "| Amount | **25000.0 GBP** |" in details
    assert "dual-control threshold of\n10000: **two** members of `finance` must approve." in details
    assert "cannot be recalled" in request["context"]["impact"]

    first = one_outcome(service.approve(BOB, [request["id"]]))
    assert (first.outcome, first.state) == ("decided", "PENDING")
    assert service.get_execution(ALICE, execution["id"])["state"] == "PAUSED"
    assert service.get_request(ALICE, request["id"])["approvals"] == 1
    assert payments_api.requests == []

    again = one_outcome(service.approve(BOB, [request["id"]]))
    assert again.outcome == "already_decided"

    second = one_outcome(service.approve(CAROL, [request["id"]]))
    assert (second.outcome, second.state) == ("decided", "APPROVED")
    done = service.get_execution(ALICE, execution["id"])
    assert done["state"] == "SUCCESS"
    assert runs(done)["route_by_amount/dual_approval"]["outputs"]["decision"] == "APPROVED"
    [sent] = payments_api.requests_to("/pay/v1/payments")
    assert sent.json["amount"] == 25000.0
    assert [d["by"] for d in sent.json["approved_by"]] == ["bob", "carol"]


def test_denied_payment_needs_a_comment_and_sends_nothing(service, payments_api):
    execution = service.start_execution(ALICE, "company.finance", "payment_approval",
                                        {**PAYMENT, "amount": "18000"})
    request = only_request(service, execution)

    no_comment = one_outcome(service.deny(BOB, [request["id"]]))
    assert no_comment.outcome == "invalid_inputs"
    assert no_comment.errors == {
        "reason": "A comment is required to deny this request (commentRequired: ON_DENY)"}

    denied = one_outcome(service.deny(BOB, [request["id"]], reason="duplicate of INV-2026-0041"))
    assert (denied.outcome, denied.state) == ("decided", "DENIED")
    done = service.get_execution(ALICE, execution["id"])
    assert done["state"] == "KILLED"
    assert done["error"] == "denied by bob: duplicate of INV-2026-0041"
    assert runs(done)["route_by_amount/dual_approval"]["state"] == "KILLED"
    assert "submit_payment" not in runs(done)
    assert payments_api.requests == []


def test_payment_refuses_invalid_inputs_with_every_message(service):
    with pytest.raises(InvalidInputs) as info:
        service.start_execution(ALICE, "company.finance", "payment_approval",
                                {"amount": "0", "currency": "JPY", "payee": "X", "iban": "de89 3704",
                                 "reference": "INV#1"})
    assert info.value.errors == {
        "amount": "Invalid input for `amount`, it must be more than `0.01`, but received `0`",
        "currency": "Invalid input for `currency`, it must match the values `[EUR, USD, GBP]`, but received `JPY`",
        "payee": "Invalid input for `payee`, it must match the pattern `^\\S.{1,119}$`, but received `X`",
        "iban": "Invalid input for `iban`, it must match the pattern `^[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}$`, "
                "but received `de89 3704`",
        "reference": "Invalid input for `reference`, it must match the pattern `^[A-Za-z0-9][A-Za-z0-9/ -]{2,34}$`, "
                     "but received `INV#1`",
    }
    with pytest.raises(InvalidInputs) as info:
        service.start_execution(ALICE, "company.finance", "payment_approval", {"amount": "lots"})
    assert info.value.errors == {
        "amount": "Invalid input for `amount`, it must be a number, but received `lots`",
        "payee": "Missing required input:`payee`",
        "iban": "Missing required input:`iban`",
        "reference": "Missing required input:`reference`",
    }
    assert service.list_executions(ALICE) == []


# --------------------------------------------------------------------------- access_request

ACCESS = {"user": "jdoe", "system": "billing-db", "role": "write",
          "justification": "INC-4411: fix corrupted invoice rows for customer 9921"}


@pytest.fixture
def iam_api(service, http_listener):
    service.kv_set(ALICE, "company.security", "IAM_API", http_listener.url + "/iam")
    http_listener.respond("/iam/grants", 201, {"grant": "g-1"})
    return http_listener


def test_access_request_approved_grants_access(service, iam_api):
    execution = service.start_execution(ALICE, "company.security", "access_request",
                                        {**ACCESS, "duration": "PT72H"})
    assert execution["state"] == "PAUSED"
    assert execution["inputs"]["duration"] == "P3D"

    request = only_request(service, execution)
    assert (request["task_id"], request["kind"]) == ("security_review", "pause")
    assert request["summary"] == "WRITE access to billing-db for jdoe (P3D)"
    assert "- **User:** `jdoe`" in request["context"]["details"]
    assert "> INC-4411: fix corrupted invoice rows for customer 9921" in request["context"]["details"]
    assert request["context"]["impact"].startswith("If approved, `jdoe` gets write access to billing-db\nfor P3D")
    assert [(f["id"], f["type"], f.get("required", True)) for f in request["form"]] == [
        ("approved", "BOOLEAN", True), ("note", "STRING", False)]
    assert request["rules"]["assignment"] == {"groups": ["security"]}

    # the form is validated on the server side
    missing = one_outcome(service.approve(SAM, [request["id"]], {}))
    assert missing.outcome == "invalid_inputs"
    assert missing.errors == {"approved": "Missing required input:`approved`"}
    typo = one_outcome(service.approve(SAM, [request["id"]], {"approved": "yep"}))
    assert typo.errors == {"approved": "Invalid input for `approved`, it must be `true` or `false` "
                                       "(or yes/no, 1/0), but received `yep`"}
    assert service.validate(SAM, request["id"], {"approved": "true"}) == {}

    outcome = one_outcome(service.approve(SAM, [request["id"]], {"approved": "true", "note": "until INC closed"}))
    assert (outcome.outcome, outcome.state) == ("decided", "APPROVED")

    done = service.get_execution(ALICE, execution["id"])
    assert done["state"] == "SUCCESS"
    review = done["outputs"]["security_review"]
    assert review["onResume"] == {"approved": True, "note": "until INC closed"}
    assert review["resumed"]["by"] == "sam"
    by_path = runs(done)
    assert by_path["apply_decision"]["state"] == "SUCCESS"
    assert by_path["apply_decision/grant_access"]["state"] == "SUCCESS"
    assert "apply_decision/log_rejection" not in by_path
    [sent] = iam_api.requests_to("/iam/grants")
    assert sent.method == "POST"
    assert sent.json == {"user": "jdoe", "system": "billing-db", "role": "write", "expiresAfter": "P3D",
                         "approvedBy": "sam", "note": "until INC closed"}
    assert log_messages(done) == [("apply_decision/log_grant", "INFO",
                                   "Granted write on billing-db to jdoe for P3D (approved by sam)")]


def test_access_request_rejected_logs_and_grants_nothing(service, iam_api):
    execution = service.start_execution(ALICE, "company.security", "access_request",
                                        {**ACCESS, "role": "admin"})
    assert execution["inputs"]["duration"] == "P7D"  # the default
    request = only_request(service, execution)
    assert request["summary"] == "ADMIN access to billing-db for jdoe (P7D)"

    one_outcome(service.approve(SAM, [request["id"]], {"approved": "no", "note": "write access is enough"}))
    done = service.get_execution(ALICE, execution["id"])
    assert done["state"] == "SUCCESS"
    by_path = runs(done)
    assert "apply_decision/grant_access" not in by_path
    assert by_path["apply_decision/log_rejection"]["state"] == "SUCCESS"
    assert log_messages(done) == [(
        "apply_decision/log_rejection", "WARN",
        "Access request rejected: admin on billing-db for jdoe by sam: write access is enough")]
    assert iam_api.requests == []


def test_access_request_denied_kills_the_execution(service, iam_api):
    execution = service.start_execution(ALICE, "company.security", "access_request", ACCESS)
    request = only_request(service, execution)
    outcome = one_outcome(service.deny(SAM, [request["id"]], reason="use the break-glass account"))
    assert (outcome.outcome, outcome.state) == ("decided", "DENIED")
    done = service.get_execution(ALICE, execution["id"])
    assert done["state"] == "KILLED"
    assert "apply_decision" not in runs(done)
    assert iam_api.requests == []


def test_access_request_refuses_invalid_inputs(service):
    with pytest.raises(InvalidInputs) as info:
        service.start_execution(ALICE, "company.security", "access_request",
                                {"user": "Bob Smith", "system": "mainframe", "role": "root",
                                 "justification": "because", "duration": "P31D"})
    assert info.value.errors == {
        "user": "Invalid input for `user`, it must match the pattern `^[a-z][a-z0-9._-]{1,31}$`, "
                "but received `Bob Smith`",
        "system": "Invalid input for `system`, it must match the values "
                  "`[billing-db, crm, data-warehouse, kubernetes-prod, vpn]`, but received `mainframe`",
        "role": "Invalid input for `role`, it must match the values `[read, write, admin]`, but received `root`",
        "justification": "Invalid input for `justification`, it must match the pattern `^[\\s\\S]{20,500}$`, "
                         "but received `because`",
        "duration": "Invalid input for `duration`, it must be less than `P30D`, but received `P31D`",
    }
    with pytest.raises(InvalidInputs) as info:
        service.start_execution(ALICE, "company.security", "access_request", {**ACCESS, "duration": "PT30M"})
    assert info.value.errors == {
        "duration": "Invalid input for `duration`, it must be more than `PT1H`, but received `PT30M`"}


# --------------------------------------------------------------------------- config_change

CHANGE = {"service": "checkout", "key": "payments.retry.max", "old_value": "3", "new_value": "5",
          "ticket": "CHG-1042"}


@pytest.fixture
def slack(http_listener, monkeypatch):
    monkeypatch.setenv("SECRET_SLACK_PLATFORM_WEBHOOK", b64(http_listener.url + "/hooks/platform"))
    return http_listener


def test_config_change_approved_applies_the_change(service, slack):
    execution = service.start_execution(ALICE, "company.platform", "config_change", CHANGE)
    assert execution["state"] == "PAUSED"

    request = only_request(service, execution)
    assert request["summary"] == "CHG-1042: set payments.retry.max on checkout (production)"
    assert "```diff\n- payments.retry.max = 3\n+ payments.retry.max = 5\n```" in request["context"]["details"]
    assert "**Service:** `checkout` in **production**" in request["context"]["details"]
    assert request["context"]["impact"].startswith("Approving applies the new value to checkout in production")
    assert [(f["id"], f["type"], f["values"], f["defaults"]) for f in request["form"]] == [
        ("window", "SELECT", ["now", "next-maintenance-window"], "now")]
    assert request["rules"]["commentRequired"] == "ON_DENY"
    assert request["rules"]["denyBehavior"] == "CONTINUE"
    assert request["rules"]["decisions"] == {"approve": "Apply change", "deny": "Reject and roll back"}

    bad = one_outcome(service.approve(DAVE, [request["id"]], {"window": "friday"}))
    assert bad.errors == {"window": "Invalid input for `window`, it must match the values "
                                    "`[now, next-maintenance-window]`, but received `friday`"}

    outcome = one_outcome(service.approve(DAVE, [request["id"]], {"window": "next-maintenance-window"}))
    assert outcome.state == "APPROVED"
    done = service.get_execution(ALICE, execution["id"])
    assert done["state"] == "SUCCESS"
    review = done["outputs"]["change_review"]
    assert (review["decision"], review["by"], review["inputs"]) == (
        "APPROVED", "dave", {"window": "next-maintenance-window"})
    apply = runs(done)["apply_change"]
    assert apply["state"] == "SUCCESS"
    assert apply["outputs"] == {"exitCode": 0, "vars": {"applied": True}}
    assert "change_review/onDeny/rollback_notice" not in runs(done)
    assert ("apply_change", "INFO", "applying payments.retry.max=5 to checkout (next-maintenance-window)") \
        in log_messages(done)
    assert log_messages(done)[-1] == ("log_result", "INFO", "CHG-1042 applied by dave")
    assert slack.requests == []


def test_config_change_denied_posts_rollback_notice_and_continues(service, slack):
    execution = service.start_execution(ALICE, "company.platform", "config_change",
                                        {k: v for k, v in CHANGE.items() if k != "old_value"})
    request = only_request(service, execution)
    assert "- payments.retry.max = (unset)" in request["context"]["details"]

    no_comment = one_outcome(service.deny(DAVE, [request["id"]]))
    assert no_comment.outcome == "invalid_inputs"
    assert service.get_request(ALICE, request["id"])["state"] == "PENDING"

    outcome = one_outcome(service.deny(DAVE, [request["id"]], reason="conflicts with the freeze"))
    assert (outcome.outcome, outcome.state) == ("decided", "DENIED")

    done = service.get_execution(ALICE, execution["id"])
    assert done["state"] == "SUCCESS"  # denyBehavior: CONTINUE
    by_path = runs(done)
    assert by_path["change_review"]["outputs"]["decision"] == "DENIED"
    assert by_path["change_review"]["outputs"]["comment"] == "conflicts with the freeze"
    assert by_path["change_review/onDeny/rollback_notice"]["state"] == "SUCCESS"
    assert by_path["apply_change"]["state"] == "SKIPPED"
    assert log_messages(done)[-1] == ("log_result", "INFO", "CHG-1042 rejected by dave")
    [notice] = slack.requests_to("/hooks/platform")
    assert notice.method == "POST"
    assert notice.json == {
        "channel": "#platform-changes",
        "text": "Change CHG-1042 rejected by dave: conflicts with the freeze. payments.retry.max on checkout "
                "stays at (unset).",
    }


def test_config_change_refuses_invalid_inputs(service):
    with pytest.raises(InvalidInputs) as info:
        service.start_execution(ALICE, "company.platform", "config_change",
                                {"service": "Checkout", "environment": "qa", "key": "1bad", "ticket": "JIRA-1"})
    assert info.value.errors == {
        "service": "Invalid input for `service`, it must match the pattern `^[a-z][a-z0-9-]{1,62}$`, "
                   "but received `Checkout`",
        "environment": "Invalid input for `environment`, it must match the values `[staging, production]`, "
                       "but received `qa`",
        "key": "Invalid input for `key`, it must match the pattern `^[A-Za-z][A-Za-z0-9_.]{0,127}$`, "
               "but received `1bad`",
        "new_value": "Missing required input:`new_value`",
        "ticket": "Invalid input for `ticket`, it must match the pattern `^CHG-[0-9]{1,8}$`, but received `JIRA-1`",
    }


# --------------------------------------------------------------------------- data_deletion

DELETION = {"dataset": "analytics.events_2019", "rows": "182340", "reason": "retention-policy",
            "filter": "created_at < '2020-01-01'"}


def test_data_deletion_request_is_cancelled_after_24_hours(service, clock):
    execution = service.start_execution(ALICE, "company.data", "data_deletion", DELETION)
    assert execution["state"] == "PAUSED"
    request = only_request(service, execution)
    assert request["summary"] == "Delete 182340 rows from analytics.events_2019 (retention-policy)"
    assert request["due_at"] == "2026-01-06T09:00:00.000000Z"
    assert request["rules"]["expireBehavior"] == "CANCEL"
    assert "- **Predicate:** `created_at < '2020-01-01'`" in request["context"]["details"]
    assert "within 24 hours the request is cancelled" in request["context"]["impact"]

    clock.advance(timedelta(hours=23, minutes=59))
    service.tick()
    assert service.get_execution(ALICE, execution["id"])["state"] == "PAUSED"
    assert service.get_request(ALICE, request["id"])["state"] == "PENDING"

    clock.advance(timedelta(minutes=2))
    service.tick()
    done = service.get_execution(ALICE, execution["id"])
    assert done["state"] == "CANCELLED"
    assert done["ended_at"] == "2026-01-06T09:01:00.000000Z"
    assert service.get_request(ALICE, request["id"])["state"] == "EXPIRED"
    assert runs(done)["steward_confirmation"]["state"] == "KILLED"
    assert "delete_rows" not in runs(done)
    assert pending_for(service, execution) == []
    # a late decision finds the request already closed
    late = one_outcome(service.approve(DANA, [request["id"]], {"backup_verified": "true", "backup_id": "snap-1"}))
    assert late.outcome == "already_decided"


def test_data_deletion_approved_runs_the_deletion(service):
    execution = service.start_execution(ALICE, "company.data", "data_deletion", DELETION)
    request = only_request(service, execution)
    assert [(f["id"], f["type"]) for f in request["form"]] == [("backup_verified", "BOOLEAN"),
                                                               ("backup_id", "STRING")]
    bad = one_outcome(service.approve(DANA, [request["id"]], {"backup_verified": "true", "backup_id": "x"}))
    assert bad.errors == {"backup_id": "Invalid input for `backup_id`, it must match the pattern "
                                       "`^[A-Za-z0-9._:-]{4,64}$`, but received `x`"}

    outcome = one_outcome(service.approve(DANA, [request["id"]],
                                          {"backup_verified": "true", "backup_id": "snap-2026-01-05"}))
    assert outcome.state == "APPROVED"
    done = service.get_execution(ALICE, execution["id"])
    assert done["state"] == "SUCCESS"
    by_path = runs(done)
    assert by_path["check_backup"]["state"] == "SUCCESS"
    assert by_path["delete_rows"]["outputs"] == {"exitCode": 0, "vars": {"deleted": 182340}}
    messages = log_messages(done)
    assert ("delete_rows", "INFO",
            "DELETE FROM analytics.events_2019 WHERE created_at < '2020-01-01' -- expecting 182340 rows") in messages
    assert messages[-1] == ("log_deletion", "INFO",
                            "Deleted 182340 rows from analytics.events_2019 (retention-policy); "
                            "backup snap-2026-01-05, confirmed by dana")


def test_data_deletion_without_verified_backup_fails_before_deleting(service):
    execution = service.start_execution(ALICE, "company.data", "data_deletion", DELETION)
    request = only_request(service, execution)
    one_outcome(service.approve(DANA, [request["id"]], {"backup_verified": "false", "backup_id": "none"}))
    done = service.get_execution(ALICE, execution["id"])
    assert done["state"] == "FAILED"
    assert done["error"] == "refusing to delete from analytics.events_2019: the steward did not verify a backup"
    assert runs(done)["check_backup"]["state"] == "FAILED"
    assert "delete_rows" not in runs(done)


def test_data_deletion_refuses_invalid_inputs(service):
    with pytest.raises(InvalidInputs) as info:
        service.start_execution(ALICE, "company.data", "data_deletion",
                                {"dataset": "Analytics", "rows": "0", "reason": "because"})
    assert info.value.errors == {
        "dataset": "Invalid input for `dataset`, it must match the pattern `^[a-z][a-z0-9_]*\\.[a-z][a-z0-9_]*$`, "
                   "but received `Analytics`",
        "rows": "Invalid input for `rows`, it must be more than `1`, but received `0`",
        "reason": "Invalid input for `reason`, it must match the values "
                  "`[gdpr-erasure, retention-policy, data-corruption, customer-offboarding]`, but received `because`",
    }
    with pytest.raises(InvalidInputs) as info:
        service.start_execution(ALICE, "company.data", "data_deletion",
                                {"dataset": "a.b", "rows": "12.5", "reason": "gdpr-erasure", "table": "x"})
    assert info.value.errors == {
        "rows": "Invalid input for `rows`, it must be an integer, but received `12.5`",
        "table": "Unknown input `table`; the flow declares: dataset, rows, reason, filter",
    }


# --------------------------------------------------------------------------- content_moderation

CONTENT = {"content_id": "post_8f3kq92L", "author": "throwaway_42",
           "excerpt": "Buy cheap followers now!!! visit spam.example", "classifier_score": "0.93"}


@pytest.fixture
def content_api(service, http_listener):
    service.kv_set(ALICE, "company.trust", "CONTENT_API", http_listener.url + "/cms")
    return http_listener


def moderate(service, form: dict) -> tuple[dict, dict]:
    execution = service.start_execution(ALICE, "company.trust", "content_moderation", CONTENT)
    assert execution["state"] == "PAUSED"
    request = only_request(service, execution)
    outcome = one_outcome(service.approve(MIA, [request["id"]], form))
    assert (outcome.outcome, outcome.state) == ("decided", "APPROVED"), outcome
    return request, service.get_execution(ALICE, execution["id"])


def test_content_moderation_request_shows_the_content_and_form(service, content_api):
    execution = service.start_execution(ALICE, "company.trust", "content_moderation", CONTENT)
    request = only_request(service, execution)
    assert request["summary"] == "Review post_8f3kq92L by @throwaway_42 (score 0.93)"
    assert "> Buy cheap followers now!!! visit spam.example" in request["context"]["details"]
    assert request["context"]["inputs"]["classifier_score"] == 0.93
    assert [(f["id"], f["type"], f["values"]) for f in request["form"]] == [
        ("categories", "MULTISELECT", ["spam", "abuse", "nsfw", "ok"]),
        ("action", "SELECT", ["keep", "hide", "delete"])]
    bad = one_outcome(service.approve(MIA, [request["id"]], {"categories": ["spam", "scam"], "action": "ban"}))
    assert bad.outcome == "invalid_inputs"
    assert bad.errors == {
        "categories": "Invalid input for `categories`, it must match the values `[spam, abuse, nsfw, ok]`, "
                      "but received `scam`",
        "action": "Invalid input for `action`, it must match the values `[keep, hide, delete]`, but received `ban`",
    }
    assert service.get_request(ALICE, request["id"])["state"] == "PENDING"


def test_content_moderation_delete(service, content_api):
    _, done = moderate(service, {"categories": ["spam", "abuse"], "action": "delete"})
    assert done["state"] == "SUCCESS"
    by_path = runs(done)
    assert by_path["enforce"]["state"] == "SUCCESS"
    assert by_path["enforce/delete_content"]["outputs"]["code"] == 200
    assert "enforce/hide_content" not in by_path and "enforce/clear_flag" not in by_path
    [sent] = content_api.requests
    assert (sent.method, sent.path) == ("DELETE", "/cms/content/post_8f3kq92L")
    assert sent.headers["X-Moderation-Categories"] == "spam,abuse"
    assert sent.headers["X-Moderator"] == "mia"
    assert log_messages(done) == [("enforce/notify_author", "INFO",
                                   "@throwaway_42 notified: post_8f3kq92L deleted for spam, abuse")]
    assert done["outputs"]["record"] == {"values": {"content_id": "post_8f3kq92L", "action": "delete",
                                                    "categories": "spam,abuse", "moderator": "mia"}}


def test_content_moderation_hide(service, content_api):
    _, done = moderate(service, {"categories": "nsfw", "action": "hide"})
    assert done["state"] == "SUCCESS"
    [sent] = content_api.requests
    assert (sent.method, sent.path) == ("PUT", "/cms/content/post_8f3kq92L/visibility")
    assert sent.json == {"visible": False, "categories": ["nsfw"], "moderator": "mia"}
    assert done["outputs"]["moderate"]["onResume"] == {"categories": ["nsfw"], "action": "hide"}


def test_content_moderation_keep(service, content_api):
    _, done = moderate(service, {"categories": ["ok"], "action": "keep"})
    assert done["state"] == "SUCCESS"
    assert runs(done)["enforce"]["state"] == "SUCCESS"
    assert log_messages(done) == [("enforce/clear_flag", "INFO", "post_8f3kq92L kept (ok)")]
    assert content_api.requests == []
    assert done["outputs"]["record"]["values"]["action"] == "keep"


def test_content_moderation_refuses_invalid_inputs(service):
    with pytest.raises(InvalidInputs) as info:
        service.start_execution(ALICE, "company.trust", "content_moderation",
                                {"content_id": "123", "author": "x", "excerpt": "", "classifier_score": "1.5"})
    assert info.value.errors == {
        "content_id": "Invalid input for `content_id`, it must match the pattern "
                      "`^(post|comment)_[A-Za-z0-9]{6,32}$`, but received `123`",
        "excerpt": "Invalid input for `excerpt`, it must match the pattern `^[\\s\\S]{1,500}$`, but received ``",
        "classifier_score": "Invalid input for `classifier_score`, it must be less than `1`, but received `1.5`",
    }


# --------------------------------------------------------------------------- prod_deploy

DEPLOY = {"service": "checkout", "version": "v2.14.0", "changelog": "- faster retries\n- new 3DS flow"}


@pytest.fixture
def deploy_hook(service, http_listener):
    service.kv_set(ALICE, "company.platform", "DEPLOY_HOOK", http_listener.url + "/ci")
    http_listener.respond("/ci/deployments", 202, {"deployment": "d-77"})
    return http_listener


def test_prod_deploy_waits_for_both_parallel_signoffs(service, deploy_hook):
    execution = service.start_execution(ALICE, "company.platform", "prod_deploy", DEPLOY)
    assert execution["state"] == "PAUSED"
    pending = {r["task_id"]: r for r in pending_for(service, execution)}
    assert set(pending) == {"security_signoff", "release_signoff"}
    assert pending["security_signoff"]["summary"] == "Security sign-off: checkout v2.14.0 to production"
    assert pending["release_signoff"]["summary"] == "Go/no-go: checkout v2.14.0 (canary)"
    release = service.get_request(ALICE, pending["release_signoff"]["id"])
    assert "- faster retries\n- new 3DS flow" in release["context"]["details"]
    assert [(f["id"], f["type"], f["defaults"]) for f in release["form"]] == [("rollout_percent", "INT", 10)]

    one_outcome(service.approve(SAM, [pending["security_signoff"]["id"]]))
    assert service.get_execution(ALICE, execution["id"])["state"] == "PAUSED"
    assert [r["task_id"] for r in pending_for(service, execution)] == ["release_signoff"]
    assert deploy_hook.requests == []

    bad = one_outcome(service.approve(RITA, [release["id"]], {"rollout_percent": "150"}))
    assert bad.errors == {"rollout_percent": "Invalid input for `rollout_percent`, it must be less than `100`, "
                                             "but received `150`"}
    one_outcome(service.approve(RITA, [release["id"]], {"rollout_percent": "25"}))
    done = service.get_execution(ALICE, execution["id"])
    assert done["state"] == "SUCCESS"
    assert runs(done)["reviews"]["state"] == "SUCCESS"
    [sent] = deploy_hook.requests_to("/ci/deployments")
    assert sent.json == {"service": "checkout", "version": "v2.14.0", "strategy": "canary",
                         "initialPercent": 25, "approvedBy": ["sam", "rita"]}
    assert log_messages(done) == [("log_deploy", "INFO", "checkout v2.14.0 deployment started (canary, 25%)")]


def test_prod_deploy_denied_by_either_reviewer_stops_it(service, deploy_hook):
    execution = service.start_execution(ALICE, "company.platform", "prod_deploy", {**DEPLOY, "rollout": "blue-green"})
    pending = {r["task_id"]: r for r in pending_for(service, execution)}
    outcome = one_outcome(service.deny(SAM, [pending["security_signoff"]["id"]], reason="CVE-2026-1234 unpatched"))
    assert outcome.state == "DENIED"
    done = service.get_execution(ALICE, execution["id"])
    assert done["state"] == "KILLED"
    assert done["error"] == "denied by sam: CVE-2026-1234 unpatched"
    states = {r["task_id"]: r["state"] for r in done["requests"]}
    assert states == {"security_signoff": "DENIED", "release_signoff": "CANCELLED"}
    assert pending_for(service, execution) == []
    assert "deploy" not in runs(done)
    assert deploy_hook.requests == []


def test_prod_deploy_refuses_invalid_inputs(service):
    with pytest.raises(InvalidInputs) as info:
        service.start_execution(ALICE, "company.platform", "prod_deploy",
                                {"service": "api", "version": "latest", "rollout": "yolo"})
    assert info.value.errors == {
        "version": "Invalid input for `version`, it must match the pattern "
                   "`^v?[0-9]+\\.[0-9]+\\.[0-9]+(-[0-9A-Za-z.-]+)?$`, but received `latest`",
        "rollout": "Invalid input for `rollout`, it must match the values `[canary, blue-green, all-at-once]`, "
                   "but received `yolo`",
    }


# --------------------------------------------------------------------------- boundaries and optional fields


@pytest.mark.parametrize(("amount", "task_id", "state"), [
    ("0.01", "single_approval", "APPROVED"),
    ("99.99", "single_approval", "APPROVED"),
    ("100", "single_approval", "PENDING"),
    ("9999.99", "single_approval", "PENDING"),
    ("10000", "dual_approval", "PENDING"),
])
def test_payment_routing_thresholds(service, payments_api, amount, task_id, state):
    execution = service.start_execution(ALICE, "company.finance", "payment_approval", {**PAYMENT, "amount": amount})
    [request] = execution["requests"]
    assert (request["task_id"], request["state"]) == (task_id, state)
    assert request["required"] == (2 if task_id == "dual_approval" else 1)
    assert execution["state"] == ("SUCCESS" if state == "APPROVED" else "PAUSED")
    assert len(payments_api.requests) == (1 if state == "APPROVED" else 0)


def test_access_request_without_a_note(service, iam_api):
    execution = service.start_execution(ALICE, "company.security", "access_request", {**ACCESS, "role": "read"})
    request = only_request(service, execution)
    one_outcome(service.approve(SAM, [request["id"]], {"approved": True}))
    done = service.get_execution(ALICE, execution["id"])
    assert done["state"] == "SUCCESS"
    [sent] = iam_api.requests_to("/iam/grants")
    assert (sent.json["role"], sent.json["note"]) == ("read", "")


def test_access_request_rejection_without_a_note(service, iam_api):
    execution = service.start_execution(ALICE, "company.security", "access_request", ACCESS)
    request = only_request(service, execution)
    one_outcome(service.approve(SAM, [request["id"]], {"approved": False}))
    done = service.get_execution(ALICE, execution["id"])
    assert done["state"] == "SUCCESS"
    assert log_messages(done) == [(
        "apply_decision/log_rejection", "WARN",
        "Access request rejected: write on billing-db for jdoe by sam: no note")]


def test_content_moderation_categories_as_comma_separated_text(service, content_api):
    _, done = moderate(service, {"categories": "spam, abuse", "action": "keep"})
    assert done["outputs"]["moderate"]["onResume"]["categories"] == ["spam", "abuse"]
    assert log_messages(done) == [("enforce/clear_flag", "INFO", "post_8f3kq92L kept (spam, abuse)")]


def test_large_payment_one_deny_vetoes_earlier_approval(service, payments_api):
    execution = service.start_execution(ALICE, "company.finance", "payment_approval", {**PAYMENT, "amount": "50000"})
    request = only_request(service, execution)
    assert one_outcome(service.approve(BOB, [request["id"]])).state == "PENDING"
    vetoed = one_outcome(service.deny(CAROL, [request["id"]], reason="payee not on the vendor list"))
    assert (vetoed.outcome, vetoed.state) == ("decided", "DENIED")
    done = service.get_execution(ALICE, execution["id"])
    assert done["state"] == "KILLED"
    assert done["error"] == "denied by carol: payee not on the vendor list"
    assert payments_api.requests == []


def test_requester_cancels_a_pending_payment(service, payments_api):
    execution = service.start_execution(ALICE, "company.finance", "payment_approval", {**PAYMENT, "amount": "700"})
    request = only_request(service, execution)
    cancelled = one_outcome(service.cancel(ALICE, [request["id"]], reason="wrong IBAN"))
    assert (cancelled.outcome, cancelled.state) == ("cancelled", "CANCELLED")
    done = service.get_execution(ALICE, execution["id"])
    assert done["state"] == "KILLED"
    assert "wrong IBAN" in done["error"]
    assert "submit_payment" not in runs(done)
    assert payments_api.requests == []
