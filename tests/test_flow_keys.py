"""Kestra flow keys and task properties that used to load and do nothing: each now either works
(pluginDefaults/taskDefaults, the Shell/HTTP/mail/webhook properties, functions in input
defaults, notifications of automatic approvals, `disabled`) or is refused where it is written."""
from __future__ import annotations

import textwrap
from datetime import timedelta

import pytest

from signoff.engine.clock import FakeClock, format_time
from signoff.engine.errors import FlowLoadError, UsageError
from signoff.engine.flows.loader import load_flow_text
from signoff.engine.notify.config import NotificationConfig, Target
from tests.support import ALICE, BOB, make_service


def problems(text: str) -> list[str]:
    with pytest.raises(FlowLoadError) as info:
        load_flow_text(textwrap.dedent(text), "f.yml")
    return [str(p) for p in info.value.problems]


def logs(execution: dict) -> list[str]:
    return [log["message"] for log in execution["logs"]]


# -- pluginDefaults / taskDefaults -------------------------------------------------------------

DEFAULTS_FLOW = """
id: defaults
namespace: t.ns
pluginDefaults:
  - type: io.kestra.plugin.core.http.Request
    values:
      uri: "{{ vars.base }}/default"
      headers: {X-Team: finance}
  - type: io.kestra.plugin.core.http
    forced: true
    values:
      method: POST
  - type: io.kestra.plugin.core.http.Request
    values:
      headers: {X-Team: ignored-the-first-entry-wins, X-Second: yes}
variables:
  base: BASE
tasks:
  - id: own_uri
    type: io.kestra.plugin.core.http.Request
    uri: "{{ vars.base }}/own"
    method: GET
    headers: {X-Own: mine}
  - id: default_uri
    type: io.kestra.core.tasks.http.Request
"""


def test_plugin_defaults_fill_merge_and_force_as_kestra(tmp_path, http_listener):
    svc = make_service(tmp_path, {"d.yaml": DEFAULTS_FLOW.replace("BASE", http_listener.url)})
    ex = svc.start_execution(BOB, "t.ns", "defaults", {})
    assert ex["state"] == "SUCCESS", ex["error"]
    own, default = http_listener.requests
    # the task's own value wins over a default; maps merge key by key; forced wins over the task
    assert (own.path, own.method) == ("/own", "POST")
    assert own.headers["X-Own"] == "mine" and own.headers["X-Team"] == "finance"
    assert own.headers["X-Second"] == "yes"
    # an older type name matches the defaults written for the current one (and the prefix)
    assert (default.path, default.method) == ("/default", "POST")
    assert default.headers["X-Team"] == "finance"


def test_task_defaults_is_the_older_name():
    flow = load_flow_text(textwrap.dedent("""\
        id: f
        namespace: t
        taskDefaults:
          - type: io.kestra.plugin.core.log.Log
            values: {level: WARN}
        tasks:
          - id: a
            type: io.kestra.plugin.core.log.Log
            message: hi
        """), "f.yml")
    assert flow.tasks[0].props["level"] == "WARN"


def test_a_default_supplies_a_required_property_and_is_checked_like_the_task():
    flow = load_flow_text(textwrap.dedent("""\
        id: f
        namespace: t
        pluginDefaults:
          - type: io.kestra.plugin.notifications
            values: {url: "https://hooks.example/x"}
        tasks:
          - id: a
            type: io.kestra.plugin.notifications.slack.SlackIncomingWebhook
            messageText: hi
        """), "f.yml")
    assert flow.tasks[0].props["url"] == "https://hooks.example/x"
    assert problems("""\
        id: f
        namespace: t
        pluginDefaults:
          - type: io.kestra.plugin.core.log.Log
            values: {levle: WARN}
          - type: io.kestra.plugin.core.lgo
            values: {level: WARN}
          - type: io.kestra.plugin.core.http.Request
            values: {method: FETCH, id: x}
          - typ: io.kestra.plugin.core.log.Log
        taskDefaults: []
        tasks:
          - id: a
            type: io.kestra.plugin.core.log.Log
            message: hi
        """) == [
        "f.yml:5:14: unknown property `levle` for Log (io.kestra.plugin.core.log.Log), did you mean `level`?",
        "f.yml:6:11: `io.kestra.plugin.core.lgo` is neither a supported task type nor the start of one, "
        "did you mean `io.kestra.plugin.core.log.Log`?",
        "f.yml:9:29: `id` cannot have a default; set it on each task",
        "f.yml:10:5: unknown key `typ` in `pluginDefaults[3]`, did you mean `type`?",
        "f.yml:10:5: `pluginDefaults[3]` needs `type`: a task type such as `io.kestra.plugin.core.http.Request` "
        "or a prefix such as `io.kestra.plugin.notifications`",
        "f.yml:11:1: `taskDefaults` is the older name of `pluginDefaults`; write all defaults under "
        "`pluginDefaults`",
    ]
    # a default's bad value is reported where the default is written
    assert problems("""\
        id: f
        namespace: t
        pluginDefaults:
          - type: io.kestra.plugin.core.http.Request
            values: {method: FETCH}
        tasks:
          - id: a
            type: io.kestra.plugin.core.http.Request
            uri: http://x
        """) == ["f.yml:5:22: `method` must be one of GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS; found `FETCH`, "
                 "did you mean `PATCH`?"]


