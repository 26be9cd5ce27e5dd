"""Small modal dialogs: bulk confirmation, deny/cancel reason, and "the forms differ"."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

DIALOG_CSS = """
{name} {{ align: center middle; background: $background 60%; }}
{name} > Vertical {{
    width: 76; max-width: 100%; height: auto; max-height: 100%;
    border: thick $primary; background: $surface; padding: 0 1;
}}
{name} .dialog-title {{ text-style: bold; width: 100%; margin-bottom: 1; }}
{name} .dialog-body {{ height: auto; max-height: 14; }}
{name} .dialog-help {{ color: $text-muted; margin-top: 1; }}
{name} .dialog-error {{ color: $error; }}
{name} Horizontal {{ height: auto; align-horizontal: right; margin-top: 1; }}
{name} Button {{ margin-left: 1; min-width: 12; }}
"""


def flows_summary(groups: list[tuple[str, int]]) -> str:
    """"payment_approval (30), config_change (5), access_request (2)"."""
    return ", ".join(f"{flow} ({count})" for flow, count in groups)


class ConfirmScreen(ModalScreen[bool]):
    """"Approve 37 requests in 3 flows: ..." — y/enter confirms, n/esc cancels."""

    DEFAULT_CSS = DIALOG_CSS.format(name="ConfirmScreen")
    BINDINGS = [
        Binding("y,enter", "confirm", "Confirm", priority=True),
        Binding("n,escape", "cancel", "Cancel", priority=True),
    ]

    def __init__(self, title: str, body: str = "", *, confirm_label: str = "Confirm", danger: bool = False) -> None:
        super().__init__()
        self.title_text = title
        self.body = body
        self.confirm_label = confirm_label
        self.danger = danger

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(self.title_text, classes="dialog-title", id="confirm-title")
            if self.body:
                with VerticalScroll(classes="dialog-body"):
                    yield Static(self.body, id="confirm-body")
            yield Static("y / enter confirms · n / esc cancels", classes="dialog-help")
            with Horizontal():
                yield Button("Cancel", id="cancel")
                yield Button(self.confirm_label, id="confirm", variant="error" if self.danger else "primary")

    def on_mount(self) -> None:
        self.query_one("#dialog").border_title = "Confirm"

    def action_confirm(self) -> None:
        self.dismiss(True)

    def action_cancel(self) -> None:
        self.dismiss(False)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "confirm")


class ReasonScreen(ModalScreen[str | None]):
    """Asks why (deny, cancel); the reason may be required (commentRequired)."""

    DEFAULT_CSS = DIALOG_CSS.format(name="ReasonScreen")
    BINDINGS = [Binding("escape", "cancel", "Cancel", priority=True)]

    def __init__(self, title: str, *, required: bool, placeholder: str = "Reason (kept in the audit trail)") -> None:
        super().__init__()
        self.title_text = title
        self.required = required
        self.placeholder = placeholder

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(self.title_text, classes="dialog-title")
            yield Input(placeholder=self.placeholder + (" — required" if self.required else " — optional"),
                        id="reason")
            yield Static("", classes="dialog-error", id="reason-error")
            yield Static("enter continues · esc cancels", classes="dialog-help")

    def on_mount(self) -> None:
        self.query_one("#dialog").border_title = "Reason"
        self.query_one(Input).focus()

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        value = event.value.strip()
        if self.required and not value:
            self.query_one("#reason-error", Static).update("A reason is required for this request.")
            return
        self.dismiss(value)

    @on(Input.Changed)
    def _changed(self, _event: Input.Changed) -> None:
        self.query_one("#reason-error", Static).update("")

    def action_cancel(self) -> None:
        self.dismiss(None)


@dataclass
class FormGroup:
    """Marked requests sharing one form."""

    label: str  # "payment_approval (30)"
    ids: list[str]
    fields: str  # "approved, note"


class FormGroupsScreen(ModalScreen[int | None]):
    """The marked requests ask for different forms: keep only one group's marks (1-9), or esc."""

    DEFAULT_CSS = DIALOG_CSS.format(name="FormGroupsScreen")
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,n", "cancel", "Cancel", priority=True),
        *(Binding(str(i), f"keep({i - 1})", f"Keep group {i}", show=False) for i in range(1, 10))]

    def __init__(self, groups: list[FormGroup]) -> None:
        super().__init__()
        self.groups = groups

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(f"The marked requests ask for {len(self.groups)} different forms", classes="dialog-title")
            yield Static("One approval fills one form. Keep only the marks of one group, approve them, "
                         "then come back for the others.")
            with VerticalScroll(classes="dialog-body"):
                for i, group in enumerate(self.groups[:9], start=1):
                    yield Button(f"{i}  keep only {group.label} — fields: {group.fields or 'none'}",
                                 id=f"group-{i - 1}", classes="group-button")
            yield Static("1-9 keeps a group's marks · esc cancels", classes="dialog-help")

    def on_mount(self) -> None:
        self.query_one("#dialog").border_title = "Forms differ"

    def action_keep(self, index: int) -> None:
        if 0 <= index < len(self.groups):
            self.dismiss(index)

    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(int((event.button.id or "group-0").split("-")[1]))
