"""The resume form of the web page: one HTML control per input type, built from the request's
frozen form and the values posted so far.

The engine's validation is the truth: which fields are shown (``dependsOn``) and what the
defaults are come from :func:`engine.inputs.validate_inputs` on the current raw values, the
same computation the console's form does, and the messages next to the fields are the ones the
engine returned for the decision. The page therefore works without JavaScript: posting the form
with "Update the form" (or a decision the engine refuses) renders it again with the fields that
are now visible; ``/web/static/signoff.js`` only presses that button for you when a field other
fields depend on changes.

Decisions per type (what a phone offers, and what the engine accepts as text):

- BOOLEAN/BOOL: a yes/no choice with an empty first option (a required one must be chosen).
- SELECT: a drop-down of the rendered ``values``; with ``allowCustomValue`` a text box with the
  values as suggestions. MULTISELECT: one checkbox per value (plus a comma-separated text box
  for other values when allowed).
- INT/FLOAT: number boxes (numeric keyboard), DATE: a date picker, TIME: a time picker;
  DATETIME stays text (the engine needs a time zone, which the browser's picker drops),
  DURATION text (ISO 8601, ``PT1H``), EMAIL/URI their typed boxes, SECRET a password box that
  never echoes the value back, JSON/YAML a text area, ARRAY one line (comma-separated or a JSON
  array).
- FILE: the engine takes files only when an execution starts (from a local path), never in a
  decision (not from the console, the CLI or the API either), so the page says so instead of
  offering an upload the engine would refuse; a required FILE field cannot be satisfied.

The form is sent with ``novalidate``: the browser never blocks a submission with its own
messages, so every message a person sees is the engine's.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from signoff.engine.inputs import InputError, InputSpec, select_choices, validate_inputs

#: prefix of a field's name in the posted form (``in-<input id>``), and of its custom-value box
FIELD_PREFIX = "in-"
CUSTOM_SUFFIX = "--custom"

_PLACEHOLDERS = {
    "DATETIME": "2026-01-31T09:00:00Z",
    "DURATION": "PT1H (ISO 8601 duration)",
    "EMAIL": "name@example.com",
    "URI": "https://example.com/path",
    "ARRAY": "a, b, c  or  [\"a\", \"b\"]",
    "JSON": "{\"key\": \"value\"}",
}

#: (control, HTML input type) per engine type; "text" when not listed
_CONTROLS: dict[str, tuple[str, str]] = {
    "BOOLEAN": ("bool", ""), "BOOL": ("bool", ""),
    "SELECT": ("select", ""), "MULTISELECT": ("checkboxes", ""),
    "INT": ("input", "number"), "FLOAT": ("input", "number"),
    "DATE": ("input", "date"), "TIME": ("input", "time"),
    "DATETIME": ("input", "text"), "DURATION": ("input", "text"),
    "EMAIL": ("input", "email"), "URI": ("input", "url"), "SECRET": ("input", "password"),
    "STRING": ("input", "text"), "ARRAY": ("input", "text"),
    "JSON": ("textarea", ""), "YAML": ("textarea", ""),
    "FILE": ("file", ""),
}


@dataclass
class Field:
    """One visible field, ready for the template."""

    id: str
    type: str
    label: str
    description: str | None
    required: bool
    control: str  # bool | select | checkboxes | input | textarea | file
    input_type: str = "text"
    value: str = ""
    selected: list[str] = field(default_factory=list)
    options: list[str] = field(default_factory=list)
    custom: bool = False
    custom_value: str = ""
    error: str | None = None
    hint: str | None = None
    placeholder: str = ""
    attrs: dict[str, str] = field(default_factory=dict)
    #: other fields depend on this one (the script refreshes the form when it changes)
    refresh: bool = False

    @property
    def name(self) -> str:
        return FIELD_PREFIX + self.id


@dataclass
class FormView:
    fields: list[Field]
    #: messages for keys that are not a visible field (unknown inputs, a hidden field's problem)
    other_errors: list[str]
    #: some field has a dependsOn: the "Update the form" button is shown
    dynamic: bool


def posted_values(items: Sequence[tuple[str, str]], form: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The raw values of a posted form, as the engine takes them from a person: text per field,
    a list for MULTISELECT (checked boxes plus the comma-separated other values), empty fields
    left out (as the console does: an empty box means "not given", so a default applies and a
    required field is reported missing)."""
    types = {str(f.get("id")): str(f.get("type") or "STRING").upper() for f in form}
    raw: dict[str, Any] = {}
    for key, value in items:
        if not key.startswith(FIELD_PREFIX):
            continue
        name = key[len(FIELD_PREFIX):]
        custom = name.endswith(CUSTOM_SUFFIX)
        if custom:
            name = name[:-len(CUSTOM_SUFFIX)]
        if name not in types:
            continue
        if types[name] == "MULTISELECT":
            parts = [p.strip() for p in value.split(",")] if custom else [value]
            raw.setdefault(name, []).extend(p for p in parts if p.strip())
        elif value.strip():
            if custom or name not in raw:
                raw[name] = value
    return {k: v for k, v in raw.items() if v not in ([], "")}


