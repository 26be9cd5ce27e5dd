"""Load Kestra-compatible flow YAML into :class:`engine.flows.model.Flow`.

Every problem found is collected (not only the first) and raised together as a
:class:`FlowLoadError`, each with its ``file:line:col`` and a message saying what to write
instead. Property values stay raw YAML data (templates are rendered by the runner); task
lists become child :class:`Task` objects in ``Task.blocks`` and forms become ``Task.form``.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from signoff.engine.errors import ExpressionError, FlowLoadError, Location, Problem
from signoff.engine.expressions import is_template, parse_template
from signoff.engine.flows.model import Flow, Task
from signoff.engine.flows.task_types import PAUSE, Prop, TaskType, resolve_type, suggest, suggest_type
from signoff.engine.flows.yaml_source import YamlLocator, parse_yaml
from signoff.engine.flows.yaml_source import describe_value as _what

ID_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_-]*$")
NAMESPACE_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_-]*(\.[a-zA-Z0-9][a-zA-Z0-9_-]*)*$")

FLOW_KEYS = ("id", "namespace", "description", "labels", "variables", "inputs", "tasks", "errors")
#: Kestra's other top-level keys: accepted and left alone.
KESTRA_FLOW_KEYS = (
    "revision", "disabled", "deleted", "triggers", "pluginDefaults", "taskDefaults", "outputs",
    "concurrency", "retry", "afterExecution", "finally", "checks", "sla", "workerGroup",
)

NodePath = tuple[Any, ...]


def _as_id(value: Any) -> Any:
    """Ids written as bare numbers (``id: 42``) are text, as in Kestra."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    return value


