"""Plain text of what the console shows: the current screen (also for humans reading test
failures) and one Static's content."""
from __future__ import annotations

import io

from rich.console import Console


def screen_text(app) -> str:
    strips = app.screen._compositor.render_strips()
    return "\n".join("".join(seg.text for seg in strip) for strip in strips)


def rendered(widget, width: int = 100) -> str:
    """Plain text of a Static's content (a Rich renderable or Content), ``width`` columns wide."""
    content = getattr(widget, "content", None)
    console = Console(width=width, record=True, color_system=None, file=io.StringIO())
    console.print(content if content is not None and not isinstance(content, str) else str(content))
    return console.export_text()
