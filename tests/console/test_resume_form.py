"""The resume form (console/widgets/resume_form.py, console/screens/form_screen.py), driven by
Pilot against the real engine through LocalBackend: live validation with the engine's own
messages, refused and accepted submits, dependsOn, JSON parse checking, commentRequired."""
from __future__ import annotations

import threading
from typing import Any

import pytest
from textual.app import App
from textual.widgets import Input, Select, SelectionList, Switch, TextArea

from signoff.console.backend import LocalBackend
from signoff.console.screens.form_screen import FormResult, FormScreen
from signoff.console.widgets.resume_form import ResumeForm
from tests.support import ALICE, BOB, make_service

PENDING = object()


@pytest.fixture
def anyio_backend():
    return "asyncio"

RELEASE_FLOW = """
id: release
namespace: t.console
tasks:
  - id: gate
    type: io.kestra.plugin.core.flow.Pause
    onResume:
      - id: go
        type: BOOLEAN
        displayName: Ship it
        description: Roll the release out now
        defaults: true
      - id: env
        type: SELECT
        displayName: Environment
        values: [staging, prod]
        defaults: staging
      - id: replicas
        type: INT
        description: How many replicas to run
        max: 10
        defaults: 3
      - id: window
        type: DATE
        description: Maintenance day
        required: false
      - id: regions
        type: MULTISELECT
        values: [eu, us, ap]
        defaults: [eu]
      - id: config
        type: JSON
        description: Extra settings
        required: false
      - id: token
        type: SECRET
        description: Deploy token
        required: false
      - id: ticket
        type: STRING
        displayName: Change ticket
        dependsOn:
          inputs: [env]
          condition: "{{ inputs.env == 'prod' }}"
  - id: done
    type: io.kestra.plugin.core.log.Log
    message: "go={{ outputs.gate.onResume.go }} env={{ outputs.gate.onResume.env }}"
"""

REVIEW_FLOW = """
id: review
namespace: t.console
tasks:
  - id: check
    type: io.kestra.plugin.core.flow.Approval
    commentRequired: ON_DENY
    denyBehavior: CONTINUE
    inputs:
      - id: note
        type: STRING
        required: false
"""


def _engine(tmp_path, flow_id: str = "release"):
    svc = make_service(tmp_path, {"release.yaml": RELEASE_FLOW, "review.yaml": REVIEW_FLOW})
    ex = svc.start_execution(BOB, "t.console", flow_id, {})
    assert ex["state"] == "PAUSED", ex["error"]
    [request] = ex["requests"]
    backend = LocalBackend(svc, ALICE)
    return svc, backend, backend.get_request(request["id"]), ex["id"]


class FormApp(App):
    """Pushes one FormScreen and keeps what it was dismissed with."""

    CSS = "Input, TextArea { }"

    def __init__(self, make_screen) -> None:
        super().__init__()
        self.make_screen = make_screen
        self.result: Any = PENDING

    def on_mount(self) -> None:
        self.push_screen(self.make_screen(), callback=self._dismissed)

    def _dismissed(self, result: Any) -> None:
        self.result = result


def _form_app(backend: LocalBackend, request: dict, *, submit_label: str = "Approve") -> FormApp:
    return FormApp(lambda: FormScreen(
        f"{request['flow_id']} · {request['task_id']}", request["form"],
        validate=lambda v: backend.validate(request["id"], v),
        comment_mode=(request.get("rules") or {}).get("commentRequired"),
        subtitle=f"{request['namespace']} · requested by {request['requested_by']}",
        submit_label=submit_label))


async def settle(pilot) -> None:
    """Let the debounce fire and every validation worker finish and be painted."""
    for _ in range(6):
        await pilot.pause(0.16)
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        pending = any(form._debounce is not None for form in pilot.app.screen.query(ResumeForm))
        if not pending and not any(w.is_running for w in pilot.app.workers):
            break


def _form(app: App) -> ResumeForm:
    return app.screen.query_one(ResumeForm)


