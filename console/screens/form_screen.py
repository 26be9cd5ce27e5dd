"""A modal with a :class:`~console.widgets.resume_form.ResumeForm`, validated live by the engine.

``FormScreen(title, form, validate=...)`` runs ``validate(values)`` -- a blocking call into the
backend, e.g. ``lambda v: backend.validate(request_id, v)`` -- in a thread worker after every
(debounced) change and again on submit, and shows the engine's messages under each field.
Messages for a field appear once the user has changed it or left it, and for every field after
a submit attempt. Submitting (the button, ctrl+s or ctrl+enter) only succeeds when the latest
validation returned no errors and the comment rule is met; the screen is then dismissed with
a :class:`FormResult`. Esc cancels (dismisses with ``None``).

Whether the decision approves or denies is read from ``submit_label`` ("Approve..." or
"Deny..."), and decides with ``comment_mode`` (the request's ``commentRequired``) whether a
reason is required.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label
from textual.worker import Worker, WorkerState

from signoff.console.widgets.resume_form import (
    REASON_KEY,
    ResumeForm,
    comment_message,
    verdict_for_label,
)

__all__ = ["FormResult", "FormScreen"]


@dataclass
class FormResult:
    values: dict
    reason: str | None


@dataclass
class _Check:
    generation: int
    values: dict
    errors: dict[str, str] | None
    problem: str | None


class FormScreen(ModalScreen["FormResult | None"]):
    """Fill a form and submit it, or cancel (see the module docstring)."""

    DEFAULT_CSS = """
    FormScreen {
        align: center middle;
    }
    FormScreen > #dialog {
        width: 100%;
        max-width: 100;
        height: 100%;
        max-height: 50;
        border: round $primary;
        border-title-style: bold;
        border-title-color: $text;
        background: $surface;
        padding: 0 1;
    }
    FormScreen #subtitle {
        color: $text-muted;
        width: 1fr;
        margin-bottom: 1;
    }
    FormScreen #footer-row {
        height: 1;
        width: 1fr;
    }
    FormScreen #status {
        width: 1fr;
        height: 1;
        color: $text-muted;
    }
    FormScreen #status.-error {
        color: $text-error;
    }
    FormScreen #footer-row Button {
        margin-left: 1;
        min-width: 10;
    }
    FormScreen #keys {
        color: $text-muted;
        width: 1fr;
    }
    """

    BINDINGS = [
        Binding("ctrl+s,ctrl+enter", "submit", "Submit", priority=True),
        Binding("escape", "cancel", "Cancel"),
    ]

    def __init__(self, title: str, form: list[dict], *, validate: Callable[[dict], dict[str, str]],
                 comment_mode: str | None = None, subtitle: str = "", submit_label: str = "Approve",
                 variables: Mapping[str, Any] | None = None, show_reason: bool = True) -> None:
        super().__init__()
        self.form_title = title
        self.form_spec = list(form or [])
        self._validate = validate
        self.comment_mode = (comment_mode or "NEVER").upper()
        self.subtitle = subtitle
        self.submit_label = submit_label
        self.verdict = verdict_for_label(submit_label)
        self.variables = variables
        self.show_reason = show_reason
        self._generation = 0
        self._last: _Check | None = None  # the latest finished validation of the latest values
        self._show_all = False
        self._submit_pending = False
        self._done = False

    # -- layout ------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        dialog = Vertical(id="dialog")
        dialog.border_title = self.form_title
        with dialog:
            if self.subtitle:
                yield Label(self.subtitle, id="subtitle", markup=False)
            yield ResumeForm(self.form_spec, comment_mode=self.comment_mode, id="resume-form",
                             verdict=self.verdict, variables=self.variables, show_reason=self.show_reason)
            with Horizontal(id="footer-row"):
                yield Label("checking…", id="status", markup=False)
                yield Button(self.submit_label, id="submit", compact=True,
                             variant="error" if self.verdict == "deny" else "success", disabled=True)
                yield Button("Cancel", id="cancel", variant="default", compact=True)
            yield Label("tab/shift+tab move · enter next · space toggle · ctrl+s submit · esc cancel",
                        id="keys", markup=False)

    @property
    def resume_form(self) -> ResumeForm:
        return self.query_one(ResumeForm)

    def on_mount(self) -> None:
        self.resume_form.focus_first()
        self._start_check()

    # -- validation --------------------------------------------------------------------------
    def _start_check(self) -> None:
        self._generation += 1
        generation = self._generation
        values = self.resume_form.values()
        validate = self._validate

        def run() -> _Check:
            try:
                errors = dict(validate(dict(values)) or {})
            except Exception as exc:  # noqa: BLE001 - shown to the user, the form stays open
                message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
                return _Check(generation, values, None, f"Could not check the values: {message}")
            return _Check(generation, values, errors, None)

        self.run_worker(run, name="validate", group="form-validate", thread=True, exit_on_error=False)

    @on(ResumeForm.Changed)
    def _form_changed(self, event: ResumeForm.Changed) -> None:
        event.stop()
        self._start_check()
        # the reason rule is local: update the button at once
        self._paint()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if worker.group != "form-validate" or event.state != WorkerState.SUCCESS:
            return
        check: _Check | None = worker.result
        if check is None or check.generation != self._generation or self._done:
            return  # an older check finished after a newer one started
        if check.values != self.resume_form.values():
            return  # the values changed while it ran; a newer check is on its way (debounced)
        self._last = check
        if self._submit_pending:
            # a submit waits for the check of the values as they are now: this one
            self._submit_pending = False
            if self._can_submit():
                self._finish()
                return
            self._show_all = True
            self.app.bell()
            self._paint()
            self._focus_first_problem(dict(check.errors or {}) | self._comment_error())
            return
        self._paint()

    def _focus_first_problem(self, errors: dict[str, str]) -> None:
        form = self.resume_form
        for key in [*form.visible_ids, REASON_KEY]:
            if key in errors:
                try:
                    form.field_widget(key).focus()
                except Exception:  # noqa: BLE001 - nothing to focus: leave focus where it is
                    pass
                return

    # -- state -------------------------------------------------------------------------------
    def _comment_error(self) -> dict[str, str]:
        if self.resume_form.reason_required and not self.resume_form.reason():
            return {REASON_KEY: comment_message(self.comment_mode, self.verdict)}
        return {}

    def _can_submit(self) -> bool:
        last = self._last
        return (last is not None and last.errors is not None and not last.errors
                and last.generation == self._generation and not self._comment_error())

    def _paint(self) -> None:
        form = self.resume_form
        last = self._last
        errors = dict(last.errors or {}) if last is not None else {}
        comment = self._comment_error()
        if not self._show_all:
            touched = form.touched
            visible_ids = set(form.visible_ids)
            # messages for untouched fields wait; those not about a field are shown at once
            errors = {k: v for k, v in errors.items() if k in touched or k not in visible_ids}
            if REASON_KEY not in touched:
                comment = {}
        errors.update(comment)
        form.show_errors(errors)
        status = self.query_one("#status", Label)
        button = self.query_one("#submit", Button)
        ok = self._can_submit()
        button.disabled = not ok
        if last is not None and last.problem:
            status.update(last.problem)
            status.add_class("-error")
        elif last is None or last.generation != self._generation:
            status.update("checking before submitting…" if self._submit_pending else "checking…")
            status.remove_class("-error")
        elif ok:
            status.update(f"ready: ctrl+s to {self.submit_label.lower()}")
            status.remove_class("-error")
        else:
            count = len(last.errors or {}) + len(self._comment_error())
            plural = "s" if count != 1 else ""
            status.update(f"{count} problem{plural} to fix before you can {self.submit_label.lower()}")
            status.add_class("-error")

    # -- actions -----------------------------------------------------------------------------
    def action_submit(self) -> None:
        if self._done:
            return
        self._show_all = True
        self._submit_pending = True
        self._start_check()
        self._paint()

    def action_cancel(self) -> None:
        if not self._done:
            self._done = True
            self.dismiss(None)

    @on(ResumeForm.SubmitRequested)
    def _submit_requested(self, event: ResumeForm.SubmitRequested) -> None:
        event.stop()
        self.action_submit()

    @on(Button.Pressed, "#submit")
    def _submit_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_submit()

    @on(Button.Pressed, "#cancel")
    def _cancel_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_cancel()

    def _finish(self) -> None:
        form = self.resume_form
        self._done = True
        self.dismiss(FormResult(values=form.values(), reason=form.reason()))