class _FlowBuilder:
    def __init__(self, data: dict[str, Any], locator: YamlLocator, file: str) -> None:
        self.data = data
        self.loc = locator
        self.file = file
        self.problems: list[Problem] = []
        self.task_ids: dict[str, Location] = {}

    # -- helpers -------------------------------------------------------------------------
    def problem(self, location: Location, message: str) -> None:
        self.problems.append(Problem(location, message))

    def _inputs(self, items: Any, path: NodePath) -> list:
        from signoff.engine.inputs.parse import parse_input_specs

        specs, problems = parse_input_specs(items, path, self.loc)
        self.problems.extend(problems)
        return list(specs)

    def check_value(self, prop: Prop, value: Any, path: NodePath, name: str) -> bool:
        """Check ``value`` against ``prop``; report at ``path``; True if its shape fits."""
        if value is None:
            if prop.required:
                self.problem(self.loc.key_at(path), f"`{name}` needs a value: write {prop.describe()}")
                return False
            return True
        for kind in (prop.kind, *prop.also):
            if self._fits(kind, value):
                self._check_detail(kind, prop, value, path, name)
                return True
        self.problem(self.loc.at(path), f"`{name}` expects {prop.describe()}, found {_what(value)}")
        return False

    def _fits(self, kind: str, v: Any) -> bool:
        template = isinstance(v, str) and is_template(v)
        if kind == "str":
            return isinstance(v, (str, int, float))
        if kind == "bool":
            return isinstance(v, bool) or template
        if kind == "int":
            return (isinstance(v, int) and not isinstance(v, bool)) or template
        if kind == "number":
            return (isinstance(v, (int, float)) and not isinstance(v, bool)) or template
        if kind in ("duration", "enum"):
            return isinstance(v, str)
        if kind in ("map", "cases", "task"):
            return isinstance(v, dict)
        if kind in ("list", "tasks", "inputs"):
            return isinstance(v, list)
        return True  # any

    def _check_detail(self, kind: str, prop: Prop, v: Any, path: NodePath, name: str) -> None:
        if kind == "enum" and not is_template(v) and v not in prop.values:
            hint = suggest(v, prop.values)
            msg = f"`{name}` must be one of {', '.join(prop.values)}; found `{v}`"
            self.problem(self.loc.at(path), msg + (f", did you mean `{hint}`?" if hint else ""))
        elif kind == "duration" and not is_template(v):
            from signoff.engine.durations import parse_duration

            try:
                parse_duration(v)
            except ValueError as err:
                self.problem(self.loc.at(path), f"`{name}`: {err}")
        elif kind == "int" and isinstance(v, int) and prop.min is not None and v < prop.min:
            self.problem(self.loc.at(path), f"`{name}` must be at least {prop.min}, found {v}")
        elif kind == "list" and prop.item is not None:
            for i, item in enumerate(v):
                self.check_value(prop.item, item, (*path, i), f"{name}[{i}]")
        elif kind == "map" and prop.fields is not None:
            for key, item in v.items():
                sub = prop.fields.get(key)
                if sub is None:
                    hint = suggest(key, prop.fields)
                    msg = f"unknown key `{key}` in `{name}`"
                    msg += f", did you mean `{hint}`?" if hint else f"; allowed keys: {', '.join(prop.fields)}"
                    self.problem(self.loc.key_at((*path, key)), msg)
                else:
                    self.check_value(sub, item, (*path, key), f"{name}.{key}")

    # -- tasks -----------------------------------------------------------------------------
    def task_list(self, items: Any, path: NodePath, name: str, required: bool = False) -> list[Task]:
        if items is None:
            if required:
                self.problem(self.loc.at(path), f"`{name}` needs at least one task")
            return []
        if isinstance(items, dict) and ("id" in items or "type" in items):
            self.problem(self.loc.at(path),
                         f"`{name}` expects a list of tasks; start the task with `- ` to make it a list item")
            return []
        if not isinstance(items, list):
            self.problem(self.loc.at(path), f"`{name}` expects a list of tasks, found {_what(items)}")
            return []
        if required and not items:
            self.problem(self.loc.at(path), f"`{name}` needs at least one task")
        tasks = []
        for i, item in enumerate(items):
            task = self.task(item, (*path, i))
            if task is not None:
                tasks.append(task)
        return tasks

    def task(self, node: Any, path: NodePath) -> Task | None:
        if not isinstance(node, dict):
            self.problem(self.loc.at(path),
                         f"expected a task (a mapping with `id` and `type`), found {_what(node)}")
            return None
        task_id = _as_id(node.get("id"))
        id_ok = False
        if "id" not in node:
            self.problem(self.loc.at(path), "task is missing `id`; add `id: <unique_task_name>`")
        elif not isinstance(task_id, str) or not ID_RE.match(task_id):
            self.problem(self.loc.at((*path, "id")),
                         f"invalid task id {_what(task_id)}: use letters, digits, `_` and `-`, "
                         "starting with a letter or digit")
        else:
            id_ok = True
            here = self.loc.at((*path, "id"))
            first = self.task_ids.get(task_id)
            if first is not None:
                self.problem(here, f"duplicate task id `{task_id}` (also used at {first}); "
                                   "task ids must be unique in the flow, rename one of them")
            else:
                self.task_ids[task_id] = here
        label = f"task `{task_id}`" if id_ok else "task"

        type_name = node.get("type")
        ttype: TaskType | None = None
        if "type" not in node:
            self.problem(self.loc.at(path),
                         f"{label} is missing `type`; add e.g. `type: io.kestra.plugin.core.log.Log`")
        elif not isinstance(type_name, str):
            self.problem(self.loc.at((*path, "type")),
                         f"`type` expects a task type name such as `{PAUSE}`, found {_what(type_name)}")
        else:
            ttype = resolve_type(type_name)
            if ttype is None:
                hint = suggest_type(type_name)
                msg = f"unknown task type `{type_name}`"
                msg += f", did you mean `{hint}`?" if hint else "; see the supported types in the documentation"
                self.problem(self.loc.at((*path, "type")), msg)
        if ttype is None:
            return None

        schema = ttype.all_props()
        props: dict[str, Any] = {}
        blocks: dict[str, list[Task]] = {}
        form: list = []
        prop_locations: dict[str, Location] = {}
        for key, value in node.items():
            ppath = (*path, key)
            prop_locations[key] = self.loc.at(ppath)
            prop = schema.get(key)
            if prop is None:
                hint = suggest(key, schema)
                msg = f"unknown property `{key}` for {ttype.short_name} ({ttype.name})"
                msg += (f", did you mean `{hint}`?" if hint
                        else f"; allowed: {', '.join(p for p in schema if p not in ('id', 'type'))}")
                self.problem(self.loc.key_at(ppath), msg)
                continue
            if key in ("id", "type"):
                props[key] = task_id if key == "id" else value
                continue
            if prop.kind == "tasks":
                blocks[key] = self.task_list(value, ppath, key, prop.required)
            elif prop.kind == "task":
                if value is None:
                    continue
                if isinstance(value, list):
                    self.problem(self.loc.at(ppath),
                                 f"`{key}` expects a single task (a mapping with `id` and `type`), found a list")
                    continue
                child = self.task(value, ppath)
                blocks[key] = [child] if child is not None else []
            elif prop.kind == "cases":
                if value is None:
                    continue
                if not isinstance(value, dict):
                    self.problem(self.loc.at(ppath), f"`{key}` expects {prop.describe()}, found {_what(value)}")
                    continue
                for case, children in value.items():
                    blocks[f"cases.{case}"] = self.task_list(children, (*ppath, case), f"cases.{case}", True)
            elif prop.kind == "inputs":
                if value is None:
                    continue
                if self.check_value(prop, value, ppath, key):
                    form = self._inputs(value, ppath)
            else:
                self.check_value(prop, value, ppath, key)
                props[key] = value

        missing = [n for n, p in schema.items() if p.required and n not in node and n not in ("id", "type")]
        for name in missing:
            self.problem(self.loc.key_at((*path, "id")) if id_ok else self.loc.at(path),
                         f"{label} ({ttype.short_name}) is missing required property `{name}`")
        if ttype.name == PAUSE and "delay" in props:
            if "pauseDuration" in props:
                self.problem(self.loc.key_at((*path, "delay")),
                             "`delay` is the deprecated name of `pauseDuration`; keep only `pauseDuration`")
            else:
                props["pauseDuration"] = props["delay"]

        return Task(
            id=task_id if isinstance(task_id, str) else "",
            type=ttype.name,
            props=props,
            blocks=blocks,
            form=form,
            location=self.loc.key_at((*path, "id")) if "id" in node else self.loc.at(path),
            prop_locations=prop_locations,
        )

    # -- expressions -------------------------------------------------------------------------
    def check_expressions(self, value: Any, path: NodePath) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                self.check_expressions(v, (*path, k))
        elif isinstance(value, list):
            for i, v in enumerate(value):
                self.check_expressions(v, (*path, i))
        elif isinstance(value, str) and is_template(value):
            try:
                parse_template(value)
            except ExpressionError as err:
                self.problem(self.loc.string_at(path, err.position), f"invalid expression: {err.reason}")

    # -- the flow ------------------------------------------------------------------------------
    def flow(self, text: str) -> Flow | None:
        data = self.data
        root = self.loc.at(())
        for key in data:
            if key not in FLOW_KEYS and key not in KESTRA_FLOW_KEYS:
                hint = suggest(key, FLOW_KEYS + KESTRA_FLOW_KEYS)
                msg = f"unknown top-level key `{key}`"
                msg += f", did you mean `{hint}`?" if hint else f"; a flow has {', '.join(FLOW_KEYS)}"
                self.problem(self.loc.key_at((key,)), msg)

        flow_id = _as_id(data.get("id"))
        if "id" not in data:
            self.problem(root, "the flow is missing `id`; add `id: <flow_name>`")
        elif not isinstance(flow_id, str) or not ID_RE.match(flow_id):
            self.problem(self.loc.at(("id",)), f"invalid flow id {_what(flow_id)}: use letters, digits, "
                                               "`_` and `-`, starting with a letter or digit")
        namespace = data.get("namespace")
        if "namespace" not in data:
            self.problem(root, "the flow is missing `namespace`; add e.g. `namespace: company.team`")
        elif not isinstance(namespace, str) or not NAMESPACE_RE.match(namespace):
            self.problem(self.loc.at(("namespace",)),
                         f"invalid namespace {_what(namespace)}: write dot-separated names of letters, "
                         "digits, `_` and `-`, e.g. `company.team`")

        description = data.get("description")
        if description is not None and not isinstance(description, (str, int, float)):
            self.problem(self.loc.at(("description",)), f"`description` expects a string, found {_what(description)}")
            description = None
        labels = self._labels(data.get("labels"))
        variables = data.get("variables")
        if variables is None:
            variables = {}
        elif not isinstance(variables, dict):
            self.problem(self.loc.at(("variables",)), f"`variables` expects a mapping, found {_what(variables)}")
            variables = {}

        inputs: list = []
        raw_inputs = data.get("inputs")
        if raw_inputs is not None:
            if isinstance(raw_inputs, list):
                inputs = self._inputs(raw_inputs, ("inputs",))
            else:
                self.problem(self.loc.at(("inputs",)), f"`inputs` expects a list of inputs, found {_what(raw_inputs)}")

        if "tasks" not in data:
            self.problem(root, "the flow has no `tasks`; add `tasks:` with at least one task")
            tasks: list[Task] = []
        else:
            tasks = self.task_list(data.get("tasks"), ("tasks",), "tasks", required=True)
        errors = self.task_list(data.get("errors"), ("errors",), "errors")

        self.check_expressions(data, ())

        if self.problems:
            return None
        return Flow(
            id=flow_id, namespace=namespace,
            description=None if description is None else str(description),
            labels=labels, variables=variables, inputs=inputs, tasks=tasks, errors=errors,
            source=text, path=self.file, sha256=hashlib.sha256(text.encode()).hexdigest(),
        )

    def _labels(self, raw: Any) -> dict[str, Any]:
        if raw is None:
            return {}
        if isinstance(raw, dict):
            for k, v in raw.items():
                if isinstance(v, (dict, list)):
                    self.problem(self.loc.at(("labels", k)), f"label `{k}` expects a string, found {_what(v)}")
            return dict(raw)
        if isinstance(raw, list):
            labels: dict[str, Any] = {}
            for i, item in enumerate(raw):
                if (not isinstance(item, dict) or set(item) != {"key", "value"}
                        or not isinstance(item["key"], str)):
                    self.problem(self.loc.at(("labels", i)),
                                 "a label in a list must be a mapping `{key: <name>, value: <text>}`")
                    continue
                labels[item["key"]] = item["value"]
            return labels
        self.problem(self.loc.at(("labels",)),
                     f"`labels` expects a mapping (or a list of `key`/`value` pairs), found {_what(raw)}")
        return {}


