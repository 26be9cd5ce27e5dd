"""Leaf task handlers against real local listeners (HTTP, SMTP) and real processes."""
from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

import pytest

from signoff.engine.flows.model import Task
from signoff.engine.tasks.base import SimpleContext, TaskFailed
from signoff.engine.tasks.registry import load_handlers
from tests.fakes.smtp_listener import SmtpListener

HANDLERS = load_handlers()

LOG = "io.kestra.plugin.core.log.Log"
OUTPUT_VALUES = "io.kestra.plugin.core.output.OutputValues"
FAIL = "io.kestra.plugin.core.execution.Fail"
RETURN = "io.kestra.plugin.core.debug.Return"
ECHO = "io.kestra.plugin.core.debug.Echo"
REQUEST = "io.kestra.plugin.core.http.Request"
SLACK = "io.kestra.plugin.notifications.slack.SlackIncomingWebhook"
TEAMS = "io.kestra.plugin.notifications.teams.TeamsIncomingWebhook"
MAIL = "io.kestra.plugin.notifications.mail.MailSend"
COMMANDS = "io.kestra.plugin.scripts.shell.Commands"


def make_ctx(type_: str, tmp_path: Path | None = None, variables: dict[str, Any] | None = None,
             **props: Any) -> SimpleContext:
    task = Task(id="step", type=type_, props=props)
    return SimpleContext(
        task=task,
        variables=variables or {},
        execution_id="exec-1",
        data_dir=tmp_path or Path("."),
        idempotency_key="exec-1:step:1",
    )


def run(ctx: SimpleContext) -> dict[str, Any]:
    return HANDLERS[ctx.task.type](ctx)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- registry -----------------------------------------------------------------------------

def test_registry_has_every_leaf_handler():
    for name in (LOG, OUTPUT_VALUES, FAIL, RETURN, ECHO, REQUEST, SLACK, TEAMS, MAIL, COMMANDS):
        assert callable(HANDLERS[name]), name


# -- Log / OutputValues / Fail / Return / Echo -------------------------------------------

