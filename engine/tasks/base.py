"""The contract between the runner and a leaf task handler.

A handler is a plain function ``handler(ctx) -> outputs`` registered under Kestra's full
type name. It renders the properties it needs through ``ctx.render`` (so undefined
variables fail the task with a message naming the task), performs its effect, and returns
its outputs as JSON-able data. It raises :class:`TaskFailed` to fail the task run.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from signoff.engine.flows.model import Task


class TaskFailed(Exception):
    """Fails the current task run; ``message`` is shown in logs and execution details."""

    def __init__(self, message: str, *, warning: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.warning = warning  # end the task as WARNING instead of FAILED


class RunContext(Protocol):
    task: Task
    execution_id: str
    namespace: str
    flow_id: str
    attempt: int
    data_dir: Path
    #: Stable per execution + task run + attempt; sent as the Idempotency-Key header.
    idempotency_key: str

    def render(self, value: Any) -> Any:
        """Render templates in a str/list/dict with the execution's variables."""

    def prop(self, name: str, default: Any = None) -> Any:
        """The task's property ``name``, rendered; ``default`` when absent."""

    def log(self, level: str, message: str) -> None:
        """Append a line to the execution's logs (same transaction as the task's end)."""


Handler = Callable[[RunContext], dict[str, Any]]

HANDLERS: dict[str, Handler] = {}


def handler(*type_names: str) -> Callable[[Handler], Handler]:
    """Register a function as the handler of one or more task type names."""

    def register(fn: Handler) -> Handler:
        for name in type_names:
            HANDLERS[name] = fn
        return fn

    return register


@dataclass
class SimpleContext:
    """A self-contained RunContext: what the runner gives a leaf handler (with the execution's
    variables and functions), and what tests of handlers and one-off runs build."""

    task: Task
    variables: dict[str, Any] = field(default_factory=dict)
    execution_id: str = "test-execution"
    namespace: str = "test"
    flow_id: str = "test"
    attempt: int = 1
    data_dir: Path = Path(".")
    idempotency_key: str = "test-execution:task:1"
    logs: list[tuple[str, str]] = field(default_factory=list)
    functions: dict[str, Callable[..., Any]] = field(default_factory=dict)

    def render(self, value: Any) -> Any:
        from signoff.engine.expressions import render_data

        return render_data(value, self.variables, self.functions)

    def prop(self, name: str, default: Any = None) -> Any:
        if name not in self.task.props:
            return default
        return self.render(self.task.props[name])

    def log(self, level: str, message: str) -> None:
        self.logs.append((level, message))
