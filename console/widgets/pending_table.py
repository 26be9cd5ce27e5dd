"""The pending list: a virtual (Line API) table that stays fast at 100,000 rows.

Design
------
* Data: ``_rows`` is a plain Python list of :class:`PendingRow` (``__slots__`` objects holding
  pre-formatted strings), kept in due-time order (the backend's order: due time, no due time
  last, then creation time, then id). ``_sort_keys`` is a parallel list of sort keys, so a new
  request is inserted with :func:`bisect.insort` instead of re-sorting.
* Filter: every row keeps one lower-case search key (namespace, flow, summary, requester, id).
  ``_visible`` is the list of rows that pass the filter; typing one more character filters the
  previous result instead of all rows (incremental), clearing starts again from all rows.
* Rendering: :meth:`render_line` builds only the lines on screen; nothing is laid out for the
  other rows. Line 0 is a fixed header; ``virtual_size`` is ``len(_visible) + 1`` lines high,
  so the scrollbar and page keys behave as in any scroll view.
* Countdown: a 1 s timer calls :meth:`refresh`, which repaints the visible lines only; times
  come from the injected clock, so snapshots are stable under a fixed clock.
* Marks: a set of request ids (they survive filtering and live updates).
"""
from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from signoff.engine.approvals.rows import PENDING_ROW_FIELDS, row_tuple
from signoff.engine.approvals.rows import sort_key as pending_order_key
from signoff.engine.clock import parse_time

#: due within this many seconds -> warning colour
DUE_SOON_SECONDS = 15 * 60
MARK = "●"


def epoch_seconds(text: str | None) -> float | None:
    """A stored time as seconds since the epoch, or None if missing or unreadable."""
    if not text:
        return None
    try:
        return parse_time(text).timestamp()
    except ValueError:
        return None


#: fields of a compact row tuple (defined once, in the engine)
ROW_FIELDS = PENDING_ROW_FIELDS
_interned: dict[str, str] = {}


def _intern(value: str | None) -> str:
    """One string object per distinct namespace/flow/task/requester (100k rows share a few)."""
    if not value:
        return ""
    found = _interned.get(value)
    if found is None:
        if len(_interned) > 50_000:
            _interned.clear()
        found = _interned[value] = value
    return found


class PendingRow:
    """One request in the list, kept compact: a few string fields (the repeated ones shared)
    and the lower-case search key, computed once when the row is built (in the loader's
    thread). The display strings, due time and sort key are derived on first use."""

    __slots__ = ("id", "execution_id", "namespace", "flow", "task_id", "_summary", "requested_by",
                 "created_at", "due_at", "_approvals", "_required", "search", "_sort_key", "_due", "_created")

    def __init__(self, data: dict[str, Any]) -> None:
        self._fill(*row_tuple(data))

    @classmethod
    def from_tuple(cls, t: tuple) -> PendingRow:
        """From a :data:`ROW_FIELDS` tuple (the backend's ``pending_rows``)."""
        row = cls.__new__(cls)
        row._fill(*t)
        return row

    def _fill(self, id, execution_id, namespace, flow_id, task_id, summary, requested_by, created_at,
              due_at, approvals, required) -> None:
        self.id: str = id
        self.execution_id: str | None = execution_id
        self.namespace: str = _intern(namespace)
        self.flow: str = _intern(flow_id)
        self.task_id: str = _intern(task_id)
        self._summary: str = summary or ""
        self.requested_by: str = _intern(requested_by)
        self.created_at: str = created_at or ""
        self.due_at: str | None = due_at
        self._approvals = approvals
        self._required = required
        self.search: str = f"{self.namespace}\x00{self.flow}\x00{self.summary}\x00{self.requested_by}\x00{id}".lower()
        self._sort_key: tuple | None = None
        self._due: float | None | bool = False  # False = not parsed yet
        self._created: float | None | bool = False

    @property
    def data(self) -> dict[str, Any]:
        """The row as a summary dict (the fields the list keeps)."""
        return {"id": self.id, "execution_id": self.execution_id, "namespace": self.namespace,
                "flow_id": self.flow, "task_id": self.task_id, "summary": self._summary,
                "requested_by": self.requested_by, "created_at": self.created_at, "due_at": self.due_at,
                "approvals": self._approvals, "required": self._required}

    @property
    def summary(self) -> str:
        text = self._summary
        return text.replace("\n", " ") if "\n" in text else text

    @property
    def approvals(self) -> str:
        return f"{self._approvals}/{self._required}"

    @property
    def sort_key(self) -> tuple:
        if self._sort_key is None:
            self._sort_key = pending_order_key(self.due_at, self.created_at, self.id)
        return self._sort_key

    @property
    def due(self) -> float | None:
        if self._due is False:
            self._due = epoch_seconds(self.due_at)
        return self._due

    @property
    def created(self) -> float | None:
        if self._created is False:
            self._created = epoch_seconds(self.created_at)
        return self._created


