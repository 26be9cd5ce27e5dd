"""``io.kestra.plugin.core.log.Log``: write one or more messages to the execution's logs."""
from __future__ import annotations

import json
from typing import Any

from signoff.engine.flows.task_types import LEVELS
from signoff.engine.tasks.base import RunContext, TaskFailed, handler

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


def param_text(value: Any) -> str:
    """A value as the text of a form field, request body or environment variable: maps and
    lists as JSON, booleans as true/false, null as ""."""
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


@handler("io.kestra.plugin.core.log.Log")
def log(ctx: RunContext) -> dict[str, Any]:
    level = normalize_level(ctx.prop("level"))
    message = ctx.prop("message")
    if message is None:
        raise TaskFailed("Log task needs a `message`")
    for line in message if isinstance(message, list) else [message]:
        ctx.log(level, as_text(line))
    return {}
