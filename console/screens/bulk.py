"""Bulk work: a progress screen that can be cancelled between slices, and the result screen."""
from __future__ import annotations

import threading
from collections import Counter

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Label, ProgressBar, Static

from signoff.console.screens.confirm import DIALOG_CSS
from signoff.engine.approvals.outcome import Outcome

VERB = {"approve": "Approving", "deny": "Denying", "cancel": "Cancelling"}

#: outcome -> short label for the result screen
REASONS = {
    "already_decided": "already decided",
    "not_eligible": "not eligible",
    "self_approval": "four-eyes rule",
    "invalid_inputs": "invalid inputs",
    "not_found": "not found",
    "skipped": "not attempted (cancelled)",
    "error": "error",
}


class BulkProgressScreen(ModalScreen[None]):
    """Shows done/total; esc or c asks the worker to stop after the current slice."""

    DEFAULT_CSS = DIALOG_CSS.format(name="BulkProgressScreen") + """
    BulkProgressScreen ProgressBar { width: 100%; margin: 1 0; }
    BulkProgressScreen Bar { width: 1fr; }
    """
    BINDINGS = [Binding("escape,c", "stop", "Stop", priority=True)]

    class Advanced(Message):
        """Posted by the bulk worker after each slice: ``done`` of ``total`` have an outcome."""

        def __init__(self, done: int, total: int) -> None:
            super().__init__()
            self.done = done
            self.total = total

    def __init__(self, verb: str, total: int) -> None:
        super().__init__()
        self.verb = verb
        self.total = total
        self.stop_requested = threading.Event()

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(f"{VERB.get(self.verb, self.verb)} {self.total} request{'s' if self.total != 1 else ''}…",
                        classes="dialog-title")
            yield ProgressBar(total=self.total, show_eta=False, id="bulk-progress")
            yield Static("esc / c stops after the current slice (nothing is half-applied)",
                         classes="dialog-help", id="bulk-help")

    def on_mount(self) -> None:
        self.query_one("#dialog").border_title = "Working"

    def on_bulk_progress_screen_advanced(self, message: Advanced) -> None:
        self.query_one(ProgressBar).update(total=message.total, progress=message.done)

    def action_stop(self) -> None:
        self.stop_requested.set()
        self.query_one("#bulk-help", Static).update("Stopping after the current slice…")


def describe(outcome: Outcome) -> str:
    if outcome.outcome == "already_decided" and outcome.by:
        return f"{(outcome.state or 'decided').lower()} by {', '.join(outcome.by)}"
    return outcome.message


class BulkResultScreen(ModalScreen[None]):
    """Lists every item that was not decided, and why. Those stay marked in the list."""

    DEFAULT_CSS = DIALOG_CSS.format(name="BulkResultScreen") + """
    BulkResultScreen > Vertical { width: 100; }
    BulkResultScreen .dialog-body { max-height: 24; }
    BulkResultScreen .ok { color: $success; }
    BulkResultScreen .failed { color: $warning; }
    """
    BINDINGS = [Binding("escape,enter,q,y,n", "close", "Close", priority=True)]

    def __init__(self, verb: str, outcomes: list[Outcome], labels: dict[str, str] | None = None) -> None:
        super().__init__()
        self.verb = verb
        self.outcomes = outcomes
        self.labels = labels or {}

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.ok]

    def compose(self) -> ComposeResult:
        ok = len(self.outcomes) - len(self.failed)
        past = {"approve": "approved", "deny": "denied", "cancel": "cancelled"}.get(self.verb, self.verb)
        with Vertical(id="dialog"):
            yield Label(f"{ok} of {len(self.outcomes)} {past}; {len(self.failed)} not "
                        f"{past} (still marked)" if self.failed else f"All {ok} {past}",
                        classes="dialog-title")
            if self.failed:
                counts = Counter(REASONS.get(o.outcome, o.outcome) for o in self.failed)
                yield Static(" · ".join(f"{n} {why}" for why, n in counts.most_common()), classes="failed")
                body = Text()
                for o in self.failed:
                    body.append(f"{o.id}", style="bold")
                    if o.id in self.labels:
                        body.append(f"  {self.labels[o.id]}")
                    body.append(f"\n  {REASONS.get(o.outcome, o.outcome)}: {describe(o)}\n")
                    for field, message in o.errors.items():
                        body.append(f"    {field}: {message}\n")
                body.rstrip()
                with VerticalScroll(classes="dialog-body"):
                    yield Static(body, id="bulk-failures")
            yield Static("enter / esc closes", classes="dialog-help")

    def on_mount(self) -> None:
        self.query_one("#dialog").border_title = "Result"

    def action_close(self) -> None:
        self.dismiss(None)