# -- Shell / HTTP / mail / webhook properties the README documents ------------------------------

PROPS_FLOW = """
id: props
namespace: t.ns
tasks:
  - id: shell
    type: io.kestra.plugin.scripts.shell.Commands
    failFast: false
    inputFiles:
      data.txt: "from-input-file\n"
    commands:
      - cat data.txt
      - "false"
      - echo still-running
  - id: missing
    type: io.kestra.plugin.core.http.Request
    uri: "BASE/missing"
    allowFailed: true
  - id: slack
    type: io.kestra.plugin.notifications.slack.SlackIncomingWebhook
    url: "BASE/slack"
    messageText: "code was {{ outputs.missing.code }}"
  - id: mail
    type: io.kestra.plugin.notifications.mail.MailSend
    host: 127.0.0.1
    port: SMTP_PORT
    sessionTimeout: 5000
    from: signoff@example.com
    to: ops@example.com
    subject: done
    plainTextContent: "exit {{ outputs.shell.exitCode }}"
"""


def test_documented_shell_http_mail_webhook_properties_work(tmp_path, http_listener, smtp_listener):
    http_listener.respond("/missing", 404, "nope")
    text = PROPS_FLOW.replace("BASE", http_listener.url).replace("SMTP_PORT", str(smtp_listener.port))
    svc = make_service(tmp_path, {"p.yaml": text})
    ex = svc.start_execution(BOB, "t.ns", "props", {})
    assert ex["state"] == "SUCCESS", ex["error"]
    shell_log = "\n".join(logs(ex))
    assert "from-input-file" in shell_log and "still-running" in shell_log  # failFast: false
    assert ex["outputs"]["missing"]["code"] == 404  # allowFailed: true
    [slack] = http_listener.requests_to("/slack")
    assert slack.json == {"text": "code was 404"}  # messageText
    [mail] = smtp_listener.wait_for(1)
    assert mail.message.get_content().strip() == "exit 0"


def test_shell_fail_fast_is_on_by_default(tmp_path):
    svc = make_service(tmp_path, {"p.yaml": """
        id: p
        namespace: t.ns
        tasks:
          - id: shell
            type: io.kestra.plugin.scripts.shell.Commands
            commands: ["false", "echo never"]
        """})
    ex = svc.start_execution(BOB, "t.ns", "p", {})
    assert ex["state"] == "FAILED" and "never" not in logs(ex)


def test_webhook_needs_exactly_one_of_payload_and_message_text():
    assert problems("""\
        id: f
        namespace: t
        tasks:
          - id: a
            type: io.kestra.plugin.notifications.slack.SlackIncomingWebhook
            url: http://x
          - id: b
            type: io.kestra.plugin.notifications.teams.TeamsIncomingWebhook
            url: http://x
            payload: '{"text": "x"}'
            messageText: x
        """) == [
        "f.yml:4:5: task `a` (SlackIncomingWebhook) needs `payload` (the JSON to post) or `messageText`",
        "f.yml:11:5: task `b` has both `payload` and `messageText`; keep one (`messageText` posts "
        '`{"text": ...}`)',
    ]


# -- functions in input defaults ---------------------------------------------------------------

DEFAULTS_INPUTS = """
id: stamp
namespace: t.ns
inputs:
  - id: requested_at
    type: DATETIME
    defaults: "{{ now() }}"
  - id: team
    type: STRING
    defaults: "{{ kv('TEAM') }}"
tasks:
  - id: gate
    type: io.kestra.plugin.core.flow.Pause
    onResume:
      - id: decided_at
        type: DATETIME
        defaults: "{{ now() }}"
"""


def test_now_and_kv_in_input_defaults(tmp_path):
    clock = FakeClock()
    svc = make_service(tmp_path, {"s.yaml": DEFAULTS_INPUTS}, clock=clock)
    svc.kv_set(ALICE, "t.ns", "TEAM", "payments")
    started = format_time(clock.now())
    assert svc.check_flow_inputs(BOB, "t.ns", "stamp", {}) == {}
    ex = svc.start_execution(BOB, "t.ns", "stamp", {})
    assert ex["inputs"]["team"] == "payments"
    assert ex["inputs"]["requested_at"][:19] == started[:19]
    [request] = ex["requests"]
    assert svc.validate(ALICE, request["id"], {}) == {}
    clock.advance(timedelta(hours=2))
    svc.approve(ALICE, [request["id"]])
    ex = svc.get_execution(ALICE, ex["id"])
    assert ex["state"] == "SUCCESS"
    # a form's defaults are rendered when the request is made, with the context it freezes
    assert ex["outputs"]["gate"]["onResume"]["decided_at"][:19] == started[:19]


