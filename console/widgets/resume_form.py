"""The resume form: one field per declared input, with a widget that fits its type.

``ResumeForm(form)`` takes the request's ``form`` (a list of input declarations as dicts, the
shape of :meth:`engine.inputs.spec.InputSpec.to_dict`) and shows, for each input, its label
(displayName or id), a required mark, the description (dim), the widget, and a line for
messages under it. At the bottom is the reason/comment field, always shown (it goes into the
audit), marked "(required)" when the ``commentRequired`` rule asks for one.

The widget holds *raw* values (text, booleans, lists of text); the engine's validation is the
truth, so this widget never decides whether a value is valid. Its only local checks are
conveniences: character restrictions on date/time/duration fields, and a JSON/YAML parse
message while typing (replaced by the engine's message once :meth:`show_errors` is called).

Which inputs are shown (``dependsOn``) is decided by the engine's own rules: the current raw
values go through :func:`engine.inputs.validate_inputs` locally (pure computation, no I/O) and
its ``visible`` list is used, so the console hides exactly what the engine ignores. Pass
``variables`` (``{"inputs": ..., "outputs": ...}`` from the request context) when conditions
refer to the execution's own inputs or outputs.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from textual import events, on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.timer import Timer
from textual.widget import Widget
from textual.widgets import Input, Label, Select, SelectionList, Switch, TextArea
from textual.widgets.selection_list import Selection

from signoff.engine.approvals.outcome import comment_message, comment_required

if TYPE_CHECKING:
    from textual.dom import DOMNode

    from signoff.engine.inputs import InputSpec

__all__ = ["ResumeForm", "comment_required", "comment_message", "verdict_for_label"]


#: key of the reason/comment field in ``show_errors`` (the engine's key too)
REASON_KEY = "reason"

#: how long after the last change ``Changed`` is posted
DEBOUNCE = 0.15

_PLACEHOLDERS = {
    "DATE": "2026-01-31",
    "DATETIME": "2026-01-31T09:00:00Z",
    "TIME": "09:30",
    "DURATION": "PT1H",
    "INT": "an integer",
    "FLOAT": "a number",
    "EMAIL": "name@example.com",
    "URI": "https://example.com/path",
    "ARRAY": 'a, b, c  or  ["a", "b", "c"]',
    "FILE": "path of a local file",
    "SECRET": "hidden as you type",
}

# Characters each type may contain while typing (the engine still checks the whole value).
_RESTRICT = {
    "DATE": r"[0-9-]*",
    "DATETIME": r"[0-9TtZz:+.,\- ]*",
    "TIME": r"[0-9:.,]*",
    "DURATION": r"[-+0-9PpWwDdTtHhMmSs.,]*",
}

_LINE_HINTS = {
    "ARRAY": "comma-separated values or a JSON array",
}


def verdict_for_label(label: str) -> str:
    """``"approve"`` or ``"deny"`` from a submit button label ("Approve", "Deny 3", ...)."""
    return "deny" if label.strip().lower().startswith(("deny", "reject")) else "approve"


def _s(value: Any) -> str:
    """Text form of a SELECT value, as the engine compares them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return str(value)


def _is_template(value: Any) -> bool:
    from signoff.engine.expressions import contains_template

    return contains_template(value)


