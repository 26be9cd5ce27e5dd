"""SignoffApp: the full-screen console (an ops layout in the spirit of k9s and lazygit).

::

    ┌ status bar: signoff  me @ embedded · /data  │ Pending 42  │ 3 marked │ /filter │ notice ┐
    │ main area: Pending (1) · History (2) · Flows (3)                                         │
    └ key hints: y approve  n deny  space mark  / filter  ? help  ctrl+p palette  q quit       ┘

The app talks to the engine only through ``backend`` (console.backend.Backend), always from
worker threads. In remote mode a banner under the status bar says when the server is lost
(the pending view retries with backoff and catches up from the last seen change) or no longer
accepts the token; decisions are refused with a notice meanwhile. Key bindings come from
console.keymap (overridable in the config file), themes
from signoff.console.themes, and the config file from console.config.
"""
from __future__ import annotations

from typing import Any, ClassVar

from textual import work
from textual.actions import SkipAction
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.css.query import NoMatches
from textual.message import Message
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import ContentSwitcher, Input

from signoff.console import keymap as km
from signoff.console.backend import Backend
from signoff.console.commands import SignoffCommands
from signoff.console.config import ConsoleConfig
from signoff.console.live import PendingLive, Problem
from signoff.console.screens.pending import PendingView
from signoff.console.startup import release_collector
from signoff.console.themes import DEFAULT_THEME, load_themes
from signoff.console.widgets.pending_table import build_rows
from signoff.console.widgets.status_bar import ConnectionBanner, KeyHints, StatusBar
from signoff.engine.clock import Clock, SystemClock

VIEWS = ("pending", "history", "flows", "executions", "insights")
VIEW_TITLES = {"pending": "Pending", "history": "History", "flows": "Flows", "executions": "Executions",
               "insights": "Insights"}


class MainScreen(Screen):
    """The one full screen; its bindings are the key table (modal screens do not inherit them)."""

    BINDINGS: ClassVar[list[BindingType]] = km.bindings()

    DEFAULT_CSS = """
    MainScreen { layout: vertical; }
    MainScreen > StatusBar { dock: top; }
    MainScreen > KeyHints { dock: bottom; }
    MainScreen > ConnectionBanner { height: auto; }
    MainScreen > #views { height: 1fr; }
    """

    def __init__(self, hints: list[tuple[str, str]], clock: Clock, live: PendingLive) -> None:
        super().__init__()
        self._hints = hints
        self._clock = clock
        self._live = live

    def compose(self) -> ComposeResult:
        status = StatusBar(id="status")
        status.identity = self._live.backend.identity
        status.location = self._live.backend.location
        status.view = VIEW_TITLES["pending"]
        yield status
        yield ConnectionBanner(id="connection-banner")
        with ContentSwitcher(initial="pending", id="views"):
            view = PendingView(self._live, clock=self._clock.now, id="pending")
            view.focus_request = getattr(self.app, "open_request", None)
            yield view
        yield KeyHints(self._hints, id="hints")


