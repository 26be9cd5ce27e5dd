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
from signoff.engine.flows.model import Concurrency, Flow, FlowOutput, Task
from signoff.engine.flows.task_types import (
    ALIASES,
    APPROVAL,
    FLOWABLE_TYPES,
    NOT_SUPPORTED_TASK_PROPS,
    PAUSE,
    TASK_TYPES,
    TIMEOUT_TYPES,
    Prop,
    TaskType,
    resolve_type,
    suggest,
    suggest_type,
)
from signoff.engine.flows.yaml_source import YamlLocator, parse_yaml
from signoff.engine.flows.yaml_source import describe_value as _what
from signoff.engine.nul import MESSAGE as NUL_MESSAGE
from signoff.engine.nul import NUL

ID_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_-]*$")
NAMESPACE_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_-]*(\.[a-zA-Z0-9][a-zA-Z0-9_-]*)*$")

FLOW_KEYS = ("id", "namespace", "description", "labels", "variables", "inputs", "tasks", "errors",
             "finally", "afterExecution", "outputs", "concurrency", "pluginDefaults", "taskDefaults", "triggers")
#: Kestra's bookkeeping keys: accepted and left alone (signoff numbers revisions itself).
KESTRA_METADATA_KEYS = ("revision", "disabled", "deleted")
#: Kestra keys signoff does not implement yet: refused, so no flow loads with behaviour dropped.
NOT_SUPPORTED_FLOW_KEYS: dict[str, str] = {
    "sla": "use a Pause/Approval `timeout` with `expireBehavior` for deadlines on decisions",
    "checks": "validate inputs with `validator`, `min`/`max` or a `dependsOn` condition",
    "workerGroup": "every task runs on the host of the engine that advances the execution",
    "retry": "set `retry` on the tasks that should be retried (or on a task type in `pluginDefaults`)",
}
OUTPUT_KEYS = ("id", "type", "value", "description", "displayName", "required")
OUTPUT_ID_RE = re.compile(r"^[a-zA-Z0-9][.a-zA-Z0-9_-]*$")
PLUGIN_DEFAULT_KEYS = ("type", "values", "forced")
RETRY_NEEDS = {"constant": ("interval",), "exponential": ("interval", "maxInterval"),
               "random": ("minInterval", "maxInterval")}

NodePath = tuple[Any, ...]