async def _type_into(pilot, form: ResumeForm, input_id: str, text: str, *, clear: bool = True) -> None:
    widget = form.field_widget(input_id)
    widget.focus()
    await pilot.pause()
    if clear:
        if isinstance(widget, Input):
            widget.value = ""
        elif isinstance(widget, TextArea):
            widget.text = ""
        await pilot.pause()
    await pilot.press(*[{" ": "space"}.get(c, c) for c in text] if text else [])


# --- widgets per type ---------------------------------------------------------------------------

@pytest.mark.anyio
async def test_each_type_gets_its_widget_with_defaults(tmp_path):
    _, backend, request, _ = _engine(tmp_path)
    app = _form_app(backend, request)
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot)
        form = _form(app)
        assert isinstance(form.field_widget("go"), Switch) and form.field_widget("go").value is True
        assert isinstance(form.field_widget("env"), Select) and form.field_widget("env").value == "staging"
        replicas = form.field_widget("replicas")
        assert isinstance(replicas, Input) and replicas.type == "integer" and replicas.value == "3"
        window = form.field_widget("window")
        assert isinstance(window, Input) and window.placeholder == "2026-01-31"
        assert isinstance(form.field_widget("regions"), SelectionList)
        assert isinstance(form.field_widget("config"), TextArea)
        assert form.field_widget("token").password is True
        # the defaults are valid: nothing to fix, submit is possible
        assert form.values() == {"go": True, "env": "staging", "replicas": "3", "regions": ["eu"]}
        assert not app.screen.query_one("#submit").disabled
        # labels: displayName, required mark, description
        head = form.field_container("go")
        texts = [str(lbl.content) for lbl in head.query("Label")]
        assert "Ship it" in texts and "*" in texts and "Roll the release out now" in texts
        # date input refuses letters as you type
        window.focus()
        await pilot.press("2", "0", "x", "2", "6")
        assert window.value == "2026"


# --- live validation with the engine's messages; refused, then accepted ---------------------------

@pytest.mark.anyio
async def test_invalid_int_refused_then_fixed_value_decides_the_request(tmp_path):
    svc, backend, request, execution_id = _engine(tmp_path)
    app = _form_app(backend, request)
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot)
        form = _form(app)
        await _type_into(pilot, form, "replicas", "25")
        await settle(pilot)
        expected = "Invalid input for `replicas`, it must be less than `10`, but received `25`"
        assert backend.validate(request["id"], form.values())["replicas"] == expected  # the CLI's text
        assert form.error_text("replicas") == expected
        assert app.screen.query_one("#submit").disabled
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert app.result is PENDING  # refused
        assert form.error_text("replicas") == expected
        assert app.focused is form.field_widget("replicas")  # the first problem gets the focus

        # fix it, pick more regions and prod (which shows the ticket field), then submit
        await _type_into(pilot, form, "replicas", "7")
        regions = form.field_widget("regions")
        regions.focus()
        await pilot.press("down", "space")  # + us
        env = form.field_widget("env")
        env.focus()
        await pilot.press("enter", "down", "enter")  # open, move to prod, choose
        await settle(pilot)
        assert env.value == "prod"
        assert "ticket" in form.visible_ids
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert app.result is PENDING  # the ticket is required now
        assert form.error_text("ticket") == "Missing required input:`ticket`"
        await _type_into(pilot, form, "ticket", "CHG-42")
        await _type_into(pilot, form, "token", "s3cret")
        await _type_into(pilot, form, "config", '{"canary": true}')
        await settle(pilot)
        assert form.error_text("replicas") == ""
        assert not app.screen.query_one("#submit").disabled
        await pilot.press("ctrl+s")
        await settle(pilot)
        result = app.result
    assert isinstance(result, FormResult)
    assert result.values == {"go": True, "env": "prod", "replicas": "7", "regions": ["eu", "us"],
                             "config": '{"canary": true}', "token": "s3cret", "ticket": "CHG-42"}
    [outcome] = backend.decide([request["id"]], "approve", inputs=result.values, reason=result.reason)
    assert outcome.outcome == "decided" and outcome.state == "APPROVED"
    ex = svc.get_execution(ALICE, execution_id)
    assert ex["state"] == "SUCCESS"
    on_resume = ex["outputs"]["gate"]["onResume"]
    assert on_resume["replicas"] == 7 and on_resume["env"] == "prod" and on_resume["regions"] == ["eu", "us"]
    assert on_resume["config"] == {"canary": True} and on_resume["ticket"] == "CHG-42"
    assert ex["logs"][-1]["message"] == "go=true env=prod"