@pytest.mark.parametrize("level", ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"])
def test_log_levels(level):
    ctx = make_ctx(LOG, message="hello", level=level)
    assert run(ctx) == {}
    assert ctx.logs == [(level, "hello")]


def test_log_default_level_list_of_messages_and_rendering():
    ctx = make_ctx(LOG, variables={"inputs": {"name": "Ada"}},
                   message=["first {{ inputs.name }}", "second"])
    assert run(ctx) == {}
    assert ctx.logs == [("INFO", "first Ada"), ("INFO", "second")]


def test_log_warning_alias_and_invalid_level():
    ctx = make_ctx(LOG, message="x", level="warning")
    run(ctx)
    assert ctx.logs == [("WARN", "x")]
    with pytest.raises(TaskFailed, match="Invalid log level 'LOUD'"):
        run(make_ctx(LOG, message="x", level="LOUD"))


def test_output_values_renders_map():
    ctx = make_ctx(OUTPUT_VALUES, variables={"inputs": {"amount": 120, "who": "bob"}},
                   values={"approver": "{{ inputs.who }}", "fixed": 3, "nested": {"k": "v"}})
    out = run(ctx)
    assert out["values"]["approver"] == "bob"
    assert out["values"]["fixed"] == 3
    assert out["values"]["nested"] == {"k": "v"}


def test_fail_without_condition_fails_with_default_message():
    with pytest.raises(TaskFailed) as err:
        run(make_ctx(FAIL))
    assert err.value.message == "Task failure"


def test_fail_with_error_message_rendered():
    ctx = make_ctx(FAIL, variables={"inputs": {"who": "eve"}}, errorMessage="denied by {{ inputs.who }}")
    with pytest.raises(TaskFailed) as err:
        run(ctx)
    assert err.value.message == "denied by eve"


@pytest.mark.parametrize("flag, fails", [(True, True), (False, False)])
def test_fail_condition(flag, fails):
    ctx = make_ctx(FAIL, variables={"inputs": {"flag": flag}}, condition="{{ inputs.flag }}",
                   errorMessage="flag is set")
    if fails:
        with pytest.raises(TaskFailed, match="flag is set"):
            run(ctx)
    else:
        assert run(ctx) == {}


def test_fail_literal_false_condition_does_not_fail():
    assert run(make_ctx(FAIL, condition=False)) == {}


def test_return_and_echo():
    variables = {"inputs": {"name": "Ada"}}
    assert run(make_ctx(RETURN, variables=variables, format="Hi {{ inputs.name }}")) == {"value": "Hi Ada"}
    ctx = make_ctx(ECHO, variables=variables, format="Echo {{ inputs.name }}", level="ERROR")
    assert run(ctx) == {}
    assert ctx.logs == [("ERROR", "Echo Ada")]
    ctx = make_ctx(ECHO, format="plain")
    run(ctx)
    assert ctx.logs == [("INFO", "plain")]


# -- http.Request --------------------------------------------------------------------------

def test_request_get(http_listener):
    http_listener.respond("/api/status", 200, {"state": "green"}, headers={"X-Trace": "abc"})
    out = run(make_ctx(REQUEST, uri=http_listener.url + "/api/status?verbose=1",
                       headers={"Accept": "application/json"}))
    assert out["code"] == 200
    assert out["body"] == '{"state": "green"}'  # kept as text, as Kestra does
    assert out["headers"]["x-trace"] == ["abc"]
    assert out["uri"] == http_listener.url + "/api/status?verbose=1"
    [req] = http_listener.requests
    assert req.method == "GET"
    assert req.path == "/api/status"
    assert req.query == {"verbose": ["1"]}
    assert req.headers["Idempotency-Key"] == "exec-1:step:1"
    assert req.headers["accept"] == "application/json"


def test_request_post_json_map_body(http_listener):
    http_listener.respond("/hr", 201, "created")
    ctx = make_ctx(REQUEST, variables={"inputs": {"name": "Ada", "days": 3}},
                   uri=http_listener.url + "/hr", method="post",
                   body={"employee": "{{ inputs.name }}", "kind": "leave", "tags": ["a", "b"]})
    out = run(ctx)
    assert out["code"] == 201 and out["body"] == "created"
    [req] = http_listener.requests
    assert req.method == "POST"
    assert req.content_type == "application/json"
    assert req.json == {"employee": "Ada", "kind": "leave", "tags": ["a", "b"]}
    assert req.headers["Idempotency-Key"] == "exec-1:step:1"


def test_request_string_body_with_content_type(http_listener):
    run(make_ctx(REQUEST, uri=http_listener.url + "/raw", method="PUT", body="a,b\n1,2",
                 contentType="text/csv"))
    [req] = http_listener.requests
    assert req.method == "PUT"
    assert req.content_type == "text/csv"
    assert req.text == "a,b\n1,2"


def test_request_multipart_form_data(http_listener):
    ctx = make_ctx(REQUEST, variables={"inputs": {"name": "Ada"}},
                   uri=http_listener.url + "/upload", method="POST",
                   contentType="multipart/form-data",
                   formData={"name": "{{ inputs.name }}", "count": 2, "tags": ["x", "y"]})
    assert run(ctx)["code"] == 200
    [req] = http_listener.requests
    assert req.content_type == "multipart/form-data"
    assert req.form == {"name": "Ada", "count": "2", "tags": ["x", "y"]}
    assert req.headers["Idempotency-Key"] == "exec-1:step:1"


def test_request_urlencoded_form_data(http_listener):
    run(make_ctx(REQUEST, uri=http_listener.url + "/form", method="POST",
                 formData={"a": "1 2", "b": "é"}))
    [req] = http_listener.requests
    assert req.content_type == "application/x-www-form-urlencoded"
    assert req.form == {"a": "1 2", "b": "é"}


def test_request_keeps_flow_idempotency_key(http_listener):
    run(make_ctx(REQUEST, uri=http_listener.url + "/", headers={"idempotency-key": "mine"}))
    [req] = http_listener.requests
    assert req.headers["Idempotency-Key"] == "mine"
    assert sum(1 for k in req.headers if k.lower() == "idempotency-key") == 1


def test_request_non_2xx_fails_with_status_and_body(http_listener):
    http_listener.respond("/fail", 500, "boom " + "x" * 500)
    with pytest.raises(TaskFailed) as err:
        run(make_ctx(REQUEST, uri=http_listener.url + "/fail"))
    msg = err.value.message
    assert msg.startswith(f"HTTP 500 from {http_listener.url}/fail: boom ")
    assert len(msg) == len(f"HTTP 500 from {http_listener.url}/fail: ") + 200


def test_request_allow_failed(http_listener):
    http_listener.respond("/missing", 404, "nope")
    out = run(make_ctx(REQUEST, uri=http_listener.url + "/missing", options={"allowFailed": True}))
    assert out["code"] == 404 and out["body"] == "nope"


def test_request_connection_refused():
    port = free_port()
    with pytest.raises(TaskFailed) as err:
        run(make_ctx(REQUEST, uri=f"http://127.0.0.1:{port}/x"))
    assert err.value.message == f"Cannot connect to http://127.0.0.1:{port}/x: connection refused"


def test_request_read_timeout(http_listener):
    http_listener.respond("/slow", 200, "late", delay=2)
    started = time.monotonic()
    with pytest.raises(TaskFailed, match="timed out"):
        run(make_ctx(REQUEST, uri=http_listener.url + "/slow", options={"readTimeout": "PT0.3S"}))
    assert time.monotonic() - started < 1.8


def test_request_invalid_uri():
    with pytest.raises(TaskFailed, match="Invalid uri"):
        run(make_ctx(REQUEST, uri="ftp://example.invalid/x"))


def test_request_basic_auth(http_listener):
    run(make_ctx(REQUEST, uri=http_listener.url + "/a",
                 options={"basicAuthUser": "u", "basicAuthPassword": "p"}))
    assert http_listener.requests[0].headers["Authorization"] == "Basic dTpw"


def test_http_listener_dynamic_responder(http_listener):
    calls = []

    def flaky(req):
        calls.append(req)
        return (503, "busy") if len(calls) == 1 else (200, {"ok": True}, {"X-N": str(len(calls))})

    http_listener.respond("/flaky", flaky)
    with pytest.raises(TaskFailed, match="HTTP 503"):
        run(make_ctx(REQUEST, uri=http_listener.url + "/flaky"))
    out = run(make_ctx(REQUEST, uri=http_listener.url + "/flaky"))
    assert out["code"] == 200 and out["headers"]["x-n"] == ["2"]
    assert len(http_listener.wait_for(2, path="/flaky")) == 2


# -- Slack / Teams -------------------------------------------------------------------------

SLACK_PAYLOAD = """{
  "text": "Approval needed for {{ inputs.name }}\\nAmount: {{ inputs.amount }}",
  "channel": "#approvals"
}"""


@pytest.mark.parametrize("type_", [SLACK, TEAMS])
def test_webhook_posts_payload_as_json(http_listener, type_):
    http_listener.respond("/hook", 200, "ok")
    ctx = make_ctx(type_, variables={"inputs": {"name": "Ada", "amount": 120}},
                   url=http_listener.url + "/hook", payload=SLACK_PAYLOAD)
    assert run(ctx) == {"code": 200}
    [req] = http_listener.requests
    assert req.method == "POST"
    assert req.content_type == "application/json"
    assert req.headers["Idempotency-Key"] == "exec-1:step:1"
    assert req.json == {"text": "Approval needed for Ada\nAmount: 120", "channel": "#approvals"}


def test_webhook_invalid_json_after_rendering(http_listener):
    ctx = make_ctx(SLACK, variables={"inputs": {"name": 'Ada "the boss"'}},
                   url=http_listener.url + "/hook", payload='{"text": "Hi {{ inputs.name }}"}')
    with pytest.raises(TaskFailed) as err:
        run(ctx)
    assert "payload is not valid JSON" in err.value.message
    assert "line 1 column" in err.value.message
    assert http_listener.requests == []


def test_webhook_non_2xx_fails(http_listener):
    http_listener.respond("/hook", 404, "no_team")
    with pytest.raises(TaskFailed, match=r"HTTP 404 from .*/hook: no_team"):
        run(make_ctx(TEAMS, url=http_listener.url + "/hook", payload='{"text": "x"}'))


# -- MailSend ------------------------------------------------------------------------------

def test_mail_send_html_and_plain(smtp_listener):
    ctx = make_ctx(MAIL, variables={"inputs": {"name": "Ada"}},
                   host=smtp_listener.host, port=smtp_listener.port,
                   **{"from": "signoff@example.com"},
                   to="boss@example.com, hr@example.com", cc=["audit@example.com"],
                   subject="Approve {{ inputs.name }}",
                   htmlTextContent="<p>Please approve <b>{{ inputs.name }}</b></p>",
                   plainTextContent="Please approve {{ inputs.name }}\n.dotted line")
    assert run(ctx) == {}
    [mail] = smtp_listener.mails
    assert mail.mail_from == "signoff@example.com"
    assert mail.rcpt_tos == ["boss@example.com", "hr@example.com", "audit@example.com"]
    msg = smtp_listener.messages[0]
    assert msg["Subject"] == "Approve Ada"
    assert msg["To"] == "boss@example.com, hr@example.com"
    assert msg["Cc"] == "audit@example.com"
    assert msg.get_content_type() == "multipart/alternative"
    assert "<b>Ada</b>" in msg.get_body(("html",)).get_content()
    assert ".dotted line" in msg.get_body(("plain",)).get_content()
    assert msg["X-Signoff-Idempotency-Key"] == "exec-1:step:1"
    first_id = msg["Message-ID"]
    # The same idempotency key gives the same Message-ID: a re-sent mail is recognisable.
    run(ctx)
    assert smtp_listener.messages[1]["Message-ID"] == first_id


def test_mail_send_html_only(smtp_listener):
    run(make_ctx(MAIL, host=smtp_listener.host, port=smtp_listener.port, **{"from": "a@x.org"},
                 to=["b@x.org"], subject="s", htmlTextContent="<i>hi</i>"))
    msg = smtp_listener.wait_for(1)[0].message
    assert msg.get_content_type() == "text/html"
    assert "<i>hi</i>" in msg.get_content()


def test_mail_send_auth():
    with SmtpListener(users={"bot": "s3cret"}) as smtp:
        base = dict(host=smtp.host, port=smtp.port, to="b@x.org", subject="s", plainTextContent="t",
                    username="bot", **{"from": "a@x.org"})
        run(make_ctx(MAIL, **base, password="s3cret"))
        assert smtp.mails[0].username == "bot"
        with pytest.raises(TaskFailed, match=r"authentication failed \(535"):
            run(make_ctx(MAIL, **base, password="wrong"))


def test_mail_send_starttls_not_offered(smtp_listener):
    with pytest.raises(TaskFailed, match="STARTTLS extension not supported"):
        run(make_ctx(MAIL, host=smtp_listener.host, port=smtp_listener.port, transportStrategy="SMTP_TLS",
                     to="b@x.org", subject="s", plainTextContent="t", **{"from": "a@x.org"}))


def test_mail_send_recipient_refused():
    with SmtpListener(reject_recipients={"ghost@x.org"}) as smtp:
        with pytest.raises(TaskFailed, match="all recipients refused: ghost@x.org"):
            run(make_ctx(MAIL, host=smtp.host, port=smtp.port, to="ghost@x.org", subject="s",
                         plainTextContent="t", **{"from": "a@x.org"}))


def test_mail_send_connection_refused():
    port = free_port()
    with pytest.raises(TaskFailed) as err:
        run(make_ctx(MAIL, host="127.0.0.1", port=port, to="b@x.org", subject="s",
                     plainTextContent="t", **{"from": "a@x.org"}))
    assert err.value.message == f"Cannot send mail via 127.0.0.1:{port}: connection refused"


# -- shell Commands ------------------------------------------------------------------------

def test_commands_outputs_logs_env_and_workdir(tmp_path):
    ctx = make_ctx(COMMANDS, tmp_path, variables={"inputs": {"who": "Ada"}},
                   env={"GREETING": "hello {{ inputs.who }}", "N": 3},
                   beforeCommands=["echo before"],
                   commands=[
                       'echo "$GREETING"',
                       "echo oops >&2",
                       "pwd > where.txt; echo \"cwd=$(pwd)\"",
                       'echo \'::{"outputs":{"answer":42,"who":"Ada"}}::\'',
                       'echo "n=$N"',
                   ])
    out = run(ctx)
    assert out == {"exitCode": 0, "vars": {"answer": 42, "who": "Ada"}}
    infos = [m for level, m in ctx.logs if level == "INFO"]
    warns = [m for level, m in ctx.logs if level == "WARN"]
    assert infos[:2] == ["before", "hello Ada"]
    assert "n=3" in infos
    assert warns == ["oops"]
    cwd = next(m for m in infos if m.startswith("cwd="))[4:]
    assert Path(cwd).parent == (tmp_path / "work" / "exec-1").resolve()
    assert not Path(cwd).exists()  # the fresh working dir is removed afterwards
    assert not any("::{" in m for m in infos)


def test_commands_failure_exit_code_and_set_e(tmp_path):
    ctx = make_ctx(COMMANDS, tmp_path, commands=["echo start", "false", "echo never"])
    with pytest.raises(TaskFailed) as err:
        run(ctx)
    assert err.value.message == "Command failed with exit code 1"
    assert ("INFO", "never") not in ctx.logs
    with pytest.raises(TaskFailed) as err:
        run(make_ctx(COMMANDS, tmp_path, commands=["exit 3"]))
    assert err.value.message == "Command failed with exit code 3"


def test_commands_timeout_kills_process_group(tmp_path):
    marker = tmp_path / "survived"
    ctx = make_ctx(COMMANDS, tmp_path, timeout="PT1S",
                   commands=["echo started", f"(sleep 3; touch {marker}) &", "sleep 30"])
    started = time.monotonic()
    with pytest.raises(TaskFailed) as err:
        run(ctx)
    assert err.value.message == "Command timed out after PT1S"
    assert time.monotonic() - started < 5
    assert ("INFO", "started") in ctx.logs
    time.sleep(3)
    assert not marker.exists()  # the background child was killed with the group


def test_commands_background_child_does_not_hang(tmp_path):
    started = time.monotonic()
    out = run(make_ctx(COMMANDS, tmp_path, commands=["sleep 30 &", "echo done"]))
    assert out["exitCode"] == 0
    assert time.monotonic() - started < 6


def test_commands_custom_interpreter_and_input_files(tmp_path):
    ctx = make_ctx(COMMANDS, tmp_path, interpreter=["/bin/bash", "-c"],
                   inputFiles={"data.txt": "a\nb\n"},
                   commands=["mapfile -t rows < data.txt", 'echo "rows=${#rows[@]}"'])
    run(ctx)
    assert ("INFO", "rows=2") in ctx.logs


def test_commands_missing_interpreter(tmp_path):
    with pytest.raises(TaskFailed, match="Interpreter not found: /nonexistent/sh"):
        run(make_ctx(COMMANDS, tmp_path, interpreter=["/nonexistent/sh", "-c"], commands=["true"]))