class SignoffApp(App[None]):
    """The console. ``backend`` is a console.backend.Backend (LocalBackend or the remote one)."""

    TITLE = "signoff"
    COMMANDS = App.COMMANDS | {SignoffCommands}
    BINDINGS = [Binding("ctrl+p", "command_palette", "Command palette", show=False, priority=True,
                        id="command_palette")]
    CSS = """
    Screen { background: $background; }
    Input { border: tall $panel; }
    Input:focus { border: tall $primary; }
    /* one-row inputs (the resume form's compact fields and reason, the pending list's filter)
       have no border: this stylesheet outranks a widget's own, and with the tall border above
       their one row went to the border alone and hid what was typed */
    Input.-textual-compact, Input.-textual-compact:focus, FilterInput, FilterInput:focus { border: none; }
    """

    def __init__(self, backend: Backend, *, clock: Clock | None = None, theme: str | None = None,
                 config: ConsoleConfig | None = None, poll_interval: float = 1.0,
                 open_request: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.backend = backend
        from signoff.console.signing import SessionSigner

        #: signs decisions with the person's SSH key when they have a registered one
        self.decision_signer = SessionSigner(backend)
        #: engine-style clock (``now() -> aware datetime``); the countdowns and the views use it
        self.clock: Clock = clock or SystemClock()
        self.config = config if config is not None else ConsoleConfig.load()
        self.poll_interval = poll_interval
        self.problems: list[str] = list(self.config.problems)
        self.key_actions, key_problems = km.resolve(self.config.keys)
        self.problems += key_problems
        themes, theme_problems = load_themes()
        self.problems += theme_problems
        for item in themes.values():
            self.register_theme(item)
        wanted = theme or self.config.theme or DEFAULT_THEME
        if wanted not in self.available_themes:
            self.problems.append(f"unknown theme `{wanted}` (available: {', '.join(self.theme_names())})")
            wanted = DEFAULT_THEME
        self._remember_theme = False
        self.theme = wanted
        self._remember_theme = True
        overrides = km.keymap_overrides(self.key_actions)
        if overrides:
            self.set_keymap(overrides)
        self.current_view = "pending"
        self._mounting: set[str] = set()
        self._status_values: dict[str, Any] = {}
        #: the pending list's live state; its connection state is the one the banner shows
        self.live = PendingLive(backend, convert=build_rows)
        #: the request `signoff open LINK` leads to (console.open_link), highlighted once loaded
        self.open_request = open_request

    @property
    def connection_problem(self) -> Problem | None:
        """None while the backend answers; else why it does not ("lost" or "auth")."""
        return self.live.problem

    #: actions that work on the pending list only: elsewhere their keys are left to the view
    PENDING_ONLY = frozenset({"toggle_mark", "open_form"})

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in self.PENDING_ONLY:
            return self.current_view == "pending"
        return True

    # -- screens and layout --------------------------------------------------------------
    def get_default_screen(self) -> Screen:
        return MainScreen(km.hints(self.key_actions), self.clock, self.live)

    def on_mount(self) -> None:
        # the first screen is painted by the refresh after this: start-up is over
        self.call_after_refresh(release_collector)
        self.set_interval(self.poll_interval, self._every_second, name="live")
        if (self.backend.identity or "?") == "?":
            self._fetch_identity()  # a remote backend made without checking the token yet
        for problem in self.problems:
            self.notify(problem, title="Config", severity="warning", timeout=10)

    @property
    def main_screen(self) -> MainScreen:
        for screen in self.screen_stack:
            if isinstance(screen, MainScreen):
                return screen
        raise LookupError("main screen not mounted")

    @property
    def status_bar(self) -> StatusBar:
        return self.main_screen.query_one(StatusBar)

    @property
    def pending_view(self) -> PendingView:
        return self.main_screen.query_one(PendingView)

    def theme_names(self) -> list[str]:
        names = sorted(self.available_themes)
        return sorted(names, key=lambda n: (not n.startswith("signoff-"), n))

    def _every_second(self) -> None:
        try:
            view = self.pending_view
        except Exception:  # noqa: BLE001 - during start-up and shutdown
            return
        if not view.loaded or not view.is_attached:
            return
        try:
            view.tick_countdown()
            view.poll()
        except NoMatches:  # the view is being taken down (shutdown)
            return

    # -- status --------------------------------------------------------------------------
    def update_status(self, **values: Any) -> None:
        self._status_values.update(values)
        try:
            status = self.status_bar
        except (LookupError, NoMatches):  # not composed yet, or already torn down
            return
        if self.current_view == "pending":
            status.counts = self._status_values.get("counts", "")
            status.filter = self._status_values.get("filter", "")
        else:
            status.counts = ""
            status.filter = ""
        status.marked = self._status_values.get("marked", 0)

    def set_notice(self, text: str) -> None:
        self.status_bar.notice = text

    class IdentityKnown(Message):
        """Posted by the identity worker: the backend now knows who we are."""

        def __init__(self, identity: str) -> None:
            super().__init__()
            self.identity = identity

    @work(thread=True, group="identity", exit_on_error=False)
    def _fetch_identity(self) -> None:
        try:
            self.backend.me()  # sets backend.identity
        except Exception:  # noqa: BLE001 - the pending view reports connection problems
            return
        self.post_message(self.IdentityKnown(self.backend.identity or "?"))

    def on_signoff_app_identity_known(self, message: IdentityKnown) -> None:
        try:
            self.status_bar.identity = message.identity
        except Exception:  # noqa: BLE001 - shutting down
            pass

    # -- connection (remote mode) --------------------------------------------------------
    @property
    def connection_banner(self) -> ConnectionBanner:
        return self.main_screen.query_one(ConnectionBanner)

    @property
    def server_location(self) -> str:
        return self.backend.location or "the server"

    def on_pending_view_connection_changed(self, message: PendingView.ConnectionChanged) -> None:
        if message.transition == "lost":
            self.connection_lost(message.live.last_seq, message.detail, first=message.live.retry_delay
                                 == message.live.RETRY_FIRST)
        elif message.transition == "auth":
            self.authentication_lost(message.detail)
        else:
            self.connection_restored()

    def connection_lost(self, last_seq: int, detail: str = "", *, first: bool = True) -> None:
        """The backend cannot be reached; the pending view keeps retrying with backoff."""
        try:
            self.connection_banner.show(f"Connection to {self.server_location} lost — reconnecting… "
                                        f"(last change seen: seq {last_seq})")
            self.connection_banner.tooltip = detail or None
            self.status_bar.connection = "offline"
        except Exception:  # noqa: BLE001 - shutting down
            return
        if first and detail:
            self.log.warning(f"connection lost: {detail}")

    def connection_restored(self) -> None:
        try:
            self.connection_banner.hide()
            self.status_bar.connection = ""
        except Exception:  # noqa: BLE001 - shutting down
            return
        self.notify(f"Reconnected to {self.server_location}.", title="Reconnected", timeout=4)
        self._fetch_identity()

    def authentication_lost(self, detail: str = "") -> None:
        """The server refuses the token (revoked or expired): no retries until ctrl+r."""
        url = self.server_location
        try:
            self.connection_banner.show(f"{url} no longer accepts your token — run `signoff login {url}` "
                                        f"with a valid token, then press ctrl+r to reconnect")
            self.connection_banner.tooltip = detail or None
            self.status_bar.connection = "signed out"
        except Exception:  # noqa: BLE001 - shutting down
            return
        self.notify(detail or "The server no longer accepts the token.", title="Signed out", severity="error",
                    timeout=10)

    def _refuse_while_offline(self) -> bool:
        """True (and a notice) when a decision cannot reach the server right now."""
        if self.connection_problem is None:
            return False
        if self.connection_problem == "auth":
            self.notify(f"Not signed in to {self.server_location}: nothing was sent. Run `signoff login` "
                        "and press ctrl+r.", title="Not sent", severity="error")
        else:
            self.notify(f"Not connected to {self.server_location}: nothing was sent. Try again once the "
                        "connection is back.", title="Not sent", severity="error")
        return True

    # -- themes --------------------------------------------------------------------------
    def watch_theme(self, theme: str) -> None:
        if self._remember_theme and theme:
            self._save_theme(theme)

    @work(thread=True, group="config", exit_on_error=False)
    def _save_theme(self, theme: str) -> None:
        try:
            self.config.save_theme(theme)
        except OSError as exc:
            self.call_from_thread(self.notify, f"could not remember the theme: {exc}", severity="warning")

    def switch_theme(self, name: str) -> None:
        self.theme = name
        self.notify(f"Theme: {name}", timeout=2)

    # -- views ---------------------------------------------------------------------------
    def show_view(self, name: str) -> None:
        switcher = self.main_screen.query_one("#views", ContentSwitcher)
        if not switcher.query(f"#{name}"):
            self._mount_view(name)
            return
        switcher.current = name
        self.current_view = name
        self.status_bar.view = VIEW_TITLES[name]
        self.update_status()
        view = switcher.query_one(f"#{name}")
        hook = getattr(view, "on_show_view", None)
        if callable(hook):
            hook()

    @work(group="views")
    async def _mount_view(self, name: str) -> None:
        switcher = self.main_screen.query_one("#views", ContentSwitcher)
        if name in self._mounting:
            return
        self._mounting.add(name)
        try:
            if not switcher.query(f"#{name}"):
                await switcher.mount(self._make_view(name))
        finally:
            self._mounting.discard(name)
        self.show_view(name)

    def _make_view(self, name: str) -> Widget:
        """The other views, imported when first shown (start-up does without them)."""
        if name == "history":
            from signoff.console.screens.history import HistoryView

            return HistoryView(id="history")
        if name == "executions":
            from signoff.console.screens.executions import ExecutionsView

            return ExecutionsView(id="executions")
        if name == "insights":
            from signoff.console.screens.insights import InsightsView

            return InsightsView(id="insights")
        from signoff.console.screens.flows import FlowsView

        return FlowsView(id="flows")

    def action_view_pending(self) -> None:
        self.show_view("pending")

    def action_view_history(self) -> None:
        self.show_view("history")

    def action_view_flows(self) -> None:
        self.show_view("flows")

    def action_view_executions(self) -> None:
        self.show_view("executions")

    def action_view_insights(self) -> None:
        self.show_view("insights")

    def _view(self, name: str) -> Any:
        """The named view when it is the one showing, else None (its keys do nothing elsewhere)."""
        if self.current_view != name:
            return None
        try:
            return self.main_screen.query_one(f"#{name}")
        except NoMatches:
            return None

    def action_restart_execution(self) -> None:
        view = self._view("executions")
        if view is None:
            raise SkipAction()
        view.restart()

    def action_replay_execution(self) -> None:
        view = self._view("executions")
        if view is None:
            raise SkipAction()
        view.replay()

    def action_cycle_filter(self) -> None:
        view = self._view("executions")
        if view is None:
            raise SkipAction()
        view.cycle_filter()

    def action_cycle_window(self) -> None:
        view = self._view("insights")
        if view is None:
            raise SkipAction()
        view.cycle_window()

    def action_next_view(self) -> None:
        self.show_view(VIEWS[(VIEWS.index(self.current_view) + 1) % len(VIEWS)])

    def action_previous_view(self) -> None:
        self.show_view(VIEWS[(VIEWS.index(self.current_view) - 1) % len(VIEWS)])

    # -- list navigation (delegated to the current view) ---------------------------------
    def _nav(self, table_method: str, fallback: str) -> None:
        if self.current_view == "pending":
            getattr(self.pending_view.table, table_method)()
            return
        focused = self.screen.focused
        if focused is not None:
            method = getattr(focused, f"action_{fallback}", None)
            if callable(method):
                method()

    def action_cursor_down(self) -> None:
        self._nav("cursor_down", "cursor_down")

    def action_cursor_up(self) -> None:
        self._nav("cursor_up", "cursor_up")

    def action_page_down(self) -> None:
        self._nav("page_down", "page_down")

    def action_page_up(self) -> None:
        self._nav("page_up", "page_up")

    def action_cursor_first(self) -> None:
        self._nav("cursor_first", "scroll_home")

    def action_cursor_last(self) -> None:
        self._nav("cursor_last", "scroll_end")

    # -- pending actions -----------------------------------------------------------------
    def _pending(self) -> PendingView:
        if self.current_view != "pending":
            self.show_view("pending")
        return self.pending_view

    def action_filter(self) -> None:
        if isinstance(self.focused, Input):
            # a priority binding (console/keymap.py): a "/" typed in a field is text (the only
            # multi-line fields, TextAreas, live on modal screens, out of this binding's reach)
            raise SkipAction()
        self._pending().open_filter()

    def action_toggle_mark(self) -> None:
        self.pending_view.table.toggle_mark()

    def action_mark_all(self) -> None:
        self._pending().table.mark_all()

    def action_clear_marks(self) -> None:
        self.pending_view.table.clear_marks()

    def action_approve(self) -> None:
        if self._refuse_while_offline():
            return
        self._pending().approve(False)

    def action_open_form(self) -> None:
        if self._refuse_while_offline():
            return
        self.pending_view.approve(True)

    def action_deny(self) -> None:
        if self._refuse_while_offline():
            return
        self._pending().deny()

    def action_cancel_request(self) -> None:
        if self._refuse_while_offline():
            return
        self._pending().cancel_requests()

    def action_refresh(self) -> None:
        view = self.pending_view
        view.reset_connection()  # retry now (also after `signoff login` when the token was refused)
        view.reload()
        self.notify("Reloading the pending list…", timeout=2)

    def action_help(self) -> None:
        from signoff.console.screens.help import HelpScreen

        path = str(self.config.path) if self.config.path else ""
        self.push_screen(HelpScreen(self.key_actions, path))

    async def action_quit(self) -> None:
        self.exit()