@pytest.mark.anyio
async def test_keyboard_only_navigation_and_enter_in_reason_submits(tmp_path):
    _, backend, request, _ = _engine(tmp_path)
    app = _form_app(backend, request)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        form = _form(app)
        assert app.focused is form.field_widget("go")  # first field has focus
        for button in app.screen.query("Button"):  # fits 80x24: the buttons are on screen
            assert button.region.bottom <= 24 and button.region.right <= 80 and button.region.height
        await pilot.press("space")  # switch off
        assert form.field_widget("go").value is False
        await pilot.press("tab", "tab")  # env -> replicas
        assert app.focused is form.field_widget("replicas")
        await pilot.press("enter")  # enter in a one-line field moves on
        assert app.focused is form.field_widget("window")
        await pilot.press("shift+tab")
        assert app.focused is form.field_widget("replicas")
        form.field_widget("reason").focus()
        await pilot.press("o", "k", "enter")  # enter in the reason field (the last) submits
        await settle(pilot)
    assert app.result == FormResult(values={"go": False, "env": "staging", "replicas": "3", "regions": ["eu"]},
                                    reason="ok")


# --- dependsOn ----------------------------------------------------------------------------------

@pytest.mark.anyio
async def test_depends_on_shows_and_hides_a_field(tmp_path):
    _, backend, request, _ = _engine(tmp_path)
    app = _form_app(backend, request)
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot)
        form = _form(app)
        assert "ticket" not in form.visible_ids
        assert form.field_container("ticket").display is False
        form.field_widget("env").value = "prod"
        await settle(pilot)
        assert "ticket" in form.visible_ids and form.field_container("ticket").display is True
        await _type_into(pilot, form, "ticket", "CHG-1")
        assert form.values()["ticket"] == "CHG-1"
        form.field_widget("env").value = "staging"
        await settle(pilot)
        assert "ticket" not in form.visible_ids
        assert "ticket" not in form.values()  # hidden fields are not sent
        assert not app.screen.query_one("#submit").disabled


# --- JSON parse checking ------------------------------------------------------------------------

@pytest.mark.anyio
async def test_json_parse_error_is_shown_as_you_type(tmp_path):
    _, backend, request, _ = _engine(tmp_path)
    gate = threading.Event()
    gate.set()

    def validate(values):
        assert gate.wait(10)
        return backend.validate(request["id"], values)

    app = FormApp(lambda: FormScreen("json", request["form"], validate=validate))
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot)
        form = _form(app)
        gate.clear()  # hold the engine's answers back
        await _type_into(pilot, form, "config", '{"a": 1,')
        await pilot.pause(0.3)
        # at once, before the engine answers: the local parse check with line and column
        assert form.error_text("config").startswith("JSON error at line 1, column 9")
        gate.set()
        await settle(pilot)
        # then the engine's message (the CLI's)
        assert form.error_text("config").startswith("Invalid input for `config`, it must be valid JSON (")
        assert "at line 1, column 9" in form.error_text("config")
        assert app.screen.query_one("#submit").disabled
        await pilot.press("space", '"', "b", '"', ":", "2", "}")
        await settle(pilot)
        assert form.error_text("config") == ""
        assert form.values()["config"] == '{"a": 1, "b":2}'


