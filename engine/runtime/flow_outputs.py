"""Flow-level ``outputs`` (Kestra): rendered and typed once, when the execution ends.

As in Kestra, each output's ``value`` is rendered with the execution's variables and checked
as its ``type`` (the input types and messages). An output that cannot be rendered or does not
fit its type fails an execution that would otherwise end SUCCESS or WARNING; one that ended
FAILED, KILLED or CANCELLED keeps that state (a deny stays a deny) and simply leaves the
output out, with a WARN log saying why.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from signoff.engine.errors import ExpressionError
from signoff.engine.expressions import render_data
from signoff.engine.flows.model import FlowOutput
from signoff.engine.inputs.spec import InputSpec


def render_outputs(outputs: list[FlowOutput], variables: Mapping[str, Any],
                   functions: Mapping[str, Callable[..., Any]]) -> tuple[dict[str, Any], list[str]]:
    """(values by output id, one message per output that could not be produced)."""
    from signoff.engine.inputs.validate import InputError, coerce_value

    values: dict[str, Any] = {}
    problems: list[str] = []
    for output in outputs:
        try:
            value = render_data(output.value, variables, functions)
        except ExpressionError as exc:
            problems.append(f"flow output `{output.id}`: {exc}")
            continue
        if value is None or value == "":
            if output.required:
                problems.append(f"flow output `{output.id}` is required but its value is empty")
            else:
                values[output.id] = None
            continue
        spec = InputSpec(id=output.id, type=output.type, required=output.required)
        try:
            values[output.id] = coerce_value(spec, value)
        except InputError as exc:
            problems.append(f"flow output {exc.message.removeprefix('Invalid input for ')}")
    return values, problems