def build_rows(items: Iterable[Any]) -> list[PendingRow]:
    """Rows from summary dicts, ROW_FIELDS tuples or rows (any mix)."""
    make = PendingRow.from_tuple
    return [item if isinstance(item, PendingRow) else (make(item) if isinstance(item, tuple) else PendingRow(item))
            for item in items]


def format_span(seconds: float) -> str:
    """Compact duration: 45s, 12m05s, 3h12m, 2d04h."""
    seconds = int(abs(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, sec = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def due_text(row: PendingRow, now: float) -> tuple[str, str]:
    """(text, level) for the due/age column; level is "", "warning", "error" or "dim"."""
    due = row.due
    if due is not None:
        left = due - now
        if left < 0:
            return f"-{format_span(left)}", "error"
        return format_span(left), ("warning" if left <= DUE_SOON_SECONDS else "")
    created = row.created
    if created is None:
        return "", "dim"
    return f"{format_span(now - created)} old", "dim"


class Column:
    __slots__ = ("key", "label", "width")

    def __init__(self, key: str, label: str, width: int) -> None:
        self.key = key
        self.label = label
        self.width = width

    def __repr__(self) -> str:
        return f"Column({self.key!r}, {self.label!r}, {self.width})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Column) and (self.key, self.label, self.width) == (other.key, other.label, other.width)


class PendingTable(ScrollView, can_focus=True):
    """Virtual list of pending requests (see the module docstring)."""

    DEFAULT_CSS = """
    PendingTable {
        background: $surface;
        scrollbar-gutter: stable;
        overflow-x: hidden;
        overflow-y: auto;
    }
    PendingTable > .pending-table--header { text-style: bold; color: $text-muted; background: $panel; }
    PendingTable > .pending-table--cursor { background: $block-cursor-blurred-background; color: $text; }
    PendingTable:focus > .pending-table--cursor {
        background: $block-cursor-background; color: $block-cursor-foreground;
        text-style: $block-cursor-text-style;
    }
    PendingTable > .pending-table--mark { color: $accent; text-style: bold; }
    PendingTable > .pending-table--marked { background: $accent 15%; }
    PendingTable > .pending-table--warning { color: $warning; text-style: bold; }
    PendingTable > .pending-table--error { color: $error; text-style: bold; }
    PendingTable > .pending-table--dim { color: $text-muted; }
    PendingTable > .pending-table--empty { color: $text-muted; text-style: italic; }
    PendingTable:nocolor > .pending-table--cursor { text-style: reverse bold; }
    PendingTable:nocolor > .pending-table--warning { text-style: bold underline; }
    PendingTable:nocolor > .pending-table--error { text-style: bold reverse; }
    """

    COMPONENT_CLASSES = {
        "pending-table--header", "pending-table--cursor", "pending-table--mark", "pending-table--marked",
        "pending-table--warning", "pending-table--error", "pending-table--dim", "pending-table--empty",
    }

    cursor: reactive[int] = reactive(0, always_update=True, repaint=False)

    class Highlighted(Message):
        """The highlighted request changed (request_id is None when the list is empty)."""

        def __init__(self, request_id: str | None) -> None:
            super().__init__()
            self.request_id = request_id

    class MarksChanged(Message):
        def __init__(self, count: int) -> None:
            super().__init__()
            self.count = count

    class Activated(Message):
        """Enter or double click on a row."""

        def __init__(self, request_id: str) -> None:
            super().__init__()
            self.request_id = request_id

    def __init__(self, *, clock: Callable[[], datetime] | None = None, name: str | None = None,
                 id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._now = clock or (lambda: datetime.now(UTC))
        self._rows: list[PendingRow] = []
        self._sort_keys: list[tuple] | None = []
        self._by_id: dict[str, PendingRow] = {}
        self._visible: list[PendingRow] = []
        self._filter = ""
        self.marked: set[str] = set()
        self._last_highlight: str | None = "\x00"
        self.loading_text = "Loading pending requests…"
        self.loaded = False
        self._paint: tuple | None = None
        self._column_cache: tuple[int, list[Column]] | None = None

    # -- data ----------------------------------------------------------------------------
    @property
    def row_count(self) -> int:
        return len(self._rows)

    @property
    def visible_count(self) -> int:
        return len(self._visible)

    @property
    def filter_text(self) -> str:
        return self._filter

    @property
    def visible_ids(self) -> list[str]:
        return [r.id for r in self._visible]

    @property
    def all_ids(self) -> list[str]:
        return [r.id for r in self._rows]

    def row(self, request_id: str) -> PendingRow | None:
        return self._by_id.get(request_id)

    def rows_of_executions(self, execution_ids: set[str]) -> list[PendingRow]:
        return [r for r in self._rows if r.execution_id in execution_ids]

    @property
    def highlighted(self) -> PendingRow | None:
        if 0 <= self.cursor < len(self._visible):
            return self._visible[self.cursor]
        return None

    @property
    def highlighted_id(self) -> str | None:
        row = self.highlighted
        return row.id if row else None

    def set_rows(self, items: Iterable[Any], *, sort: bool = False, complete: bool = True) -> None:
        """Replace every row (items in due-time order, as the backend returns them): summary
        dicts, ROW_FIELDS tuples or :class:`PendingRow` objects (see :func:`build_rows`).
        ``complete=False``: only the first rows so far (the rest follow with another call)."""
        current = self.highlighted_id
        rows = build_rows(items)
        if sort:
            rows.sort(key=lambda r: r.sort_key)
        self._rows = rows
        self._sort_keys = None  # built on first insert or lookup
        self._by_id = {r.id: r for r in rows}
        self.marked &= self._by_id.keys()
        self.loaded = complete
        self._apply_filter(self._filter, incremental=False, keep=current)
        self.post_message(self.MarksChanged(len(self.marked)))

    def add_rows(self, items: Iterable[dict[str, Any]]) -> int:
        """Insert new requests in order (live update); returns how many were added."""
        current = self.highlighted_id
        added = 0
        for item in items:
            old = self._by_id.get(item["id"])
            if old is not None:
                self._update_row(old, item)
                continue
            row = PendingRow(item)
            keys = self._keys()
            pos = bisect_left(keys, row.sort_key)
            keys.insert(pos, row.sort_key)
            self._rows.insert(pos, row)
            self._by_id[row.id] = row
            added += 1
        if added:
            self._apply_filter(self._filter, incremental=False, keep=current)
        else:
            self.refresh()
        return added

    def _update_row(self, row: PendingRow, item: dict[str, Any]) -> None:
        fresh = PendingRow(item)
        for name in PendingRow.__slots__:
            setattr(row, name, getattr(fresh, name))

    def _keys(self) -> list[tuple]:
        if self._sort_keys is None:
            self._sort_keys = [r.sort_key for r in self._rows]
        return self._sort_keys

    def remove_ids(self, ids: Iterable[str]) -> list[str]:
        """Drop these requests (decided elsewhere, or here); returns the ids that were present."""
        gone = {i for i in ids if i in self._by_id}
        if not gone:
            return []
        current = self.highlighted_id
        old_cursor = self.cursor
        self._rows = [r for r in self._rows if r.id not in gone]
        self._sort_keys = None
        for i in gone:
            del self._by_id[i]
        marks_before = len(self.marked)
        self.marked -= gone
        self._visible = [r for r in self._visible if r.id not in gone]
        if current is not None and current not in gone:
            self._move_to(current)
        else:
            self._set_cursor(min(old_cursor, max(0, len(self._visible) - 1)))
        self._update_virtual_size()
        self.refresh()
        if len(self.marked) != marks_before:
            self.post_message(self.MarksChanged(len(self.marked)))
        return sorted(gone)

    # -- filter --------------------------------------------------------------------------
    def set_filter(self, text: str) -> None:
        text = text.strip().lower()
        if text == self._filter:
            return
        incremental = bool(self._filter) and text.startswith(self._filter)
        self._apply_filter(text, incremental=incremental, keep=self.highlighted_id)

    def _apply_filter(self, text: str, *, incremental: bool, keep: str | None) -> None:
        self._filter = text
        if not text:
            self._visible = list(self._rows)
        else:
            source = self._visible if incremental else self._rows
            self._visible = [r for r in source if text in r.search]
        self._update_virtual_size()
        if keep is None or not self._move_to(keep):
            self._set_cursor(0)
            self.scroll_to(y=0, animate=False, immediate=True)
        self.refresh()

    def _move_to(self, request_id: str) -> bool:
        row = self._by_id.get(request_id)
        if row is None:
            return False
        try:
            pos = self._visible.index(row)  # identity comparison in C: ~1 ms per 100k rows
        except ValueError:
            return False
        self._set_cursor(pos)
        return True

    # -- marks ---------------------------------------------------------------------------
    def toggle_mark(self, advance: bool = True) -> None:
        row = self.highlighted
        if row is None:
            return
        if row.id in self.marked:
            self.marked.discard(row.id)
        else:
            self.marked.add(row.id)
        self.refresh_line(self.cursor + 1)
        self.post_message(self.MarksChanged(len(self.marked)))
        if advance:
            self.cursor_down()

    def mark_all(self) -> None:
        self.marked.update(r.id for r in self._visible)
        self.refresh()
        self.post_message(self.MarksChanged(len(self.marked)))

    def clear_marks(self) -> None:
        self.marked.clear()
        self.refresh()
        self.post_message(self.MarksChanged(0))

    def set_marks(self, ids: Iterable[str]) -> None:
        self.marked = {i for i in ids if i in self._by_id}
        self.refresh()
        self.post_message(self.MarksChanged(len(self.marked)))

    # -- cursor --------------------------------------------------------------------------
    def _set_cursor(self, index: int) -> None:
        self.cursor = max(0, min(index, len(self._visible) - 1)) if self._visible else 0

    def watch_cursor(self, old: int, new: int) -> None:
        # repaint the two lines that changed; a scroll repaints everything by itself
        self.refresh_line(old + 1)
        if new != old:
            self.refresh_line(new + 1)
        self._scroll_cursor_into_view()
        current = self.highlighted_id
        if current != self._last_highlight:
            self._last_highlight = current
            self.post_message(self.Highlighted(current))

    def _scroll_cursor_into_view(self) -> None:
        height = max(1, self.scrollable_content_region.height - 1)  # minus the header
        top = int(self.scroll_y)
        if self.cursor < top:
            self.scroll_to(y=self.cursor, animate=False, immediate=True)
        elif self.cursor >= top + height:
            self.scroll_to(y=self.cursor - height + 1, animate=False, immediate=True)

    @property
    def _page(self) -> int:
        return max(1, self.scrollable_content_region.height - 2)

    def cursor_down(self) -> None:
        self._set_cursor(self.cursor + 1)

    def cursor_up(self) -> None:
        self._set_cursor(self.cursor - 1)

    def page_down(self) -> None:
        self._set_cursor(self.cursor + self._page)

    def page_up(self) -> None:
        self._set_cursor(self.cursor - self._page)

    def cursor_first(self) -> None:
        self._set_cursor(0)

    def cursor_last(self) -> None:
        self._set_cursor(len(self._visible) - 1)

    # Textual's scroll actions (mouse wheel is handled by ScrollView itself)
    # The scroll container's own key bindings (down, up, pagedown, pageup, home, end) would
    # scroll the view (animated) and leave the cursor behind: on this list they move the
    # cursor, as the same keys do through the main screen's bindings.
    def action_scroll_down(self) -> None:
        self.cursor_down()

    def action_scroll_up(self) -> None:
        self.cursor_up()

    def action_page_down(self) -> None:
        self.page_down()

    def action_page_up(self) -> None:
        self.page_up()

    def action_scroll_home(self) -> None:
        self.cursor_first()

    def action_scroll_end(self) -> None:
        self.cursor_last()

    async def _on_click(self, event: events.Click) -> None:
        index = event.y - 1 + int(self.scroll_y)
        if event.y >= 1 and 0 <= index < len(self._visible):
            self._set_cursor(index)
            if event.chain >= 2 and self.highlighted_id:
                self.post_message(self.Activated(self.highlighted_id))

    # -- layout --------------------------------------------------------------------------
    def _update_virtual_size(self) -> None:
        self.virtual_size = Size(self.size.width, len(self._visible) + 1)

    def on_resize(self, _event: events.Resize) -> None:
        self._update_virtual_size()
        self._scroll_cursor_into_view()

    def tick(self) -> None:
        """Repaint the visible lines (the countdown column)."""
        if self._visible:
            self.refresh()

    def columns(self, width: int) -> list[Column]:
        narrow = width < 84
        ns = 0 if narrow else min(22, max(12, width // 8))
        flow = min(20, max(12, width // 8)) if not narrow else 16
        by = 10 if narrow else 12
        cols = [Column("mark", "", 2), Column("due", "DUE/AGE", 9)]
        if ns:
            cols.append(Column("namespace", "NAMESPACE", ns))
        cols.append(Column("flow", "FLOW", flow))
        fixed = sum(c.width + 1 for c in cols) + 1 + (by + 1) + 5  # separators after each but the last
        cols.append(Column("summary", "SUMMARY", max(8, width - fixed)))
        cols.append(Column("requested_by", "BY" if narrow else "REQUESTED BY", by))
        cols.append(Column("approvals", " APPR", 5))
        return cols

    # -- rendering -----------------------------------------------------------------------
    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._paint = None

    def _styles(self) -> dict[str, Style]:
        """The base and component styles, computed once per theme/focus/CSS change (the base
        style walks every ancestor: too slow to ask for on each line)."""
        key = (self.app.theme, self.has_focus)
        paint = self._paint
        if paint is None or paint[0] != key:
            base = self.rich_style
            component = self.get_component_rich_style
            styles = {"": base}
            for name in ("header", "marked", "empty"):
                styles[name] = base + component(f"pending-table--{name}")
            styles["cursor"] = component("pending-table--cursor")
            for name in ("mark", "warning", "error", "dim"):
                styles[name] = component(f"pending-table--{name}", partial=True)
            paint = self._paint = (key, styles)
        return paint[1]

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width or self.size.width
        styles = self._styles()
        base = styles[""]
        if y == 0:
            return self._render_header(width, base)
        index = y - 1 + int(self.scroll_y)
        if not self._visible:
            if y == 2:
                text = self.loading_text if not self.loaded else (
                    f"No pending request matches “{self._filter}”." if self._filter
                    else "No pending approval requests. New ones appear here as they arrive.")
                return Strip([Segment(set_cell_size("  " + text, width), styles["empty"])], width)
            return Strip.blank(width, base)
        if index >= len(self._visible):
            return Strip.blank(width, base)
        return self._render_row(self._visible[index], index, width, base)

    def _columns(self, width: int) -> list[Column]:
        cached = self._column_cache
        if cached is None or cached[0] != width:
            cached = self._column_cache = (width, self.columns(width))
        return cached[1]

    def _render_header(self, width: int, base: Style) -> Strip:
        style = self._styles()["header"]
        parts = []
        for col in self._columns(width):
            parts.append(set_cell_size(col.label, col.width))
        text = " ".join(parts)
        if self._filter:
            suffix = f" {len(self._visible)}/{len(self._rows)}"
        else:
            suffix = ""
        line = set_cell_size(text, width - cell_len(suffix)) + suffix
        return Strip([Segment(line, style)], width)

    def _render_row(self, row: PendingRow, index: int, width: int, base: Style) -> Strip:
        styles = self._styles()
        marked = row.id in self.marked
        row_style = base
        if marked:
            row_style = styles["marked"]
        if index == self.cursor:
            row_style = row_style + styles["cursor"]
        now = self._now().timestamp()
        segments: list[Segment] = []
        for col in self._columns(width):
            style = row_style
            key = col.key
            if key == "mark":
                text = f" {MARK}" if marked else ""
                if marked:
                    style = row_style + styles["mark"]
            elif key == "due":
                text, level = due_text(row, now)
                text = text.rjust(col.width - 1)
                if level:
                    style = row_style + styles[level]
            elif key == "approvals":
                text = row.approvals.rjust(col.width)
            else:
                text = getattr(row, key)
            if segments:
                segments.append(Segment(" ", row_style))
            segments.append(Segment(set_cell_size(text, col.width), style))
        strip = Strip(segments)
        return strip.adjust_cell_length(width, row_style)
