"""engine.server.web_form without a browser: the control each input type gets, what a posted
form becomes for the engine, defaults and templated SELECT values rendered by the engine,
dependsOn visibility, and the engine's messages placed next to their fields."""
from __future__ import annotations

from signoff.engine.inputs import InputSpec
from signoff.engine.server.web_form import build_form, posted_values


def spec(input_id: str, type_: str, **extra: object) -> dict[str, object]:
    return InputSpec.from_dict({"id": input_id, "type": type_, **extra}).to_dict()


FORM = [
    spec("ok", "BOOLEAN"), spec("n", "INT", min=1, max=5, defaults=2), spec("x", "FLOAT", required=False),
    spec("pick", "SELECT", values=["a", "b"]), spec("many", "MULTISELECT", values=["p", "q"], allowCustomValue=True,
                                                   required=False),
    spec("day", "DATE", after="2026-01-01"), spec("at", "DATETIME"), spec("t", "TIME"), spec("d", "DURATION"),
    spec("mail", "EMAIL"), spec("u", "URI"), spec("j", "JSON", defaults={"k": [1, 2]}), spec("y", "YAML"),
    spec("arr", "ARRAY", itemType="INT", defaults=[1, 2]), spec("s", "SECRET"), spec("f", "FILE"),
    spec("text", "STRING", defaults="hello"),
]


def test_each_type_gets_its_control_and_defaults():
    view = build_form(FORM, {}, {})
    fields = {f.id: f for f in view.fields}
    kinds = {i: (f.control, f.input_type) for i, f in fields.items()}
    assert kinds == {
        "ok": ("bool", "text"), "n": ("input", "number"), "x": ("input", "number"), "pick": ("select", "text"),
        "many": ("checkboxes", "text"), "day": ("input", "date"), "at": ("input", "text"), "t": ("input", "time"),
        "d": ("input", "text"), "mail": ("input", "email"), "u": ("input", "url"), "j": ("textarea", "text"),
        "y": ("textarea", "text"), "arr": ("input", "text"), "s": ("input", "password"), "f": ("file", "text"),
        "text": ("input", "text"),
    }
    assert fields["n"].value == "2" and fields["n"].attrs == {"step": "1", "inputmode": "numeric", "min": "1",
                                                              "max": "5"}
    assert fields["day"].attrs == {"min": "2026-01-01"}
    assert fields["j"].value == '{\n  "k": [\n    1,\n    2\n  ]\n}' and fields["arr"].value == "1, 2"
    assert fields["text"].value == "hello" and fields["pick"].options == ["a", "b"]
    assert fields["ok"].required and not fields["x"].required
    assert not view.dynamic and view.other_errors == []


def test_posted_values_are_what_a_person_typed():
    items = [("csrf", "t"), ("in-ok", "true"), ("in-n", " "), ("in-many", "p"), ("in-many", "q"),
             ("in-many--custom", "r, s"), ("in-text", "hi"), ("in-unknown", "x"), ("verdict", "approve")]
    assert posted_values(items, FORM) == {"ok": "true", "many": ["p", "q", "r", "s"], "text": "hi"}


def test_secrets_are_not_echoed_and_messages_sit_next_to_their_fields():
    view = build_form(FORM, {"s": "hunter2", "n": "9"}, {"n": "Invalid input for `n`, ...", "ghost": "Unknown input"})
    fields = {f.id: f for f in view.fields}
    assert fields["s"].value == "" and fields["n"].value == "9"
    assert fields["n"].error == "Invalid input for `n`, ..." and view.other_errors == ["Unknown input"]


def test_depends_on_and_templated_values_come_from_the_engine():
    form = [spec("env", "SELECT", values="{{ outputs.envs }}"),
            spec("why", "STRING", dependsOn={"inputs": ["env"], "condition": "{{ inputs.env == 'prod' }}"})]
    variables = {"inputs": {}, "outputs": {"envs": ["dev", "prod"]}}
    hidden = build_form(form, {"env": "dev"}, {}, variables=variables)
    assert [f.id for f in hidden.fields] == ["env"] and hidden.dynamic
    assert hidden.fields[0].options == ["dev", "prod"] and hidden.fields[0].refresh
    shown = build_form(form, {"env": "prod"}, {}, variables=variables)
    assert [f.id for f in shown.fields] == ["env", "why"]
