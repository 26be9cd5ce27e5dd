"""The one-line status bar (top) and key hint bar (bottom) of the ops layout."""
from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Static


class StatusBar(Widget):
    """identity @ location │ view │ n marked │ filter │ notice"""

    DEFAULT_CSS = """
    StatusBar { height: 1; background: $panel; color: $text; }
    StatusBar:nocolor { text-style: reverse; }
    """

    identity: reactive[str] = reactive("")
    location: reactive[str] = reactive("")
    view: reactive[str] = reactive("Pending")
    marked: reactive[int] = reactive(0)
    filter: reactive[str] = reactive("")
    counts: reactive[str] = reactive("")
    notice: reactive[str] = reactive("")
    #: "" while all is well (nothing shown); "offline" / "signed out" in remote mode when not
    connection: reactive[str] = reactive("")

    def render(self) -> Text:
        theme = self.app.current_theme
        primary = theme.primary if not self.app.no_color else None
        accent = (theme.accent or theme.primary) if not self.app.no_color else None
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(" signoff ", style=f"bold reverse {primary}" if primary else "bold reverse")
        text.append(f" {self.identity}", style="bold")
        # "alice via local server (/run/signoff/signoff.sock)", "alice @ https://host:8750"
        joiner = "via" if self.location.startswith("local server") else "@"
        text.append(f" {joiner} {self.location}")
        if self.connection:
            error = theme.error if not self.app.no_color else None
            text.append(" ")
            text.append(f" {self.connection} ", style=f"bold reverse {error}" if error else "bold reverse")
        text.append("  │ ")
        text.append(self.view, style=f"bold {primary}" if primary else "bold underline")
        if self.counts:
            text.append(f" {self.counts}")
        if self.marked:
            text.append("  │ ")
            text.append(f"{self.marked} marked", style=f"bold {accent}" if accent else "bold")
        if self.filter:
            text.append("  │ ")
            text.append(f"/{self.filter}", style="italic")
        if self.notice:
            text.append("  │ ")
            text.append(self.notice, style="italic")
        return text


class KeyHints(Widget):
    """The most used keys, from the (possibly overridden) keymap."""

    DEFAULT_CSS = """
    KeyHints { height: 1; background: $panel; color: $text-muted; }
    """

    def __init__(self, hints: list[tuple[str, str]], **kwargs) -> None:
        super().__init__(**kwargs)
        self.hints = hints

    def render(self) -> Text:
        key_colour = None if self.app.no_color else self.app.current_theme.primary
        text = Text(no_wrap=True, overflow="ellipsis")
        for key, label in self.hints:
            text.append(f" {key}", style=f"bold {key_colour}" if key_colour else "bold")
            text.append(f" {label} ")
        return text


class ConnectionBanner(Static):
    """Under the status bar, in the error colour, only while the server cannot be used
    (connection lost and being retried, or the token refused). Hidden otherwise, so the
    layout is exactly the same as without it."""

    DEFAULT_CSS = """
    ConnectionBanner { display: none; height: auto; width: 1fr; padding: 0 1;
                       background: $error; color: $text; text-style: bold; }
    ConnectionBanner.-shown { display: block; }
    ConnectionBanner:nocolor { text-style: bold reverse; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__("", **kwargs)
        self.text = ""

    def show(self, text: str) -> None:
        self.text = text
        self.update(text)
        self.add_class("-shown")

    def hide(self) -> None:
        self.text = ""
        self.update("")
        self.remove_class("-shown")

    @property
    def shown(self) -> bool:
        return self.has_class("-shown")