def _as_id(value: Any) -> Any:
    """Ids written as bare numbers (``id: 42``) are text, as in Kestra."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    return value


@dataclass
class _PluginDefault:
    """One entry of ``pluginDefaults``: values for every task whose type is ``type`` or starts
    with it (Kestra's rule); ``forced`` values win over the task's own."""

    type: str
    values: dict[str, Any]
    forced: bool
    path: NodePath  # where it is written, e.g. ("pluginDefaults", 0)

    def matches(self, written: str, canonical: str) -> bool:
        return any(name == self.type or name.startswith(self.type) for name in (written, canonical))


def merge_values(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """Kestra's MapUtils.merge: ``top`` wins; mappings merge key by key; lists are joined
    (``base`` items first); None never replaces a value."""
    out = dict(base)
    for key, value in top.items():
        old = out.get(key)
        if value is None:
            continue
        if isinstance(value, dict) and isinstance(old, dict):
            out[key] = merge_values(old, value)
        elif isinstance(value, list) and isinstance(old, list):
            out[key] = [*old, *value]
        else:
            out[key] = value
    return out


class _FlowBuilder:
    def __init__(self, data: dict[str, Any], locator: YamlLocator, file: str) -> None:
        self.data = data
        self.loc = locator
        self.file = file
        self.problems: list[Problem] = []
        self.task_ids: dict[str, Location] = {}
        self.defaults: list[_PluginDefault] = []

    # -- helpers -------------------------------------------------------------------------
    def problem(self, location: Location, message: str) -> None:
        self.problems.append(Problem(location, message))

    def _inputs(self, items: Any, path: NodePath) -> list[Any]:
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
        node, origins = self.with_defaults(node, path, str(type_name), ttype)
        props: dict[str, Any] = {}
        blocks: dict[str, list[Task]] = {}
        form: list[Any] = []
        prop_locations: dict[str, Location] = {}
        for key, value in node.items():
            ppath = origins.get(key, (*path, key))
            prop_locations[key] = self.loc.at(ppath)
            prop = schema.get(key)
            if prop is None and key in NOT_SUPPORTED_TASK_PROPS:
                self.problem(self.loc.key_at(ppath), f"`{key}` is not supported yet: signoff would ignore it, "
                                                     f"so remove it ({NOT_SUPPORTED_TASK_PROPS[key]})")
                continue
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
        if ttype.short_name in ("SlackIncomingWebhook", "TeamsIncomingWebhook") and \
                "payload" not in props and "messageText" not in props:
            self.problem(self.loc.key_at((*path, "id")) if id_ok else self.loc.at(path),
                         f"{label} ({ttype.short_name}) needs `payload` (the JSON to post) or `messageText`")
        elif "payload" in props and "messageText" in props:
            self.problem(self.loc.key_at(origins.get("messageText", (*path, "messageText"))),
                         f"{label} has both `payload` and `messageText`; keep one (`messageText` "
                         "posts `{\"text\": ...}`)")
        if "timeout" in props and ttype.name not in TIMEOUT_TYPES:
            self.problem(self.loc.key_at(origins.get("timeout", (*path, "timeout"))),
                         f"`timeout` is not supported on {ttype.short_name} yet: signoff would ignore it, so remove "
                         "it (it applies to Pause, Approval, HTTP, notification, mail and shell tasks)")
        if "retry" in props:
            self.check_retry(props["retry"], origins.get("retry", (*path, "retry")), ttype)
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

    def with_defaults(self, node: dict[str, Any], path: NodePath, written: str,
                      ttype: TaskType) -> tuple[dict[str, Any], dict[str, NodePath]]:
        """``node`` with the matching ``pluginDefaults`` applied as Kestra does (the first
        matching entry wins among several; the task's own values win over non-forced
        defaults; forced ones win over the task), and where each resulting key was written."""
        matching = [d for d in self.defaults if d.matches(written, ttype.name)]
        if not matching:
            return node, {}
        origins: dict[str, NodePath] = {}
        merged: dict[str, Any] = {}
        for default in reversed([d for d in matching if not d.forced]):
            merged = merge_values(merged, default.values)
            origins.update({k: (*default.path, "values", k) for k in default.values})
        merged = merge_values(merged, node)
        origins.update({k: (*path, k) for k in node if node[k] is not None})
        for default in reversed([d for d in matching if d.forced]):
            merged = merge_values(merged, default.values)
            origins.update({k: (*default.path, "values", k) for k in default.values if default.values[k] is not None})
        return merged, origins

    def check_retry(self, retry: Any, path: NodePath, ttype: TaskType) -> None:
        """What the schema cannot say: which task types retry, and each retry type's fields."""
        if ttype.name in FLOWABLE_TYPES:
            self.problem(self.loc.key_at(path),
                         f"`retry` is not supported on {ttype.short_name}: only tasks that do work themselves "
                         "(HTTP, shell, notifications, Log, ...) are retried; put `retry` on those inside it")
            return
        if not isinstance(retry, dict):
            return
        kind = retry.get("type")
        if "type" not in retry:
            self.problem(self.loc.key_at(path), "`retry` needs `type`: constant, exponential or random")
        for name in RETRY_NEEDS.get(kind, ()) if isinstance(kind, str) else ():
            if name not in retry:
                self.problem(self.loc.key_at(path), f"`retry` of type {kind} needs `{name}`")
        if "maxAttempts" in retry and "maxAttempt" in retry:
            self.problem(self.loc.key_at((*path, "maxAttempt")),
                         "`maxAttempt` is the older name of `maxAttempts`; keep only `maxAttempts`")
        if not any(k in retry for k in ("maxAttempts", "maxAttempt", "maxDuration")):
            self.problem(self.loc.key_at(path),
                         "`retry` needs `maxAttempts` or `maxDuration` (or both), so that it ends")

    def plugin_defaults(self) -> None:
        """Read ``pluginDefaults`` (or its older name ``taskDefaults``) into :attr:`defaults`."""
        data = self.data
        key = "pluginDefaults"
        if "taskDefaults" in data:
            if "pluginDefaults" in data:
                self.problem(self.loc.key_at(("taskDefaults",)), "`taskDefaults` is the older name of "
                             "`pluginDefaults`; write all defaults under `pluginDefaults`")
            else:
                key = "taskDefaults"
        raw = data.get(key)
        if raw is None:
            return
        if not isinstance(raw, list):
            self.problem(self.loc.at((key,)), f"`{key}` expects a list of `{{type, values, forced}}` entries, "
                                              f"found {_what(raw)}")
            return
        for i, item in enumerate(raw):
            here: NodePath = (key, i)
            if not isinstance(item, dict):
                self.problem(self.loc.at(here), f"`{key}[{i}]` expects a mapping with `type` and `values`, "
                                                f"found {_what(item)}")
                continue
            ok = True
            for k in item:
                if k not in PLUGIN_DEFAULT_KEYS:
                    hint = suggest(str(k), PLUGIN_DEFAULT_KEYS)
                    self.problem(self.loc.key_at((*here, k)), f"unknown key `{k}` in `{key}[{i}]`"
                                 + (f", did you mean `{hint}`?" if hint else "; allowed keys: type, values, forced"))
                    ok = False
            type_name, values, forced = item.get("type"), item.get("values"), item.get("forced", False)
            if not isinstance(type_name, str) or not type_name:
                self.problem(self.loc.at((*here, "type")) if "type" in item else self.loc.at(here),
                             f"`{key}[{i}]` needs `type`: a task type such as `io.kestra.plugin.core.http.Request`"
                             " or a prefix such as `io.kestra.plugin.notifications`")
                continue
            if not isinstance(values, dict):
                self.problem(self.loc.at((*here, "values")) if "values" in item else self.loc.at(here),
                             f"`{key}[{i}]` needs `values`: a mapping of task properties")
                continue
            if not isinstance(forced, bool):
                self.problem(self.loc.at((*here, "forced")), f"`forced` expects true or false, found {_what(forced)}")
                ok = False
            exact = resolve_type(type_name)
            types = [exact] if exact else [t for name, t in TASK_TYPES.items() if name.startswith(type_name)]
            types += [] if exact else [TASK_TYPES[c] for a, c in ALIASES.items()
                                       if a.startswith(type_name) and TASK_TYPES[c] not in types]
            if not types:
                hint = suggest_type(type_name)
                self.problem(self.loc.at((*here, "type")),
                             f"`{type_name}` is neither a supported task type nor the start of one"
                             + (f", did you mean `{hint}`?" if hint else ""))
                continue
            for prop_name in values:
                vpath = (*here, "values", prop_name)
                if prop_name in ("id", "type"):
                    self.problem(self.loc.key_at(vpath), f"`{prop_name}` cannot have a default; set it on each task")
                    ok = False
                    continue
                known = [t for t in types if prop_name in t.all_props()]
                if not known:
                    schema = types[0].all_props()
                    hint = suggest(str(prop_name), schema if exact else {p for t in types for p in t.all_props()})
                    what = (f"{types[0].short_name} ({types[0].name})" if exact
                            else f"any task type starting with `{type_name}`")
                    self.problem(self.loc.key_at(vpath), f"unknown property `{prop_name}` for {what}"
                                 + (f", did you mean `{hint}`?" if hint else ""))
                    ok = False
                elif known[0].all_props()[prop_name].kind in ("tasks", "task", "cases", "inputs"):
                    self.problem(self.loc.key_at(vpath), f"`{prop_name}` holds tasks or form inputs and cannot "
                                                         "have a default; write it on each task")
                    ok = False
            if ok:
                self.defaults.append(_PluginDefault(type_name, dict(values), forced, here))

    def flow_outputs(self) -> list[FlowOutput]:
        raw = self.data.get("outputs")
        if raw is None:
            return []
        if not isinstance(raw, list):
            self.problem(self.loc.at(("outputs",)), f"`outputs` expects a list of `{{id, type, value}}` entries, "
                                                    f"found {_what(raw)}")
            return []
        from signoff.engine.inputs.spec import INPUT_TYPES

        outputs: list[FlowOutput] = []
        seen: dict[str, Location] = {}
        for i, item in enumerate(raw):
            here: NodePath = ("outputs", i)
            if not isinstance(item, dict):
                self.problem(self.loc.at(here), f"`outputs[{i}]` expects a mapping with `id`, `type` and `value`, "
                                                f"found {_what(item)}")
                continue
            ok = True
            for k in item:
                if k not in OUTPUT_KEYS:
                    hint = suggest(str(k), OUTPUT_KEYS)
                    self.problem(self.loc.key_at((*here, k)), f"unknown key `{k}` in `outputs[{i}]`"
                                 + (f", did you mean `{hint}`?" if hint
                                    else f"; allowed keys: {', '.join(OUTPUT_KEYS)}"))
                    ok = False
            out_id = _as_id(item.get("id"))
            if not isinstance(out_id, str) or not OUTPUT_ID_RE.match(out_id):
                self.problem(self.loc.at((*here, "id")) if "id" in item else self.loc.at(here),
                             f"`outputs[{i}]` needs an `id` of letters, digits, `.`, `_` and `-`"
                             + (f", found {_what(out_id)}" if "id" in item else ""))
                ok = False
            elif out_id in seen:
                self.problem(self.loc.at((*here, "id")), f"duplicate output id `{out_id}` (also at {seen[out_id]})")
                ok = False
            else:
                seen[out_id] = self.loc.at((*here, "id"))
            out_type = item.get("type")
            upper = out_type.upper() if isinstance(out_type, str) else None
            if upper == "ENUM":
                upper = "SELECT"
            if upper not in INPUT_TYPES:
                hint = suggest(str(out_type), INPUT_TYPES) if out_type is not None else None
                self.problem(self.loc.at((*here, "type")) if "type" in item else self.loc.at(here),
                             f"`outputs[{i}]` needs a `type` (one of {', '.join(INPUT_TYPES)})"
                             + (f"; found `{out_type}`" if out_type is not None else "")
                             + (f", did you mean `{hint}`?" if hint and out_type is not None else ""))
                ok = False
            if "value" not in item:
                self.problem(self.loc.at(here), f"`outputs[{i}]` needs a `value` (usually an expression such as "
                                                "\"{{ outputs.task_id.value }}\")")
                ok = False
            required = item.get("required", True)
            if not isinstance(required, bool):
                self.problem(self.loc.at((*here, "required")),
                             f"`required` expects true or false, found {_what(required)}")
                ok = False
            for text_key in ("description", "displayName"):
                if text_key in item and not isinstance(item[text_key], (str, int, float)):
                    self.problem(self.loc.at((*here, text_key)), f"`{text_key}` expects a string")
                    ok = False
            if ok:
                outputs.append(FlowOutput(
                    id=out_id, type=str(upper), value=item["value"],
                    description=None if item.get("description") is None else str(item["description"]),
                    display_name=None if item.get("displayName") is None else str(item["displayName"]),
                    required=required, location=self.loc.at(here)))
        return outputs

    def concurrency(self) -> Concurrency | None:
        raw = self.data.get("concurrency")
        if raw is None:
            return None
        if not isinstance(raw, dict):
            self.problem(self.loc.at(("concurrency",)),
                         "`concurrency` expects a mapping `{limit: N, behavior: QUEUE|CANCEL|FAIL}`, "
                         f"found {_what(raw)}")
            return None
        ok = True
        for k in raw:
            if k not in ("limit", "behavior"):
                hint = suggest(str(k), ("limit", "behavior"))
                self.problem(self.loc.key_at(("concurrency", k)), f"unknown key `{k}` in `concurrency`"
                             + (f", did you mean `{hint}`?" if hint else "; allowed keys: limit, behavior"))
                ok = False
        limit = raw.get("limit")
        if "limit" not in raw:
            self.problem(self.loc.key_at(("concurrency",)), "`concurrency` needs `limit`: how many executions "
                                                            "of this flow may run at once")
            ok = False
        elif isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            self.problem(self.loc.at(("concurrency", "limit")), f"`limit` must be a whole number of at least 1, "
                                                                f"found {_what(limit)}")
            ok = False
        behavior = raw.get("behavior", "QUEUE")
        if behavior not in ("QUEUE", "CANCEL", "FAIL"):
            hint = suggest(str(behavior), ("QUEUE", "CANCEL", "FAIL"))
            self.problem(self.loc.at(("concurrency", "behavior")),
                         f"`behavior` must be one of QUEUE, CANCEL, FAIL; found `{behavior}`"
                         + (f", did you mean `{hint}`?" if hint else ""))
            ok = False
        if not ok or not isinstance(limit, int):  # (limit is an int whenever ok is still True)
            return None
        return Concurrency(limit=limit, behavior=str(behavior))

    def end_block(self, key: str) -> list[Task]:
        """``finally`` / ``afterExecution``: tasks that run at the end; they cannot wait for
        a decision (the end of an execution never pauses)."""
        tasks = self.task_list(self.data.get(key), (key,), key)
        for top in tasks:
            for task in top.walk():
                if task.type in (PAUSE, APPROVAL) and task.location is not None:
                    self.problem(task.location, f"task `{task.id}`: a {task.short_type} cannot be in `{key}`; "
                                                "the end of an execution does not wait for decisions, "
                                                "put it in `tasks`")
        return tasks

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

    # -- NUL -----------------------------------------------------------------------------------
    def check_nul(self, value: Any, path: NodePath) -> None:
        """NUL (U+0000) written as a YAML escape (``"\\0"``, ``"\\x00"``) anywhere in a flow - a
        label, a description, a message, a key - is a problem at its place, as in any text from
        outside (engine.nul): PostgreSQL could not keep it where SQLite would. (A NUL byte in
        the file is a YAML syntax error already.)"""
        stack: list[tuple[Any, NodePath]] = [(value, path)]
        while stack:
            item, where = stack.pop()
            if isinstance(item, str):
                if NUL in item:
                    self.problem(self.loc.at(where), f"`{_dotted(where)}` {NUL_MESSAGE}")
            elif isinstance(item, dict):
                for key, sub in item.items():
                    if isinstance(key, str) and NUL in key:
                        self.problem(self.loc.key_at((*where, key)), f"a key in `{_dotted(where) or 'the flow'}` "
                                                                     f"{NUL_MESSAGE}")
                    else:
                        stack.append((sub, (*where, key)))
            elif isinstance(item, list):
                stack.extend((sub, (*where, i)) for i, sub in enumerate(item))

    # -- the flow ------------------------------------------------------------------------------
    def flow(self, text: str) -> Flow | None:
        data = self.data
        root = self.loc.at(())
        for key in data:
            if key in NOT_SUPPORTED_FLOW_KEYS:
                why = NOT_SUPPORTED_FLOW_KEYS[key]
                self.problem(self.loc.key_at((key,)), f"`{key}` is not supported yet: signoff would ignore it, "
                                                      "so remove it" + (f" ({why})" if why else ""))
            elif key not in FLOW_KEYS and key not in KESTRA_METADATA_KEYS:
                hint = suggest(key, FLOW_KEYS + KESTRA_METADATA_KEYS)
                msg = f"unknown top-level key `{key}`"
                msg += f", did you mean `{hint}`?" if hint else f"; a flow has {', '.join(FLOW_KEYS)}"
                self.problem(self.loc.key_at((key,)), msg)
        self.plugin_defaults()
        disabled = data.get("disabled", False)
        if not isinstance(disabled, bool):
            self.problem(self.loc.at(("disabled",)), f"`disabled` expects true or false, found {_what(disabled)}")
        if data.get("deleted") not in (None, False):
            self.problem(self.loc.key_at(("deleted",)), "`deleted: true` marks a flow removed in Kestra; "
                                                        "delete the file instead (or write `disabled: true`)")

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

        inputs: list[Any] = []
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
        finally_tasks = self.end_block("finally")
        after_execution = self.end_block("afterExecution")
        outputs = self.flow_outputs()
        concurrency = self.concurrency()
        from signoff.engine.flows.trigger_parse import TriggerChecker

        own = (namespace, flow_id) if isinstance(namespace, str) and isinstance(flow_id, str) else None
        triggers = TriggerChecker(self.loc, self.problems, own).triggers(data.get("triggers"))

        self.check_expressions(data, ())
        self.check_nul(data, ())

        if self.problems:
            return None
        assert isinstance(namespace, str)  # anything else was recorded as a problem above
        return Flow(
            id=flow_id, namespace=namespace,
            description=None if description is None else str(description),
            labels=labels, variables=variables, inputs=inputs, tasks=tasks, errors=errors, triggers=triggers,
            source=text, path=self.file, sha256=hashlib.sha256(text.encode()).hexdigest(),
            finally_tasks=finally_tasks, after_execution=after_execution, outputs=outputs,
            concurrency=concurrency, disabled=disabled is True,
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


def _dotted(path: NodePath) -> str:
    return ".".join(str(p) for p in path)


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