def _truthy_default(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return bool(value)
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return False


def _text_default(type_: str, value: Any) -> str:
    if value is None or _is_template(value):
        return ""
    if isinstance(value, str):
        return value
    if type_ == "YAML":
        import yaml

        try:
            return yaml.safe_dump(value, sort_keys=False, allow_unicode=True).rstrip("\n")
        except yaml.YAMLError:
            return str(value)
    if type_ in ("JSON", "ARRAY"):
        try:
            return json.dumps(value, indent=2 if type_ == "JSON" else None, ensure_ascii=False)
        except (TypeError, ValueError):
            return str(value)
    return _s(value)


def parse_problem(type_: str, text: str) -> str | None:
    """A JSON/YAML parse problem in ``text`` with its line and column, or None."""
    if not text.strip():
        return None
    if type_ == "JSON":
        try:
            json.loads(text)
        except json.JSONDecodeError as exc:
            return f"JSON error at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        except (ValueError, RecursionError) as exc:
            return f"JSON error: {exc}"
        return None
    if type_ == "YAML":
        import yaml

        try:
            yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            problem = getattr(exc, "problem", None) or "invalid YAML"
            if mark is not None:
                return f"YAML error at line {mark.line + 1}, column {mark.column + 1}: {problem}"
            return f"YAML error: {problem}"
        except Exception as exc:  # noqa: BLE001 - constructors raise ValueError, RecursionError...
            return f"YAML error: {exc}"
    return None


def _editor_language(type_: str) -> str | None:
    """The TextArea language when tree-sitter and its grammar are installed, else plain text."""
    try:
        from textual._tree_sitter import TREE_SITTER, get_language
    except Exception:  # noqa: BLE001 - private module moved: plain text is fine
        return None
    lang = type_.lower()
    if not TREE_SITTER:
        return None
    try:
        return lang if get_language(lang) is not None else None
    except Exception:  # noqa: BLE001 - a grammar package that fails to load just means no highlighting
        return None


@dataclass
class _Field:
    index: int
    spec: dict[str, Any]
    type: str
    container: Vertical
    error: Label
    widget: Widget
    custom: Input | None = None  # SELECT/MULTISELECT with allowCustomValue
    initial: Any = None
    local_error: str | None = None
    widgets: list[Widget] = field(default_factory=list)

    @property
    def id(self) -> str:
        return str(self.spec["id"])


class ResumeForm(Widget, can_focus=False):
    """Fields for a request's form, plus the reason field (see the module docstring)."""

    DEFAULT_CSS = """
    ResumeForm {
        height: 1fr;
        width: 1fr;
    }
    ResumeForm > VerticalScroll {
        height: 1fr;
        scrollbar-size-vertical: 1;
        padding-right: 1;
    }
    ResumeForm .field {
        height: auto;
        margin: 0 0 1 0;
    }
    ResumeForm .field-head {
        height: 1;
        width: 1fr;
    }
    ResumeForm .field-label {
        text-style: bold;
        width: auto;
    }
    ResumeForm .field.-has-error .field-label {
        color: $text-error;
    }
    ResumeForm .required-mark {
        color: $text-error;
        width: auto;
        margin-left: 1;
    }
    ResumeForm .field-type {
        color: $text-muted;
        width: auto;
        margin-left: 1;
    }
    ResumeForm .description, ResumeForm .hint {
        color: $text-muted;
        width: 1fr;
    }
    ResumeForm .error {
        color: $text-error;
        width: 1fr;
        display: none;
    }
    ResumeForm .error.-shown {
        display: block;
    }
    ResumeForm .field Input, ResumeForm .field Select {
        width: 1fr;
    }
    ResumeForm .field TextArea {
        height: 5;
        width: 1fr;
    }
    ResumeForm .field SelectionList {
        height: auto;
        max-height: 8;
        width: 1fr;
    }
    ResumeForm .field Switch {
        border: none;
        height: 1;
        width: auto;
        padding: 0 1 0 0;
        &:focus {
            border: none;
            background-tint: $foreground 10%;
        }
    }
    ResumeForm .switch-row {
        height: 1;
        width: 1fr;
    }
    ResumeForm .switch-state {
        width: auto;
    }
    ResumeForm #reason-field {
        margin-bottom: 0;
    }
    """

    class _FormMessage(Message):
        def __init__(self, form: ResumeForm) -> None:
            super().__init__()
            self.form = form

        @property
        def control(self) -> ResumeForm:
            return self.form

    class Changed(_FormMessage):
        """Posted (debounced) when any value, including the reason, changes."""

    class SubmitRequested(_FormMessage):
        """Enter was pressed in the reason field (the last one): the form's owner may submit."""

    def __init__(self, form: list[dict], *, comment_mode: str | None = None, id: str | None = None,
                 verdict: str | None = None, variables: Mapping[str, Any] | None = None,
                 show_reason: bool = True, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.show_reason = show_reason
        self.form = [dict(d) for d in (form or [])]
        self.comment_mode = (comment_mode or "NEVER").upper()
        self.verdict = verdict
        self.variables = dict(variables or {})
        self._fields: list[_Field] = []
        self._by_id: dict[str, _Field] = {}
        self._by_widget: dict[int, _Field] = {}
        self._engine_errors: dict[str, str] = {}
        self._shown_errors: dict[str, str] = {}
        self._touched: set[str] = set()
        self._visible: set[str] = {str(d.get("id")) for d in self.form}
        self._debounce: Timer | None = None
        self._ready = False
        self._reason_input: Input | None = None
        self._reason_label: Label | None = None
        self._reason_error: Label | None = None
        self._general_error: Label | None = None
        self._specs: list[InputSpec] | None = None

    # -- building --------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        self._fields, self._by_id, self._by_widget = [], {}, {}
        with VerticalScroll(id="form-scroll"):
            self._general_error = Label("", classes="error general-error", markup=False)
            yield self._general_error
            for index, spec in enumerate(self.form):
                yield from self._compose_field(index, spec)
            if not self.show_reason:  # e.g. a start form: no decision, no reason
                return
            with Vertical(classes="field", id="reason-field"):
                with Horizontal(classes="field-head"):
                    yield Label("Reason", classes="field-label", markup=False)
                    self._reason_label = Label("", classes="required-mark", markup=False)
                    yield self._reason_label
                yield Label("Recorded with the decision in the audit trail", classes="description",
                            markup=False)
                self._reason_input = Input(placeholder="why you decide this way", id="reason",
                                           validate_on=[], compact=True)
                yield self._reason_input
                self._reason_error = Label("", classes="error", id="reason-error", markup=False)
                yield self._reason_error

    def _compose_field(self, index: int, spec: dict[str, Any]) -> ComposeResult:
        type_ = str(spec.get("type") or "STRING").upper()
        if type_ == "ENUM":
            type_ = "SELECT"
        input_id = str(spec.get("id"))
        label = str(spec.get("displayName") or input_id)
        description = spec.get("description")
        required = spec.get("required", True) is not False
        default = spec.get("defaults")
        container = Vertical(classes=f"field type-{type_.lower()}", id=f"field-{index}")
        error = Label("", classes="error", id=f"error-{index}", markup=False)
        widget, custom, initial, hint = self._make_widget(index, type_, spec, default)
        info = _Field(index, spec, type_, container, error, widget, custom, initial)
        info.widgets = [w for w in (widget, custom) if w is not None]
        self._fields.append(info)
        self._by_id[input_id] = info
        for w in info.widgets:
            self._by_widget[id(w)] = info
        with container:
            with Horizontal(classes="field-head"):
                yield Label(label, classes="field-label", markup=False)
                if required:
                    yield Label("*", classes="required-mark", markup=False)
                type_text = type_.lower() if label == input_id else f"{input_id} · {type_.lower()}"
                yield Label(type_text, classes="field-type", markup=False)
            if description and description != label:
                yield Label(str(description), classes="description", markup=False)
            if isinstance(widget, Switch):
                with Horizontal(classes="switch-row"):
                    yield widget
                    yield Label(_switch_text(widget.value), classes="switch-state", id=f"state-{index}",
                                markup=False)
            else:
                yield widget
            if custom is not None:
                yield custom
            if hint:
                yield Label(hint, classes="hint", markup=False)
            yield error

    def _make_widget(self, index: int, type_: str, spec: dict[str, Any],
                     default: Any) -> tuple[Widget, Input | None, Any, str | None]:
        wid = f"input-{index}"
        template_default = _is_template(default)
        hint = f"default: {default}" if template_default else _LINE_HINTS.get(type_)
        values = spec.get("values")
        allow_custom = bool(spec.get("allowCustomValue"))
        if type_ in ("BOOLEAN", "BOOL"):
            on = _truthy_default(default) if not template_default else False
            return Switch(value=on, id=wid), None, on, hint
        if type_ == "SELECT" and isinstance(values, (list, tuple)):
            options = [(_s(v), _s(v)) for v in values]
            known = {k for _, k in options}
            start: Any = Select.NULL
            custom_text = ""
            if default is not None and not template_default:
                if _s(default) in known:
                    start = _s(default)
                elif allow_custom:
                    custom_text = _s(default)
            select = Select(options, prompt="choose…", value=start, allow_blank=True, id=wid, compact=True)
            custom = None
            if allow_custom:
                custom = Input(value=custom_text, placeholder="or type another value", id=f"custom-{index}",
                               classes="custom-value", validate_on=[], compact=True)
            initial = custom_text or (None if start is Select.NULL else start)
            return select, custom, initial, hint
        if type_ == "MULTISELECT" and isinstance(values, (list, tuple)):
            chosen: set[str] = set()
            extra: list[str] = []
            if default is not None and not template_default:
                items = default if isinstance(default, (list, tuple)) else [
                    p.strip() for p in str(default).split(",") if p.strip()]
                for item in items:
                    chosen.add(_s(item))
            keys = [_s(v) for v in values]
            extra = [c for c in chosen if c not in keys]
            selections = [Selection(k, k, k in chosen) for k in dict.fromkeys(keys)]
            sel = SelectionList[str](*selections, id=wid, compact=True)
            custom = None
            if allow_custom:
                custom = Input(value=", ".join(extra), placeholder="other values, comma-separated",
                               id=f"custom-{index}", classes="custom-value", validate_on=[], compact=True)
            initial = [k for k in keys if k in chosen] + extra
            return sel, custom, initial, hint or "space toggles an option"
        if type_ in ("JSON", "YAML"):
            text = _text_default(type_, default)
            language = _editor_language(type_)
            area = TextArea(text, language=language, id=wid, tab_behavior="focus",
                            show_line_numbers=False, soft_wrap=True, compact=True)
            return area, None, text, hint
        # single-line text
        text = _text_default(type_, default)
        placeholder = _PLACEHOLDERS.get(type_, "")
        if type_ in ("SELECT", "MULTISELECT"):  # values come from an expression: free text
            placeholder = "a value" if type_ == "SELECT" else "values, comma-separated"
            hint = hint or (f"one of {values}" if values else None)
        if type_ == "FILE":
            text = ""  # never pre-fill a stored file URI as a local path
        kwargs: dict[str, Any] = {}
        if type_ == "INT":
            kwargs["type"] = "integer"
        elif type_ == "FLOAT":
            kwargs["type"] = "number"
        elif type_ in _RESTRICT:
            kwargs["restrict"] = _RESTRICT[type_]
        if type_ == "SECRET":
            kwargs["password"] = True
        try:
            box = Input(value=text, placeholder=placeholder, id=wid, validate_on=[], compact=True, **kwargs)
        except ValueError:  # a default that the restriction refuses: show it anyway
            kwargs.pop("restrict", None)
            kwargs.pop("type", None)
            box = Input(value=text, placeholder=placeholder, id=wid, validate_on=[], compact=True, **kwargs)
        return box, None, text, hint

    def on_mount(self) -> None:
        self._update_reason_mark()
        self._refresh_visibility()
        self.call_after_refresh(self._set_ready)

    def _set_ready(self) -> None:
        self._ready = True

    # -- public API --------------------------------------------------------------------------
    def values(self) -> dict:
        """Raw values keyed by input id, leaving out hidden fields and empty ones.

        An empty field is left out (rather than sent as ""), so that the engine applies the
        input's default or reports ``Missing required input`` exactly as for the CLI.
        """
        out: dict[str, Any] = {}
        for info in self._fields:
            if info.id not in self._visible:
                continue
            value = self._raw(info)
            if not _empty(value):
                out[info.id] = value
        return out

    def reason(self) -> str | None:
        if self._reason_input is None or not self.show_reason:
            return None
        text = self._reason_input.value.strip()
        return text or None

    def show_errors(self, errors: dict[str, str]) -> None:
        """Show these messages under their fields (``reason`` for the comment field); clear others.

        Messages for inputs that are not on the form, or are hidden, go to a line at the top.
        """
        self._engine_errors = dict(errors or {})
        self._paint_errors()

    @property
    def reason_required(self) -> bool:
        if not self.show_reason:
            return False
        return comment_required(self.comment_mode, self.verdict)

    def set_verdict(self, verdict: str | None) -> None:
        """Which decision the form is for ("approve"/"deny"): decides whether a reason is required."""
        self.verdict = verdict
        self._update_reason_mark()

    @property
    def touched(self) -> set[str]:
        """Input ids (and ``reason``) the user has changed or left; for showing errors gently."""
        return set(self._touched)

    @property
    def visible_ids(self) -> list[str]:
        return [f.id for f in self._fields if f.id in self._visible]

    def field_widget(self, input_id: str) -> Widget:
        """The widget editing ``input_id`` (``reason`` for the reason field)."""
        if input_id == REASON_KEY and REASON_KEY not in self._by_id:
            assert self._reason_input is not None
            return self._reason_input
        return self._by_id[input_id].widget

    def field_container(self, input_id: str) -> Widget:
        if input_id == REASON_KEY and REASON_KEY not in self._by_id:
            return self.query_one("#reason-field")
        return self._by_id[input_id].container

    def error_text(self, input_id: str) -> str:
        """The message currently shown under ``input_id`` ("" when none)."""
        if input_id == REASON_KEY and REASON_KEY not in self._by_id:
            label = self._reason_error
        else:
            label = self._by_id[input_id].error
        return str(label.content) if label is not None and label.has_class("-shown") else ""

    def general_error_text(self) -> str:
        label = self._general_error
        return str(label.content) if label is not None and label.has_class("-shown") else ""

    def focus_first(self) -> None:
        for info in self._fields:
            if info.id in self._visible:
                info.widget.focus()
                return
        if self._reason_input is not None:
            self._reason_input.focus()

    # -- values ------------------------------------------------------------------------------
    def _raw(self, info: _Field) -> Any:
        w = info.widget
        if isinstance(w, Switch):
            return bool(w.value)
        if isinstance(w, Select):
            custom = info.custom.value.strip() if info.custom is not None else ""
            if custom:
                return custom
            return None if w.value is Select.NULL or w.is_blank() else w.value
        if isinstance(w, SelectionList):
            chosen = [str(v) for v in w.selected]
            order = {str(_s(v)): i for i, v in enumerate(info.spec.get("values") or [])}
            chosen.sort(key=lambda v: order.get(v, len(order)))
            if info.custom is not None:
                chosen += [p.strip() for p in info.custom.value.split(",") if p.strip()]
            return chosen
        if isinstance(w, TextArea):
            return w.text
        if isinstance(w, Input):
            return w.value
        return None

    def _all_raw(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for info in self._fields:
            value = self._raw(info)
            if not _empty(value):
                out[info.id] = value
        return out

    # -- visibility (dependsOn) --------------------------------------------------------------
    def _refresh_visibility(self) -> None:
        if not any(d.get("dependsOn") for d in self.form):
            self._visible = {f.id for f in self._fields}
        else:
            self._visible = self._engine_visible()
        for info in self._fields:
            info.container.display = info.id in self._visible

    def _engine_visible(self) -> set[str]:
        try:
            from signoff.engine.inputs import InputSpec, validate_inputs

            if self._specs is None:
                self._specs = [InputSpec.from_dict(d) for d in self.form]
            result = validate_inputs(self._specs, self._all_raw(), variables=self.variables)
            return set(result.visible)
        except Exception:  # noqa: BLE001 - never lose fields because of a local problem
            return {f.id for f in self._fields}

    # -- changes -----------------------------------------------------------------------------
    def _field_of(self, widget: Widget | None) -> _Field | None:
        node: DOMNode | None = widget
        while node is not None and node is not self:
            info = self._by_widget.get(id(node))
            if info is not None:
                return info
            node = node.parent
        return None

    def _changed(self, widget: Widget | None) -> None:
        info = self._field_of(widget)
        if info is not None:
            if self._raw(info) != info.initial:
                self._touched.add(info.id)
            if info.type in ("JSON", "YAML"):
                info.local_error = parse_problem(info.type, self._raw(info) or "")
                # the engine's message is for the old text; the parse check is current
                self._engine_errors.pop(info.id, None)
        elif self._reason_input is not None and widget is self._reason_input and self._reason_input.value:
            self._touched.add(REASON_KEY)
        self._refresh_visibility()
        self._paint_errors()
        if self._debounce is not None:
            self._debounce.stop()
        self._debounce = self.set_timer(DEBOUNCE, self._post_changed)

    def _post_changed(self) -> None:
        self._debounce = None
        self.post_message(self.Changed(self))

    @on(Input.Changed)
    def _input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self._changed(event.input)

    @on(Switch.Changed)
    def _switch_changed(self, event: Switch.Changed) -> None:
        event.stop()
        info = self._field_of(event.switch)
        if info is not None:
            self.query_one(f"#state-{info.index}", Label).update(_switch_text(event.value))
        self._changed(event.switch)

    @on(Select.Changed)
    def _select_changed(self, event: Select.Changed) -> None:
        event.stop()
        self._changed(event.select)

    @on(SelectionList.SelectedChanged)
    def _selection_changed(self, event: SelectionList.SelectedChanged) -> None:
        event.stop()
        self._changed(event.selection_list)

    @on(TextArea.Changed)
    def _text_changed(self, event: TextArea.Changed) -> None:
        event.stop()
        self._changed(event.text_area)

    @on(Input.Submitted)
    def _input_submitted(self, event: Input.Submitted) -> None:
        """Enter in a one-line field moves on, like tab; in the reason field it asks to submit."""
        event.stop()
        if event.input is self._reason_input:
            self.post_message(self.SubmitRequested(self))
        else:
            self.screen.focus_next()

    def on_descendant_blur(self, event: events.DescendantBlur) -> None:
        if not self._ready:
            return
        info = self._field_of(event.widget)
        key = info.id if info is not None else (REASON_KEY if event.widget is self._reason_input else None)
        if key is not None and key not in self._touched:
            self._touched.add(key)
            self.post_message(self.Changed(self))

    # -- painting ----------------------------------------------------------------------------
    def _update_reason_mark(self) -> None:
        if self._reason_label is not None:
            self._reason_label.update("* (required)" if self.reason_required else "(optional)")

    def _paint_errors(self) -> None:
        errors = self._engine_errors
        for info in self._fields:
            text = errors.get(info.id) or info.local_error or ""
            if info.id not in self._visible:
                text = ""
            _set_message(info.error, text)
            info.container.set_class(bool(text), "-has-error")
        if self._reason_error is not None and self.show_reason and REASON_KEY not in self._by_id:
            text = errors.get(REASON_KEY, "")
            _set_message(self._reason_error, text)
            self.query_one("#reason-field").set_class(bool(text), "-has-error")
        known = set(self._by_id) | {REASON_KEY}
        other = [msg for key, msg in errors.items()
                 if key not in known or (key in self._by_id and key not in self._visible)]
        if self._general_error is not None:
            _set_message(self._general_error, "\n".join(other))


def _switch_text(on: bool) -> str:
    return "yes" if on else "no"


def _set_message(label: Label, text: str) -> None:
    if str(label.content) != text:
        label.update(text)
    label.set_class(bool(text), "-shown")


def _empty(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, (list, tuple)):
        return not value
    return False