def build_form(form: Sequence[Mapping[str, Any]], raw: Mapping[str, Any], errors: Mapping[str, str], *,
               variables: Mapping[str, Any] | None = None, functions: Mapping[str, Any] | None = None,
               echo_secrets: bool = False) -> FormView:
    """The fields to show for ``raw`` (the values posted so far; empty on the first visit, so
    the defaults are prefilled) with the engine's ``errors`` next to them."""
    specs = []
    for declaration in form:
        try:
            specs.append(InputSpec.from_dict(dict(declaration)))
        except (KeyError, TypeError, ValueError):
            continue
    dependencies = {d for s in specs if s.depends_on for d in (s.depends_on.inputs or [])}
    dynamic = any(s.depends_on for s in specs)
    try:
        result = validate_inputs(specs, dict(raw), variables=variables, functions=functions)
        visible = set(result.visible)
        defaults = result.values
    except Exception:  # noqa: BLE001 - never lose fields because of a problem computing visibility
        visible, defaults = {s.id for s in specs}, {}
    fields: list[Field] = []
    for spec in specs:
        if spec.id not in visible:
            continue
        given = raw.get(spec.id)
        shown = given if given is not None else _lookup(defaults, spec.id)
        fields.append(_field(spec, shown, errors.get(spec.id), variables, functions, echo_secrets,
                             refresh=spec.id in dependencies))
    shown_ids = {f.id for f in fields}
    other = [message for key, message in errors.items() if key not in shown_ids and key != "reason"]
    return FormView(fields, other, dynamic)


def _lookup(values: Mapping[str, Any], dotted: str) -> Any:
    node: Any = values
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _text(type_: str, value: Any) -> str:
    """A value as the text a control holds."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if type_ == "YAML":
        import yaml

        return str(yaml.safe_dump(value, sort_keys=False, allow_unicode=True)).rstrip("\n")
    if type_ == "ARRAY" and isinstance(value, list) and all(
            isinstance(v, (str, int, float)) and "," not in str(v) for v in value):
        return ", ".join(str(v) for v in value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, indent=2 if type_ == "JSON" else None, ensure_ascii=False)
    return str(value)


def _field(spec: InputSpec, value: Any, error: str | None, variables: Mapping[str, Any] | None,
           functions: Mapping[str, Any] | None, echo_secrets: bool, *, refresh: bool) -> Field:
    type_ = spec.type.upper()
    control, input_type = _CONTROLS.get(type_, ("input", "text"))
    out = Field(id=spec.id, type=type_, label=spec.display_name or spec.id, description=spec.description,
                required=bool(spec.required), control=control, input_type=input_type or "text", error=error,
                placeholder=_PLACEHOLDERS.get(type_, ""), refresh=refresh)
    if control in ("select", "checkboxes"):
        try:
            choices = [_text("STRING", v) for v in select_choices(spec, variables=variables, functions=functions)]
        except InputError as exc:
            choices = []
            out.error = out.error or exc.message
        out.options = list(dict.fromkeys(choices))
        out.custom = spec.allow_custom_value
        if control == "select":
            out.value = _text(type_, value)
            if out.custom:
                out.control, out.input_type = "input", "text"  # free text with the values suggested
        else:
            items = value if isinstance(value, list) else (
                [p.strip() for p in str(value).split(",") if p.strip()] if value is not None else [])
            out.selected = [_text("STRING", v) for v in items]
            out.custom_value = ", ".join(v for v in out.selected if v not in out.options)
    elif type_ == "SECRET":
        out.value = _text(type_, value) if echo_secrets else ""
        out.attrs["autocomplete"] = "off"
    else:
        out.value = _text(type_, value)
    if type_ == "INT":
        out.attrs.update(step="1", inputmode="numeric")
    elif type_ == "FLOAT":
        out.attrs.update(step="any", inputmode="decimal")
    elif type_ == "TIME":
        out.attrs["step"] = "1"
    if type_ in ("INT", "FLOAT"):
        for bound in ("min", "max"):
            limit = getattr(spec, bound)
            if isinstance(limit, (int, float)) and not isinstance(limit, bool):
                out.attrs[bound] = str(limit)
    if type_ == "DATE":
        for bound, attr in (("after", "min"), ("before", "max")):
            limit = getattr(spec, bound)
            if isinstance(limit, str) and len(limit) == 10:
                out.attrs[attr] = limit
    if type_ == "ARRAY":
        out.hint = "comma-separated values or a JSON array" + (f" of {spec.item_type}" if spec.item_type else "")
    elif type_ == "DATETIME":
        out.hint = "date and time with a zone, e.g. 2026-01-31T09:00:00Z or 2026-01-31T10:00:00+01:00"
    elif type_ == "DURATION":
        out.hint = "ISO 8601 duration, e.g. PT30M, PT4H, P2D"
    elif type_ == "FILE":
        out.hint = "this input takes a file, and decisions cannot carry files (the engine takes files " \
                   "only when an execution starts)"
    elif type_ == "SECRET":
        out.hint = "hidden as you type; never shown again"
    if out.custom and control == "select":
        out.hint = "choose a suggested value or type another"
    return out
