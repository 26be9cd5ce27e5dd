"""The console's key bindings: one table, action id -> keys, overridable from the config file.

Every binding of the main screen is generated from :data:`DEFAULT_KEYS`, the help screen is
generated from the same table (with the user's overrides applied), and the command palette
offers every entry, so the three can never disagree.

Overrides come from the ``[keys]`` table of the console config file::

    [keys]
    approve = "y,ctrl+y"
    deny = "n"

The value is a comma-separated list of Textual key names (``ctrl+backslash``, ``question_mark``,
``space``, ``G``...). Overrides are applied through Textual's keymap (``App.set_keymap``) using
the action id as the binding id.

Printable keys (y, n, j, ...) are *not* priority bindings: while the filter input has focus they
are typed into it. Keys that must work while typing are priority bindings (``priority=True``).

The filter key (``/``) is the exception, because it moves the focus: a non-priority binding runs
only after the key has travelled to the list and back up to the app, and by then the keys typed
after it (over SSH ``/chg-12`` often arrives in one read) have been handed to the list already,
where ``c`` would cancel. As a priority binding it runs the moment the key is read and the
following keys go to the filter; its action raises ``SkipAction`` while a text field has focus,
so a ``/`` typed into a field stays text.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from textual.binding import Binding, BindingType


@dataclass(frozen=True)
class KeyAction:
    #: stable id, used as the Textual binding id and as the key in the config's [keys] table
    id: str
    #: comma-separated Textual key names
    keys: str
    #: what the key does (help screen, palette)
    description: str
    #: section of the help screen
    group: str
    #: the Textual action run by the binding
    action: str = ""
    #: works even while an input has focus
    priority: bool = False
    #: shown in the one-line key hint bar
    hint: str = ""
    #: offered in the command palette
    palette: bool = True

    @property
    def action_name(self) -> str:
        return self.action or f"app.{self.id}"

    def display_keys(self) -> str:
        return ", ".join(display_key(k) for k in self.keys.split(",") if k.strip())


DEFAULT_KEYS: tuple[KeyAction, ...] = (
    # -- moving around the list
    KeyAction("cursor_down", "j,down", "Next request", "Navigate", palette=False),
    KeyAction("cursor_up", "k,up", "Previous request", "Navigate", palette=False),
    KeyAction("page_down", "pagedown,ctrl+f", "Page down", "Navigate", palette=False),
    KeyAction("page_up", "pageup,ctrl+b", "Page up", "Navigate", palette=False),
    KeyAction("cursor_first", "g,home", "First request", "Navigate"),
    KeyAction("cursor_last", "G,end", "Last request", "Navigate"),
    # priority: opens the filter as the key arrives, so keys typed right after it go into the
    # filter (see the module docstring); the action steps aside while a text field has focus
    KeyAction("filter", "slash", "Filter the list (esc clears)", "Navigate", hint="filter", priority=True),
    # -- deciding
    KeyAction("approve", "y", "Approve the marked requests, or the highlighted one", "Decide", hint="approve"),
    KeyAction("deny", "n", "Deny the marked requests, or the highlighted one", "Decide", hint="deny"),
    KeyAction("cancel_request", "c", "Cancel the marked requests, or the highlighted one", "Decide"),
    KeyAction("open_form", "enter", "Open the resume form and approve", "Decide"),
    # -- marks
    KeyAction("toggle_mark", "space", "Mark / unmark the highlighted request", "Marks", hint="mark"),
    KeyAction("mark_all", "a", "Mark all visible requests (after the filter)", "Marks"),
    KeyAction("clear_marks", "u", "Clear all marks", "Marks"),
    KeyAction("clear_marks_anywhere", "ctrl+backslash", "Clear all marks (also while typing)", "Marks",
              action="app.clear_marks", priority=True, palette=False),
    # -- views
    KeyAction("view_pending", "1", "Pending view", "Views"),
    KeyAction("view_history", "2", "History view (audit search)", "Views"),
    KeyAction("view_flows", "3", "Flows view (start executions)", "Views"),
    KeyAction("view_executions", "4", "Executions view (runs, logs, restart, replay)", "Views"),
    KeyAction("view_insights", "5", "Insights view (approval statistics, chart)", "Views"),
    KeyAction("next_view", "tab", "Next view", "Views", palette=False),
    KeyAction("previous_view", "shift+tab", "Previous view", "Views", palette=False),
    # -- executions and insights views
    KeyAction("restart_execution", "r", "Restart the highlighted failed execution", "Executions"),
    KeyAction("replay_execution", "p", "Replay from the highlighted task run", "Executions"),
    KeyAction("cycle_filter", "f", "Next state filter (all, FAILED, KILLED...)", "Executions"),
    KeyAction("cycle_window", "w", "Insights: next window (30, 7, 90 days)", "Executions"),
    # -- general
    KeyAction("help", "question_mark,f1", "Show this help", "General", hint="help"),
    KeyAction("command_palette", "ctrl+p", "Command palette (every action, themes)", "General",
              action="app.command_palette", priority=True, hint="palette", palette=False),
    KeyAction("refresh", "ctrl+r", "Reload the pending list", "General", priority=True),
    KeyAction("quit", "q", "Quit", "General", hint="quit"),
)

#: keys that are not rebindable; listed on the help screen so it covers every key
FIXED_KEYS: tuple[tuple[str, str, str], ...] = (
    ("In the filter", "esc", "Clear the filter and return to the list (also from the list)"),
    ("In the filter", "enter", "Keep the filter and return to the list"),
    ("In the filter", "up, down, pageup, pagedown", "Move in the list while typing"),
    ("In dialogs", "y, enter", "Confirm"),
    ("In dialogs", "n, esc", "Cancel / close"),
    ("In dialogs", "tab, shift+tab", "Next / previous field"),
    ("While a bulk action runs", "esc, c", "Stop after the current slice"),
    ("Anywhere", "ctrl+q", "Quit immediately"),
)

_DISPLAY = {"slash": "/", "question_mark": "?", "backslash": "\\", "space": "space", "pagedown": "pgdn",
            "pageup": "pgup", "enter": "enter", "escape": "esc", "down": "↓", "up": "↑"}


def display_key(key: str) -> str:
    key = key.strip()
    parts = key.split("+")
    return "+".join(_DISPLAY.get(p, p) for p in parts)


def resolve(overrides: Mapping[str, str] | None = None) -> tuple[list[KeyAction], list[str]]:
    """The key table with the config's overrides applied, and problems (unknown ids, empty keys)."""
    overrides = dict(overrides or {})
    known = {k.id for k in DEFAULT_KEYS}
    problems = [f"[keys] {name}: unknown action (known: {', '.join(sorted(known))})"
                for name in overrides if name not in known]
    out: list[KeyAction] = []
    for key in DEFAULT_KEYS:
        value = overrides.get(key.id)
        if value is None:
            out.append(key)
            continue
        keys = ",".join(k.strip() for k in str(value).split(",") if k.strip())
        if not keys:
            problems.append(f"[keys] {key.id}: no keys given, keeping {key.keys!r}")
            out.append(key)
        else:
            out.append(replace(key, keys=keys))
    return out, problems


def bindings(keys: Iterable[KeyAction] = DEFAULT_KEYS) -> list[BindingType]:
    """Textual bindings for the main screen (ids = action ids, so a keymap can override them)."""
    return [Binding(k.keys, k.action_name, k.description, show=False, priority=k.priority, id=k.id)
            for k in keys if k.id != "command_palette"]


def keymap_overrides(keys: Iterable[KeyAction]) -> dict[str, str]:
    """The Textual keymap (binding id -> keys) for the entries that differ from the defaults."""
    defaults = {k.id: k.keys for k in DEFAULT_KEYS}
    return {k.id: k.keys for k in keys if defaults.get(k.id) != k.keys}


def hints(keys: Iterable[KeyAction]) -> list[tuple[str, str]]:
    """(first key, short label) for the key hint bar."""
    out = []
    for k in keys:
        if k.hint:
            first = k.keys.split(",")[0]
            out.append((display_key(first), k.hint))
    return out
