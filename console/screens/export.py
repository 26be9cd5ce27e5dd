"""Export the current history query to a CSV or JSONL file (the same format as the CLI's export).

The file is written by a thread worker from ``backend.export_audit(query)`` (oldest first,
streamed, so a large audit is never held in memory) into a temporary file beside the target,
then moved into place: a failed export leaves nothing behind. An existing file is replaced
only after the operator pressed Export a second time on the same path.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Button, Input, RadioButton, RadioSet, Static
from textual.worker import Worker, get_current_worker

from signoff.console.backend import Backend
from signoff.console.screens.host import signoff_app

EXTENSIONS = {"csv": ".csv", "jsonl": ".jsonl"}


@dataclass(frozen=True)
class ExportResult:
    path: str
    count: int
    format: str


def default_path(now: datetime, fmt: str = "csv") -> str:
    return f"./signoff-audit-{now.astimezone(UTC).strftime('%Y%m%d-%H%M%S')}{EXTENSIONS[fmt]}"


def write_events(events: Iterable[dict[str, Any]], handle, fmt: str, *, cancelled=lambda: False,
                 progress=lambda n: None) -> int:
    """Write events to an open text file in the CLI's export format (engine.audit.export);
    returns how many were written. ``cancelled()`` is asked every 1000 events."""
    from signoff.engine.audit.export import render

    count = 0

    def counted() -> Iterator[dict[str, Any]]:
        nonlocal count
        for event in events:
            yield event
            count += 1
            if count % 1000 == 0:
                progress(count)
                if cancelled():
                    raise ExportCancelled

    for chunk in render(counted(), fmt):
        handle.write(chunk)
    return count


class ExportCancelled(Exception):
    pass


class ExportScreen(ModalScreen[ExportResult | None]):
    """Choose CSV or JSONL and a path; dismisses with an ExportResult, or None when cancelled."""

    DEFAULT_CSS = """
    ExportScreen { align: center middle; }
    ExportScreen #export-dialog { width: 72; max-width: 100%; height: auto; border: thick $primary;
                                  background: $surface; padding: 1 2; }
    ExportScreen #export-title { text-style: bold; margin-bottom: 1; }
    ExportScreen #export-query { color: $text-muted; margin-bottom: 1; }
    ExportScreen #export-format { layout: horizontal; height: auto; width: auto; margin-bottom: 1; }
    ExportScreen #export-message { height: auto; margin-top: 1; }
    ExportScreen #export-message.-error { color: $error; }
    ExportScreen #export-message.-warning { color: $warning; }
    ExportScreen #export-buttons { height: auto; margin-top: 1; align-horizontal: right; }
    ExportScreen #export-buttons Button { margin-left: 1; }
    """

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    # -- what the export worker reports -------------------------------------------------------
    class Progress(Message):
        bubble = False

        def __init__(self, count: int) -> None:
            super().__init__()
            self.count = count

    class Failed(Message):
        bubble = False

        def __init__(self, reason: str) -> None:
            super().__init__()
            self.reason = reason

    class Done(Message):
        bubble = False

        def __init__(self, result: ExportResult) -> None:
            super().__init__()
            self.result = result

    def __init__(self, query: str, *, backend: Backend | None = None, now: datetime | None = None,
                 path: str | None = None) -> None:
        super().__init__()
        self.query_text = query
        self._backend_arg = backend
        self.now = now or datetime.now(UTC)
        self.format = "csv"
        self._initial_path = path or default_path(self.now, "csv")
        self._confirmed_overwrite: Path | None = None
        self.running = False
        self._worker: Worker[None] | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="export-dialog"):
            yield Static("Export audit events", id="export-title")
            yield Static(Text(f"query: {self.query_text}" if self.query_text else "query: (every event)"),
                         id="export-query")
            with RadioSet(id="export-format"):
                yield RadioButton("CSV", value=True, id="export-csv")
                yield RadioButton("JSONL", id="export-jsonl")
            yield Input(value=self._initial_path, id="export-path", placeholder="file to write")
            yield Static("", id="export-message")
            with Horizontal(id="export-buttons"):
                yield Button("Export", variant="primary", id="export-go")
                yield Button("Cancel", id="export-cancel")

    def on_mount(self) -> None:
        self.query_one("#export-path", Input).focus()

    @property
    def backend(self) -> Backend:
        return self._backend_arg if self._backend_arg is not None else signoff_app(self).backend

    # -- choosing -----------------------------------------------------------------------
    @on(RadioSet.Changed, "#export-format")
    def _format_changed(self, event: RadioSet.Changed) -> None:
        new = "jsonl" if event.pressed.id == "export-jsonl" else "csv"
        if new == self.format:
            return
        old_ext, new_ext = EXTENSIONS[self.format], EXTENSIONS[new]
        self.format = new
        path_input = self.query_one("#export-path", Input)
        if path_input.value.endswith(old_ext):
            path_input.value = path_input.value[: -len(old_ext)] + new_ext
        self._confirmed_overwrite = None
        self._say("")

    def set_format(self, fmt: str) -> None:
        """Select CSV or JSONL (as the radio buttons do)."""
        self.query_one("#export-jsonl" if fmt == "jsonl" else "#export-csv", RadioButton).value = True

    @on(Input.Changed, "#export-path")
    def _path_changed(self) -> None:
        if self._confirmed_overwrite is not None:
            self._confirmed_overwrite = None
            self.query_one("#export-go", Button).label = "Export"
            self._say("")

    # -- exporting ----------------------------------------------------------------------
    @on(Input.Submitted, "#export-path")
    @on(Button.Pressed, "#export-go")
    def start_export(self) -> None:
        if self.running:
            return
        text = self.query_one("#export-path", Input).value.strip()
        if not text:
            self._say("give a file to write", "-error")
            return
        path = Path(text).expanduser()
        if path.is_dir():
            self._say(f"{path} is a folder: give a file name", "-error")
            return
        if not path.parent.is_dir():
            self._say(f"folder {path.parent} does not exist", "-error")
            return
        overwrite = False
        if path.exists():
            if self._confirmed_overwrite != path.resolve():
                self._confirmed_overwrite = path.resolve()
                self.query_one("#export-go", Button).label = "Overwrite"
                self._say(f"{path} already exists: press Overwrite to replace it, or change the path", "-warning")
                return
            overwrite = True
        self.running = True
        self.query_one("#export-go", Button).disabled = True
        self._say("exporting…")
        self._worker = self._write(self.backend, self.query_text, path, self.format, overwrite)

    @work(thread=True, group="export", exclusive=True)
    def _write(self, backend: Backend, query: str, path: Path, fmt: str, overwrite: bool) -> None:
        worker = get_current_worker()
        temp = path.with_name(f".{path.name}.{os.getpid()}.part")
        try:
            with open(temp, "w", encoding="utf-8", newline="") as handle:
                count = write_events(backend.export_audit(query), handle, fmt,
                                     cancelled=lambda: worker.is_cancelled,
                                     progress=lambda n: self.post_message(self.Progress(n)))
            if not overwrite and path.exists():
                raise FileExistsError(f"{path} appeared while exporting; nothing was replaced")
            os.replace(temp, path)
        except ExportCancelled:
            temp.unlink(missing_ok=True)
            return
        except Exception as exc:  # noqa: BLE001 - a bad query, a full disk...: say so, keep the dialog
            temp.unlink(missing_ok=True)
            message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
            self.post_message(self.Failed(message))
            return
        self.post_message(self.Done(ExportResult(str(path), count, fmt)))

    @on(Progress)
    def _progressed(self, report: Progress) -> None:
        self._say(f"exported {report.count:,}…")

    @on(Failed)
    def _failed(self, report: Failed) -> None:
        self.running = False
        self.query_one("#export-go", Button).disabled = False
        self._say(f"export failed: {report.reason}", "-error")

    @on(Done)
    def _done(self, report: Done) -> None:
        self.dismiss(report.result)

    @on(Button.Pressed, "#export-cancel")
    def action_cancel(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
        self.dismiss(None)

    def _say(self, text: str, kind: str = "") -> None:
        message = self.query_one("#export-message", Static)
        message.update(Text(text))
        message.set_classes(kind)
