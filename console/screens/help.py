"""`?`: every key, generated from the key table in use (defaults plus config overrides)."""
from __future__ import annotations

from itertools import groupby

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from signoff.console.keymap import FIXED_KEYS, KeyAction, display_key


def help_table(keys: list[KeyAction]) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(justify="right", style="bold", min_width=14)
    table.add_column()
    order = ["Navigate", "Decide", "Marks", "Views", "Executions", "General"]
    by_group = sorted(keys, key=lambda k: order.index(k.group) if k.group in order else len(order))
    for group, items in groupby(by_group, key=lambda k: k.group):
        table.add_row(Text(group, style="bold underline"), "")
        for k in items:
            table.add_row(k.display_keys(), k.description)
        table.add_row("", "")
    for group, fixed_items in groupby(FIXED_KEYS, key=lambda k: k[0]):
        table.add_row(Text(group, style="bold underline"), "")
        for _g, keys_text, description in fixed_items:
            table.add_row(", ".join(display_key(k) for k in keys_text.split(",")), description)
        table.add_row("", "")
    return table


class HelpScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    HelpScreen { align: center middle; background: $background 60%; }
    HelpScreen > Vertical {
        width: 84; max-width: 100%; height: 90%; border: thick $primary; background: $surface; padding: 0 1;
    }
    HelpScreen .help-title { text-style: bold; }
    HelpScreen .help-foot { color: $text-muted; }
    HelpScreen VerticalScroll { height: 1fr; }
    """
    BINDINGS = [
        Binding("escape,q,question_mark,f1", "close", "Close", priority=True),
        Binding("j,down", "scroll_down", show=False),
        Binding("k,up", "scroll_up", show=False),
    ]

    def __init__(self, keys: list[KeyAction], config_path: str = "") -> None:
        super().__init__()
        self.keys = keys
        self.config_path = config_path

    def compose(self) -> ComposeResult:
        with Vertical(id="help-dialog"):
            yield Label("Keys", classes="help-title")
            with VerticalScroll(id="help-scroll"):
                yield Static(help_table(self.keys), id="help-keys")
            foot = "esc closes · ctrl+p finds any action by name"
            foot += f" · rebind keys in [keys] of {self.config_path or 'config.toml'}"
            yield Static(foot, classes="help-foot", markup=False)

    def on_mount(self) -> None:
        self.query_one("#help-dialog").border_title = "Help"

    def action_close(self) -> None:
        self.dismiss(None)

    def action_scroll_down(self) -> None:
        self.query_one("#help-scroll", VerticalScroll).scroll_down(animate=False)

    def action_scroll_up(self) -> None:
        self.query_one("#help-scroll", VerticalScroll).scroll_up(animate=False)