# --- commentRequired ------------------------------------------------------------------------

@pytest.mark.anyio
async def test_comment_required_on_deny(tmp_path):
    svc, backend, request, execution_id = _engine(tmp_path, "review")
    assert request["rules"]["commentRequired"] == "ON_DENY"
    app = _form_app(backend, request, submit_label="Deny")
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot)
        form = _form(app)
        assert form.reason_required
        assert "* (required)" in [str(lbl.content) for lbl in form.field_container("reason").query("Label")]
        assert app.screen.query_one("#submit").disabled
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert app.result is PENDING
        message = "A comment is required to deny this request (commentRequired: ON_DENY)"
        assert form.error_text("reason") == message
        # the engine says the same when asked to deny without a reason
        [refused] = backend.decide([request["id"]], "deny", reason=None)
        assert refused.outcome != "decided" and message in refused.message
        await _type_into(pilot, form, "reason", "not this week")
        await settle(pilot)
        assert form.error_text("reason") == ""
        await pilot.press("ctrl+s")
        await settle(pilot)
    assert app.result == FormResult(values={}, reason="not this week")
    [outcome] = backend.decide([request["id"]], "deny", inputs=app.result.values, reason=app.result.reason)
    assert outcome.outcome == "decided" and outcome.state == "DENIED"


@pytest.mark.anyio
async def test_comment_not_required_to_approve_when_on_deny(tmp_path):
    _, backend, request, _ = _engine(tmp_path, "review")
    app = _form_app(backend, request, submit_label="Approve")
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot)
        assert not _form(app).reason_required
        await pilot.press("ctrl+s")
        await settle(pilot)
    assert app.result == FormResult(values={}, reason=None)


# --- cancel -------------------------------------------------------------------------------

@pytest.mark.anyio
async def test_escape_cancels(tmp_path):
    _, backend, request, _ = _engine(tmp_path)
    app = _form_app(backend, request)
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot)
        await _type_into(pilot, _form(app), "replicas", "5")
        _form(app).field_widget("env").focus()
        await pilot.press("enter")  # open the select's menu
        await pilot.press("escape")  # closes only the menu
        await settle(pilot)
        assert app.result is PENDING and isinstance(app.screen, FormScreen)
        await pilot.press("escape")
        await settle(pilot)
        assert app.result is None
        assert not isinstance(app.screen, FormScreen)
    assert backend.get_request(request["id"])["state"] == "PENDING"


@pytest.mark.anyio
async def test_backend_failure_is_shown_and_blocks_submit(tmp_path):
    _, backend, request, _ = _engine(tmp_path)

    def broken(values):
        raise RuntimeError("server unreachable")

    app = FormApp(lambda: FormScreen("t", request["form"], validate=broken))
    async with app.run_test(size=(100, 40)) as pilot:
        await settle(pilot)
        assert "server unreachable" in str(app.screen.query_one("#status").content)
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert app.result is PENDING


# --- the widget alone: the other types ----------------------------------------------------------

OTHER_FORM = [
    {"id": "settings", "type": "YAML", "required": False},
    {"id": "tags", "type": "ARRAY", "itemType": "INT", "required": False},
    {"id": "size", "type": "SELECT", "values": ["S", "M"], "allowCustomValue": True, "defaults": "XL"},
    {"id": "ratio", "type": "FLOAT", "min": 0, "max": 1},
    {"id": "wait", "type": "DURATION", "defaults": "PT1H"},
    {"id": "at", "type": "TIME", "required": False},
    {"id": "when", "type": "DATETIME", "required": False},
    {"id": "mail", "type": "EMAIL", "required": False},
    {"id": "link", "type": "URI", "required": False},
    {"id": "attachment", "type": "FILE", "required": False},
    {"id": "nested.count", "type": "INT", "displayName": "Count", "required": False},
]


