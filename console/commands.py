"""The command palette (ctrl+p): every action of the key table, the views and the themes."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.markup import escape

from signoff.console.keymap import display_key
from signoff.console.screens.host import signoff_app

#: palette titles for the key table's actions
TITLES = {
    "approve": "Approve",
    "deny": "Deny",
    "cancel_request": "Cancel request",
    "open_form": "Approve with form",
    "toggle_mark": "Mark / unmark",
    "mark_all": "Mark all visible",
    "clear_marks": "Clear marks",
    "filter": "Filter",
    "cursor_first": "Go to first request",
    "cursor_last": "Go to last request",
    "view_pending": "View: Pending",
    "view_history": "View: History",
    "view_flows": "View: Flows",
    "view_executions": "View: Executions",
    "view_insights": "View: Insights",
    "restart_execution": "Restart execution",
    "replay_execution": "Replay execution from task",
    "cycle_filter": "Executions: next state filter",
    "cycle_window": "Insights: next window",
    "help": "Help: keys",
    "refresh": "Reload pending list",
    "quit": "Quit",
}


class SignoffCommands(Provider):
    def _commands(self) -> Iterator[tuple[str, str, Callable[[], object]]]:
        app = self.app
        for key in getattr(app, "key_actions", []):
            if not key.palette:
                continue
            title = TITLES.get(key.id, key.description)
            first = display_key(key.keys.split(",")[0])
            name = key.action_name.removeprefix("app.")
            if not app.check_action(name, ()):
                continue  # not here (e.g. marking outside the pending list)
            method = getattr(app, f"action_{name}", None)
            if callable(method):
                yield title, escape(f"{key.description} · key {first}"), method
        if hasattr(app, "pending_view"):
            yield "Clear filter", "Show every pending request again", self._clear_filter
        names = app.theme_names() if hasattr(app, "theme_names") else sorted(app.available_themes)
        for name in names:
            current = " (current)" if name == app.theme else ""
            yield f"Theme: {name}", f"Switch to the {name} theme{current}; remembered in the config file", \
                partial(self._theme, name)

    def _theme(self, name: str) -> None:
        switch = getattr(self.app, "switch_theme", None)
        if callable(switch):
            switch(name)
        else:
            self.app.theme = name

    def _clear_filter(self) -> None:
        view = signoff_app(self).pending_view
        view.close_filter(clear=True)

    async def discover(self) -> Hits:
        for title, help_text, callback in self._commands():
            yield DiscoveryHit(title, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, callback in self._commands():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), callback, help=help_text)
