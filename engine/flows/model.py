"""The in-memory form of a loaded flow: what the loader produces and the runner walks.

Tasks keep their validated properties as plain data (``props``); properties that are
themselves task lists (``then``, ``else``, ``tasks``, ``errors``, Switch ``cases`` ...) are
moved into ``blocks`` so the runner can walk the tree without knowing each task type.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from signoff.engine.errors import Location
from signoff.engine.inputs.spec import InputSpec


@dataclass
class Task:
    id: str
    type: str  # canonical Kestra full name, e.g. io.kestra.plugin.core.flow.Pause
    props: dict[str, Any]
    # Child task lists by block name: "tasks", "then", "else", "errors", "defaults",
    # "onPause", "onWait", "onApprove", "onDeny", and "cases.<value>" for Switch.
    blocks: dict[str, list[Task]] = field(default_factory=dict)
    # Form of a Pause (onResume) or Approval (inputs) task.
    form: list[InputSpec] = field(default_factory=list)
    location: Location | None = None
    # Where each property was written, for run-time messages ("file:line:col").
    prop_locations: dict[str, Location] = field(default_factory=dict)

    @property
    def short_type(self) -> str:
        return self.type.rsplit(".", 1)[-1]

    def walk(self) -> Iterator[Task]:
        """Yield this task and every task below it, depth first."""
        yield self
        for children in self.blocks.values():
            for child in children:
                yield from child.walk()


@dataclass
class FlowOutput:
    """A flow-level output (Kestra ``outputs``): rendered and typed when the execution ends."""

    id: str
    type: str  # an input type name (STRING, INT, JSON, ...); the value is checked as that type
    value: Any  # usually a template
    description: str | None = None
    display_name: str | None = None
    required: bool = True
    location: Location | None = None


@dataclass
class Concurrency:
    """Kestra ``concurrency``: at most ``limit`` executions of the flow not ended at once;
    ``behavior`` says what happens to one started beyond it (QUEUE, CANCEL or FAIL)."""

    limit: int
    behavior: str = "QUEUE"


@dataclass
class Trigger:
    """One entry of a flow's ``triggers`` (engine.triggers): what starts the flow by itself.

    ``type`` is the canonical Kestra name (io.kestra.plugin.core.trigger.Schedule, .Webhook,
    .Flow); ``props`` the validated properties as written (``cron``, ``key``, ``conditions``...)."""

    id: str
    type: str
    props: dict[str, Any]
    location: Location | None = None

    @property
    def short_type(self) -> str:
        return self.type.rsplit(".", 1)[-1]

    @property
    def disabled(self) -> bool:
        return self.props.get("disabled") is True


@dataclass
class Flow:
    id: str
    namespace: str
    description: str | None
    labels: dict[str, Any]
    variables: dict[str, Any]
    inputs: list[InputSpec]
    tasks: list[Task]
    errors: list[Task]
    source: str  # the file's exact text; its sha256 identifies the revision
    path: str
    sha256: str
    revision: int = 0  # assigned by the store when the source is first seen
    # run after `tasks` (and `errors`) whatever happened, while the execution is RUNNING
    finally_tasks: list[Task] = field(default_factory=list)
    # run once the execution has its final state (`execution.state`); never change that state
    after_execution: list[Task] = field(default_factory=list)
    outputs: list[FlowOutput] = field(default_factory=list)
    concurrency: Concurrency | None = None
    disabled: bool = False  # Kestra's `disabled: true`: the flow loads but starts no execution
    triggers: list[Trigger] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.id)

    def all_tasks(self) -> Iterator[Task]:
        for t in [*self.tasks, *self.errors, *self.finally_tasks, *self.after_execution]:
            yield from t.walk()

    def find_task(self, task_id: str) -> Task | None:
        for t in self.all_tasks():
            if t.id == task_id:
                return t
        return None
