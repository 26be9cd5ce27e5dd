"""The context pane: everything needed to decide the highlighted request.

The pane never calls the backend itself: :class:`PendingView` fetches ``get_request`` in a
worker (debounced, cached by id) and calls :meth:`ContextPane.show_request`.

Start-up: only the "nothing highlighted" line is composed; the sections (and the Markdown
widget, whose import is heavy) are built when the first request is shown, after the first
paint of the list.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widget import Widget
from textual.widgets import Static

from signoff.console.widgets.pending_table import epoch_seconds, format_span
from signoff.engine.approvals.outcome import comment_mode


def compact(value: Any, limit: int = 80) -> str:
    if isinstance(value, str):
        text = value.replace("\n", " ⏎ ")
    else:
        try:
            text = json.dumps(value, ensure_ascii=False, default=str, separators=(", ", ": "))
        except (TypeError, ValueError):
            text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def flatten(values: Any, prefix: str = "", depth: int = 0) -> list[tuple[str, Any]]:
    """Nested outputs -> [("task.key", value)], at most three levels deep."""
    if isinstance(values, dict) and values and depth < 3:
        out: list[tuple[str, Any]] = []
        for key, value in values.items():
            out += flatten(value, f"{prefix}.{key}" if prefix else str(key), depth + 1)
        return out
    return [(prefix, values)] if prefix else []


class ContextPane(VerticalScroll, can_focus=True):
    DEFAULT_CSS = """
    ContextPane {
        background: $surface;
        border-left: vkey $panel;
        padding: 0 1;
        scrollbar-gutter: stable;
    }
    ContextPane.-below { border-left: none; border-top: hkey $panel; }
    ContextPane:focus { border-left: vkey $primary; }
    ContextPane.-below:focus { border-top: hkey $primary; border-left: none; }
    ContextPane > .ctx-title { text-style: bold; color: $text; margin: 0 0 0 0; }
    ContextPane > .ctx-meta { color: $text-muted; }
    ContextPane > .ctx-heading { text-style: bold; color: $primary; margin-top: 1; }
    ContextPane > Markdown { margin: 0; padding: 0; background: $surface; }
    ContextPane > .ctx-empty { color: $text-muted; text-style: italic; margin-top: 1; }
    ContextPane:nocolor > .ctx-heading { text-style: bold underline; }
    """

    def __init__(self, *, clock: Callable[[], datetime] | None = None, id: str | None = None,
                 classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._clock = clock
        self.request_id: str | None = None
        self._parts: dict[str, Any] = {}
        self._shown: dict[str, str] = {}

    def compose(self) -> ComposeResult:
        yield Static("Nothing highlighted.", classes="ctx-empty", id="ctx-empty")

    #: the sections, in order: (id, kind, heading); kind is "static", "markdown" or a class
    PARTS = (("ctx-title", "static", None), ("ctx-meta", "static", None), ("ctx-due", "static", "Due"),
             ("ctx-details", "markdown", "Details"), ("ctx-impact", "markdown", "Impact"),
             ("ctx-form", "static", "Form"), ("ctx-inputs", "static", "Inputs"),
             ("ctx-outputs", "static", "Earlier outputs"), ("ctx-decisions", "static", "Decisions"))
    _CLASSES = {"ctx-title": "ctx-title", "ctx-meta": "ctx-meta"}

    def _build_parts(self, markdown: dict[str, str]) -> None:
        """Mount the sections (first request shown); Markdown widgets start with their text."""
        from textual.widgets import Markdown

        widgets: list[Widget] = []
        for part_id, kind, heading in self.PARTS:
            if heading is not None:
                widgets.append(Static(heading, classes="ctx-heading", id=f"{part_id}-h"))
            if kind == "markdown":
                widgets.append(Markdown(markdown.get(part_id, ""), id=part_id))
            else:
                widgets.append(Static("", classes=self._CLASSES.get(part_id), id=part_id))
        self._parts = {w.id: w for w in widgets if w.id}
        self.mount_all(widgets)

    def _part(self, part_id: str) -> Any:
        return self._parts[part_id]

    def _markdown(self, part_id: str, text: str, fresh: bool) -> None:
        """Markdown re-parses and re-mounts its blocks on update: skip it when the text is the
        same (requests of one flow often share their details)."""
        if fresh:
            self._shown[part_id] = text
        elif self._shown.get(part_id) != text:
            self._shown[part_id] = text
            self._part(part_id).update(text)

    def on_mount(self) -> None:
        self._show_parts(False)

    def _show_parts(self, visible: bool) -> None:
        for child in self.children:
            child.display = visible if child.id != "ctx-empty" else not visible

    def show_message(self, text: str) -> None:
        self.request_id = None
        self._show_parts(False)
        self.query_one("#ctx-empty", Static).update(text)

    def show_request(self, request: dict[str, Any]) -> None:
        self.request_id = request.get("id")
        ctx = request.get("context") or {}
        rules = request.get("rules") or {}
        details = (ctx.get("details") or "").strip()
        impact = (ctx.get("impact") or "").strip()
        fresh = not self._parts
        if fresh:
            self._build_parts({"ctx-details": details, "ctx-impact": impact})
        self._show_parts(True)
        self._part("ctx-title").update(Text(ctx.get("summary") or request.get("summary") or ""))
        meta = Text()
        meta.append(f"{request.get('id')}", style="bold")
        meta.append(f" · {request.get('namespace')}/{request.get('flow_id')} · task {request.get('task_id')}"
                    f" ({request.get('kind', '')})")
        meta.append(f"\nrequested by {request.get('requested_by')} at {_short_time(request.get('created_at'))}"
                    f" · approvals {request.get('approvals', 0)}/{request.get('required', 1)}")
        assignment = rules.get("escalatedTo") or rules.get("assignment") or {}
        who = [*assignment.get("users", []), *(f"group {g}" for g in assignment.get("groups", []))]
        meta.append("\nassigned to " + (", ".join(who) if who else "any approver"))
        if rules.get("escalatedTo"):
            meta.append(" (escalated)", style="bold")
        if request.get("signatures") == "required":
            signer = getattr(self.app, "decision_signer", None) if self.is_attached else None
            if signer is not None and not signer.found:
                self._look_for_key(request, signer)
            problem = getattr(signer, "problem", None) if getattr(signer, "signer", None) is None else None
            if problem:
                meta.append(f"\n⚠ signed decisions are required here and no usable key was found: {problem}",
                            style="bold red")
            else:
                meta.append("\nsigned decisions required here", style="italic")
        self._part("ctx-meta").update(meta)

        self._part("ctx-due").update(self._due_text(request, rules))

        self._section("details", bool(details))
        if details:
            self._markdown("ctx-details", details, fresh)
        self._section("impact", bool(impact))
        if impact:
            self._markdown("ctx-impact", impact, fresh)

        form = request.get("form") or []
        form_text = Text()
        for spec in form:
            form_text.append(f"{spec.get('id')}", style="bold")
            form_text.append(f"  {spec.get('type', 'STRING')}")
            if spec.get("required", True):
                form_text.append("  required", style="bold")
            if spec.get("defaults") is not None:
                form_text.append(f"  default {compact(spec.get('defaults'), 30)}")
            if spec.get("values"):
                form_text.append(f"  [{', '.join(map(str, spec['values']))}]")
            description = spec.get("displayName") or spec.get("description")
            if description:
                form_text.append(f"\n  {description}", style="italic")
            form_text.append("\n")
        comment = comment_mode(rules)
        if comment != "NEVER":
            form_text.append(f"comment required: {comment.replace('_', ' ').lower()}", style="italic")
        else:
            form_text.rstrip()
        self._section("form", bool(form) or comment != "NEVER")
        self._part("ctx-form").update(form_text)

        inputs = ctx.get("inputs") or {}
        self._section("inputs", bool(inputs))
        self._part("ctx-inputs").update(_pairs(list(inputs.items())))
        outputs = flatten(ctx.get("outputs") or {})
        self._section("outputs", bool(outputs))
        self._part("ctx-outputs").update(_pairs(outputs))

        decisions = request.get("decisions") or []
        text = Text()
        for d in decisions:
            verdict = "approved" if d.get("verdict") == "approve" else "denied"
            text.append(f"{d.get('by')} {verdict}", style="bold")
            text.append(f" at {_short_time(d.get('at'))}")
            if d.get("automatic"):
                text.append(" (automatic)")
            if d.get("reason"):
                text.append(f" — {d['reason']}")
            signature = d.get("signature")
            if isinstance(signature, dict) and signature.get("fingerprint"):
                text.append(f" · signed {signature.get('key_type')} {signature['fingerprint']}", style="green")
            elif not d.get("automatic"):
                text.append(" · unsigned", style="dim")
            text.append("\n")
        text.rstrip()
        self._section("decisions", True)
        self._part("ctx-decisions").update(text if decisions else Text("none yet", style="italic"))
        self.scroll_home(animate=False)

    def _look_for_key(self, request: dict[str, Any], signer: Any) -> None:
        """Find the signing key in a thread (it asks the agent and the engine), then show the
        request again so the banner says whether a usable key exists."""

        def find() -> None:
            signer.ensure()
            if self.is_attached and self.request_id == request.get("id"):
                self.app.call_from_thread(self.show_request, request)

        self.run_worker(find, thread=True, group="signing-key", exclusive=True)

    def _section(self, name: str, visible: bool) -> None:
        self._parts[f"ctx-{name}-h"].display = visible
        self._parts[f"ctx-{name}"].display = visible

    def _due_text(self, request: dict[str, Any], rules: dict[str, Any]) -> Text:
        text = Text()
        due = request.get("due_at")
        behaviour = rules.get("expireBehavior") or rules.get("behavior")
        if due:
            text.append(_short_time(due))
            due_epoch = epoch_seconds(due)
            if self._clock is not None and due_epoch is not None:
                left = due_epoch - self._clock().timestamp()
                if left < 0:
                    text.append(f"  overdue by {format_span(left)}", style="bold")
                else:
                    text.append(f"  (in {format_span(left)})")
            if behaviour:
                text.append(f"\non timeout: {str(behaviour).lower()}")
        else:
            text.append("no due time")
        return text


def _short_time(value: str | None) -> str:
    if not value:
        return "?"
    return value[:16].replace("T", " ") + " UTC"


def _pairs(items: list[tuple[str, Any]]) -> Text:
    text = Text()
    if not items:
        return text
    width = min(24, max(len(k) for k, _ in items))
    for key, value in items:
        text.append(f"{key:<{width}} ", style="bold")
        text.append(compact(value))
        text.append("\n")
    text.rstrip()
    return text