def _finish(problems: list[Problem]) -> list[Problem]:
    unique = list(dict.fromkeys(problems))
    return sorted(unique, key=lambda p: (p.location.file, p.location.line, p.location.col))


def load_flow_text(text: str, path: str) -> Flow:
    """Load the flow in ``text`` (the content of ``path``); raises FlowLoadError with all problems."""
    path = str(path)
    data, locator = parse_yaml(text, path)
    builder = _FlowBuilder(data, locator, path)
    flow = builder.flow(text)
    if flow is None:
        raise FlowLoadError(_finish(builder.problems))
    return flow


def load_flow_file(path: str | Path) -> Flow:
    """Read and load one flow file."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise FlowLoadError([Problem(Location(name, 1, 1), f"the file is not UTF-8 text: {err.reason}")]) from None
    except OSError as err:
        raise FlowLoadError([Problem(Location(name, 1, 1), f"cannot read the file: {err.strerror or err}")]) from None
    return load_flow_text(text, name)


@dataclass
class FlowSet:
    """The flows loaded from some directories; files that failed contribute problems."""

    flows: dict[tuple[str, str], Flow] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)


def load_flow_dirs(dirs: list[Path]) -> FlowSet:
    """Load every ``*.yml`` / ``*.yaml`` file directly in each of ``dirs`` (sorted by name).

    Directories that do not exist are skipped. Two files defining the same namespace + id are
    a problem at the second one, naming the first; the first one is kept.
    """
    result = FlowSet()
    for directory in dirs:
        directory = Path(directory)
        if not directory.is_dir():
            continue
        files = sorted(p for p in directory.iterdir()
                       if p.is_file() and p.suffix in (".yml", ".yaml"))
        for file in files:
            try:
                flow = load_flow_file(file)
            except FlowLoadError as err:
                result.problems.extend(err.problems)
                continue
            first = result.flows.get(flow.key)
            if first is not None:
                id_loc = _id_location(flow)
                result.problems.append(Problem(
                    id_loc,
                    f"flow `{flow.namespace}.{flow.id}` is already defined in {first.path}; "
                    "each namespace + id must be unique, change the `id` or `namespace` of one of them"))
                continue
            result.flows[flow.key] = flow
    return result


def _id_location(flow: Flow) -> Location:
    try:
        _, locator = parse_yaml(flow.source, flow.path)
        return locator.at(("id",))
    except FlowLoadError:  # pragma: no cover - it loaded once already
        return Location(flow.path, 1, 1)


__all__ = ["FlowSet", "load_flow_dirs", "load_flow_file", "load_flow_text"]
