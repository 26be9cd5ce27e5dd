"""``io.kestra.plugin.core.log.Log``: write one or more messages to the execution's logs."""
from __future__ import annotations

from typing import Any

from engine.tasks.base import RunContext, TaskFailed, handler

LEVELS = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR")
_ALIASES = {"WARNING": "WARN", "ERR": "ERROR", "FATAL": "ERROR", "CRITICAL": "ERROR"}


def normalize_level(value: Any, default: str = "INFO") -> str:
    """A Kestra log level name (TRACE/DEBUG/INFO/WARN/ERROR); TaskFailed for anything else."""
    if value is None or value == "":
        return default
    level = str(value).strip().upper()
    level = _ALIASES.get(level, level)
    if level not in LEVELS:
        raise TaskFailed(f"Invalid log level {value!r}: expected one of {', '.join(LEVELS)}")
    return level


def as_text(value: Any) -> str:
    return "" if value is None else value if isinstance(value, str) else str(value)


@handler("io.kestra.plugin.core.log.Log")
def log(ctx: RunContext) -> dict[str, Any]:
    level = normalize_level(ctx.prop("level"))
    message = ctx.prop("message")
    if message is None:
        raise TaskFailed("Log task needs a `message`")
    for line in message if isinstance(message, list) else [message]:
        ctx.log(level, as_text(line))
    return {}