class WidgetApp(App):
    def __init__(self, form: list[dict]) -> None:
        super().__init__()
        self.form = form
        self.changes = 0

    def compose(self):
        yield ResumeForm(self.form, comment_mode="ALWAYS", id="the-form")

    def on_resume_form_changed(self, event: ResumeForm.Changed) -> None:
        self.changes += 1


@pytest.mark.anyio
async def test_other_types_values_and_engine_agreement():
    from signoff.engine.inputs import InputSpec, validate_inputs

    app = WidgetApp(OTHER_FORM)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        form = app.query_one(ResumeForm)
        assert form.reason_required  # ALWAYS, whatever the verdict
        assert isinstance(form.field_widget("settings"), TextArea)
        assert form.field_widget("tags").placeholder.startswith("a, b, c")
        assert isinstance(form.field_widget("size"), Select)
        assert form.query_one("#custom-2", Input).value == "XL"  # a custom default goes in the box
        assert form.field_widget("ratio").type == "number"
        assert form.field_widget("wait").value == "PT1H"
        assert form.field_widget("when").placeholder == "2026-01-31T09:00:00Z"
        assert form.field_widget("at").placeholder == "09:30"
        assert form.values() == {"size": "XL", "wait": "PT1H"}

        await _type_into(pilot, form, "settings", "a: [1, 2")
        await pilot.pause()
        assert form.error_text("settings").startswith("YAML error at line ")
        await _type_into(pilot, form, "settings", "a: 1")
        await _type_into(pilot, form, "tags", "1, 2")
        await _type_into(pilot, form, "ratio", "0.5")
        await _type_into(pilot, form, "at", "09:30")
        await _type_into(pilot, form, "when", "2026-01-31T09:00:00Z")
        await _type_into(pilot, form, "nested.count", "4")
        await pilot.pause()
        assert form.error_text("settings") == ""
        values = form.values()
        assert values["nested.count"] == "4" and values["tags"] == "1, 2"
        # what the widgets hold is what the engine accepts
        result = validate_inputs([InputSpec.from_dict(d) for d in OTHER_FORM], values)
        assert result.errors == {}
        assert result.values["nested"] == {"count": 4} and result.values["tags"] == [1, 2]
        assert result.values["settings"] == {"a": 1} and result.values["size"] == "XL"

        # debounced: a burst of typing posts few Changed messages
        app.changes = 0
        await pilot.pause(0.3)
        form.field_widget("mail").focus()
        await pilot.press(*"ops@example.com")
        await pilot.pause(0.3)
        assert 1 <= app.changes <= 3

        # messages: under their fields, unknown keys at the top, cleared when absent
        form.show_errors({"ratio": "Invalid input for `ratio`, it must be less than `1`, but received `2`",
                          "bogus": "Unknown input `bogus`; the flow declares: settings",
                          "reason": "A comment is required to approve this request (commentRequired: ALWAYS)"})
        await pilot.pause()
        assert form.error_text("ratio").endswith("received `2`")
        assert form.general_error_text().startswith("Unknown input `bogus`")
        assert form.error_text("reason").startswith("A comment is required")
        form.show_errors({})
        await pilot.pause()
        assert form.error_text("ratio") == form.general_error_text() == form.error_text("reason") == ""


@pytest.mark.anyio
async def test_start_form_without_reason_field():
    seen = []

    def validate(values):
        seen.append(values)
        return {}

    app = FormApp(lambda: FormScreen("start", OTHER_FORM[2:4], validate=validate, submit_label="Start",
                                     comment_mode="ALWAYS", show_reason=False))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert not app.screen.query("#reason")
        await _type_into(pilot, _form(app), "ratio", "0.25")
        await settle(pilot)
        await pilot.press("ctrl+s")
        await settle(pilot)
    assert app.result == FormResult(values={"size": "XL", "ratio": "0.25"}, reason=None)
    assert seen[-1] == {"size": "XL", "ratio": "0.25"}


# --- snapshot -----------------------------------------------------------------------------
