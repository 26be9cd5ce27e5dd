"""Small core tasks that produce values or fail on purpose.

``OutputValues`` (``values`` -> outputs.values), ``Fail`` (optional ``condition``,
``errorMessage``), ``Return`` (``format`` -> outputs.value) and ``Echo`` (logs ``format``).
"""
from __future__ import annotations

from typing import Any

from signoff.engine.tasks.base import RunContext, TaskFailed, handler
from signoff.engine.tasks.log import as_text, normalize_level


@handler("io.kestra.plugin.core.output.OutputValues")
def output_values(ctx: RunContext) -> dict[str, Any]:
    values = ctx.prop("values", {})
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise TaskFailed("OutputValues `values` must be a map of names to values")
    return {"values": values}


@handler("io.kestra.plugin.core.execution.Fail")
def fail(ctx: RunContext) -> dict[str, Any]:
    if "condition" in ctx.task.props:
        from signoff.engine.expressions import truthy

        if not truthy(ctx.prop("condition")):
            return {}
    message = ctx.prop("errorMessage")
    raise TaskFailed(as_text(message) if message not in (None, "") else "Task failure")


@handler("io.kestra.plugin.core.debug.Return")
def return_(ctx: RunContext) -> dict[str, Any]:
    return {"value": ctx.prop("format")}


@handler("io.kestra.plugin.core.debug.Echo")
def echo(ctx: RunContext) -> dict[str, Any]:
    level = normalize_level(ctx.prop("level"))
    ctx.log(level, as_text(ctx.prop("format")))
    return {}