def test_app_link_in_a_start_default_is_a_clear_error(tmp_path):
    svc = make_service(tmp_path, {"s.yaml": """
        id: s
        namespace: t.ns
        inputs:
          - id: link
            type: STRING
            defaults: "{{ appLink() }}"
        tasks:
          - id: a
            type: io.kestra.plugin.core.log.Log
            message: x
        """})
    errors = svc.check_flow_inputs(BOB, "t.ns", "s", {})
    assert "appLink() names an execution and is not available before one starts" in errors["link"]


# -- automatic approvals are announced ---------------------------------------------------------

def test_auto_approved_request_announces_decided(tmp_path, http_listener):
    svc = make_service(tmp_path, {"a.yaml": """
        id: auto
        namespace: company.ops
        inputs:
          - id: amount
            type: INT
        tasks:
          - id: gate
            type: io.kestra.plugin.core.flow.Approval
            autoApprove: "{{ inputs.amount < 100 }}"
            context:
              summary: "Pay {{ inputs.amount }}"
        """})
    svc.engine.notifications = NotificationConfig([Target("slack", http_listener.url + "/slack", ["*"])])
    ex = svc.start_execution(BOB, "company.ops", "auto", {"amount": 5})
    assert ex["state"] == "SUCCESS"
    texts = [r.json["text"] for r in http_listener.requests_to("/slack")]
    assert len(texts) == 2
    assert texts[0].startswith("Approval requested: Pay 5")
    assert texts[1].startswith("Approval decided: Pay 5") and "Outcome: APPROVED by signoff" in texts[1]


# -- disabled ----------------------------------------------------------------------------------

def test_disabled_flow_starts_nothing(tmp_path):
    svc = make_service(tmp_path, {"d.yaml": """
        id: off
        namespace: t.ns
        disabled: true
        tasks:
          - id: a
            type: io.kestra.plugin.core.log.Log
            message: x
        """})
    with pytest.raises(UsageError, match=r"flow t.ns.off is disabled \(`disabled: true` in .*d.yaml\)"):
        svc.start_execution(BOB, "t.ns", "off", {})
    assert svc.list_executions(ALICE) == []
    assert problems("id: f\nnamespace: t\ndeleted: true\ntasks: [{id: a, type: io.kestra.plugin.core.log.Log,"
                    " message: x}]\n") == [
        "f.yml:3:1: `deleted: true` marks a flow removed in Kestra; delete the file instead (or write "
        "`disabled: true`)"]



# -- common task properties: timeout, logLevel, allowWarning; logToFile refused --------------------

def test_task_timeout_bounds_an_http_call_and_is_refused_where_it_cannot_apply(tmp_path, http_listener):
    http_listener.respond("/slow", 200, "late", delay=3)
    svc = make_service(tmp_path, {"t.yaml": f"""
        id: t
        namespace: t.ns
        tasks:
          - id: call
            type: io.kestra.plugin.core.http.Request
            uri: "{http_listener.url}/slow"
            timeout: PT0.5S
        """})
    ex = svc.start_execution(BOB, "t.ns", "t", {})
    assert ex["state"] == "FAILED" and "timed out" in ex["error"].lower()
    assert problems("""\
        id: f
        namespace: t
        tasks:
          - id: a
            type: io.kestra.plugin.core.log.Log
            message: x
            timeout: PT1M
            logToFile: true
        """) == [
        "f.yml:7:5: `timeout` is not supported on Log yet: signoff would ignore it, so remove it (it applies "
        "to Pause, Approval, HTTP, notification, mail and shell tasks)",
        "f.yml:8:5: `logToFile` is not supported yet: signoff would ignore it, so remove it (task logs are kept "
        "in the database and shown by `executions show`)",
    ]


def test_log_level_keeps_only_logs_at_or_above_it_and_allow_warning_keeps_success(tmp_path):
    svc = make_service(tmp_path, {"l.yaml": """
        id: l
        namespace: t.ns
        tasks:
          - id: quiet
            type: io.kestra.plugin.scripts.shell.Commands
            logLevel: WARN
            commands: ["echo chatter", "echo problem >&2"]
          - id: shaky
            type: io.kestra.plugin.core.execution.Fail
            errorMessage: "only a warning"
            allowFailure: true
            allowWarning: true
        """})
    ex = svc.start_execution(BOB, "t.ns", "l", {})
    quiet = [log["message"] for log in ex["logs"] if log["path"] == "quiet"]
    assert quiet == ["problem"]  # the INFO line is dropped
    assert ex["task_runs"][1]["state"] == "WARNING"
    assert ex["state"] == "SUCCESS"  # allowWarning: the task's WARNING does not make the execution WARNING
    svc = make_service(tmp_path / "2", {"l.yaml": """
        id: l
        namespace: t.ns
        tasks:
          - id: shaky
            type: io.kestra.plugin.core.execution.Fail
            allowFailure: true
        """})
    assert svc.start_execution(BOB, "t.ns", "l", {})["state"] == "WARNING"
