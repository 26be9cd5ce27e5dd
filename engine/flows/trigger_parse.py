"""Checking a flow's ``triggers`` at load time (Kestra's Schedule, Webhook and Flow triggers).

Every problem is reported with its location and what to write instead; keys signoff does not
implement (``stopAfter``, ``backfill``, conditions on a Schedule ...) are refused by name
rather than loaded and ignored.
"""
from __future__ import annotations

import re
from typing import Any

from signoff.engine.errors import Location, Problem
from signoff.engine.flows.model import Trigger
from signoff.engine.flows.task_types import suggest
from signoff.engine.flows.yaml_source import YamlLocator
from signoff.engine.flows.yaml_source import describe_value as _what

SCHEDULE = "io.kestra.plugin.core.trigger.Schedule"
WEBHOOK = "io.kestra.plugin.core.trigger.Webhook"
FLOW = "io.kestra.plugin.core.trigger.Flow"
#: accepted spellings (Kestra's current and legacy full names) -> canonical name
TRIGGER_TYPES = {
    SCHEDULE: SCHEDULE, "io.kestra.core.models.triggers.types.Schedule": SCHEDULE,
    WEBHOOK: WEBHOOK, "io.kestra.core.models.triggers.types.Webhook": WEBHOOK,
    FLOW: FLOW, "io.kestra.core.models.triggers.types.Flow": FLOW,
}
COMMON_KEYS = ("id", "type", "description", "disabled", "inputs")
KEYS = {
    SCHEDULE: (*COMMON_KEYS, "cron", "timezone", "recoverMissedSchedules"),
    WEBHOOK: (*COMMON_KEYS, "key"),
    FLOW: (*COMMON_KEYS, "conditions"),
}
RECOVER = ("ALL", "LAST", "NONE")

EXECUTION_STATUS = "io.kestra.plugin.core.condition.ExecutionStatus"
EXECUTION_FLOW = "io.kestra.plugin.core.condition.ExecutionFlow"
EXECUTION_NAMESPACE = "io.kestra.plugin.core.condition.ExecutionNamespace"
CONDITION_TYPES = {
    EXECUTION_STATUS: EXECUTION_STATUS, "io.kestra.core.models.conditions.types.ExecutionStatusCondition":
        EXECUTION_STATUS, "io.kestra.plugin.core.condition.ExecutionStatusCondition": EXECUTION_STATUS,
    EXECUTION_FLOW: EXECUTION_FLOW, "io.kestra.core.models.conditions.types.ExecutionFlowCondition": EXECUTION_FLOW,
    "io.kestra.plugin.core.condition.ExecutionFlowCondition": EXECUTION_FLOW,
    EXECUTION_NAMESPACE: EXECUTION_NAMESPACE,
    "io.kestra.core.models.conditions.types.ExecutionNamespaceCondition": EXECUTION_NAMESPACE,
    "io.kestra.plugin.core.condition.ExecutionNamespaceCondition": EXECUTION_NAMESPACE,
}
CONDITION_KEYS = {
    EXECUTION_STATUS: ("type", "in", "notIn"),
    EXECUTION_FLOW: ("type", "namespace", "flowId"),
    EXECUTION_NAMESPACE: ("type", "namespace", "comparison", "prefix"),
}
STATES = ("CREATED", "RUNNING", "PAUSED", "RESTARTED", "SUCCESS", "WARNING", "FAILED", "KILLED", "CANCELLED")
COMPARISONS = ("EQUALS", "PREFIX", "SUFFIX")
ID_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_-]*$")


def cron_fields(expression: str) -> int:
    return len(expression.split())


def cron_is_valid(expression: str) -> bool:
    """5 fields (minute first), 6 fields (seconds first, as Kestra), or a nickname (@daily...)."""
    from croniter import croniter

    fields = cron_fields(expression)
    if not expression.startswith("@") and fields not in (5, 6):
        return False
    return bool(croniter.is_valid(expression, second_at_beginning=fields == 6))


def timezone_is_valid(name: str) -> bool:
    import zoneinfo

    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


class TriggerChecker:
    def __init__(self, locator: YamlLocator, problems: list[Problem], own: tuple[str, str] | None = None) -> None:
        self.loc = locator
        self.problems = problems
        #: (namespace, id) of the flow being loaded: a Flow trigger never fires for its own
        #: executions (engine.triggers.flow_trigger), so a condition naming it is refused
        self.own = own

    def problem(self, location: Location, message: str) -> None:
        self.problems.append(Problem(location, message))

    def triggers(self, raw: Any) -> list[Trigger]:
        if raw is None:
            return []
        if not isinstance(raw, list):
            self.problem(self.loc.at(("triggers",)), f"`triggers` expects a list of triggers, found {_what(raw)}")
            return []
        out: list[Trigger] = []
        seen: dict[str, Location] = {}
        for i, node in enumerate(raw):
            trigger = self.trigger(node, ("triggers", i))
            if trigger is None:
                continue
            if trigger.id in seen:
                self.problem(self.loc.at(("triggers", i, "id")), f"duplicate trigger id `{trigger.id}` (also at "
                                                                 f"{seen[trigger.id]}); rename one of them")
                continue
            seen[trigger.id] = self.loc.at(("triggers", i, "id"))
            out.append(trigger)
        return out

    def trigger(self, node: Any, path: tuple[Any, ...]) -> Trigger | None:
        if not isinstance(node, dict):
            self.problem(self.loc.at(path), f"expected a trigger (a mapping with `id` and `type`), found {_what(node)}")
            return None
        ok = True
        trigger_id = node.get("id")
        if "id" not in node:
            self.problem(self.loc.at(path), "trigger is missing `id`; add `id: <trigger_name>`")
            ok = False
        elif not isinstance(trigger_id, str) or not ID_RE.match(trigger_id):
            self.problem(self.loc.at((*path, "id")), f"invalid trigger id {_what(trigger_id)}: use letters, digits, "
                                                     "`_` and `-`")
            ok = False
        type_name = node.get("type")
        canonical = TRIGGER_TYPES.get(type_name) if isinstance(type_name, str) else None
        if canonical is None:
            where = self.loc.at((*path, "type")) if "type" in node else self.loc.at(path)
            hint = suggest(str(type_name), list(TRIGGER_TYPES)) if isinstance(type_name, str) else None
            found = _what(type_name) if type_name is not None else "(none)"
            self.problem(where, f"unknown trigger type {found}; write {SCHEDULE}, {WEBHOOK} or {FLOW}"
                         + (f" (did you mean `{hint}`?)" if hint else ""))
            return None
        allowed = KEYS[canonical]
        for key in node:
            if key not in allowed:
                hint = suggest(str(key), allowed)
                msg = f"`{key}` is not supported on a {canonical.rsplit('.', 1)[-1]} trigger"
                msg += f", did you mean `{hint}`?" if hint else f"; allowed: {', '.join(allowed[2:])}"
                self.problem(self.loc.key_at((*path, key)), msg)
                ok = False
        if "disabled" in node and not isinstance(node["disabled"], bool):
            self.problem(self.loc.at((*path, "disabled")), "`disabled` expects true or false")
            ok = False
        if "inputs" in node and not isinstance(node["inputs"], dict):
            self.problem(self.loc.at((*path, "inputs")), f"`inputs` expects a mapping of input ids to values, "
                                                         f"found {_what(node['inputs'])}")
            ok = False
        check = {SCHEDULE: self.schedule, WEBHOOK: self.webhook, FLOW: self.flow_trigger}[canonical]
        ok = check(node, path) and ok
        if not ok:
            return None
        return Trigger(id=str(trigger_id), type=canonical, props=dict(node), location=self.loc.at(path))

    def schedule(self, node: dict[str, Any], path: tuple[Any, ...]) -> bool:
        ok = True
        cron = node.get("cron")
        if "cron" not in node:
            self.problem(self.loc.at(path), "a Schedule trigger needs `cron`, e.g. `cron: \"0 9 * * 1-5\"`")
            ok = False
        elif not isinstance(cron, str) or not cron_is_valid(cron.strip()):
            self.problem(self.loc.at((*path, "cron")),
                         f"invalid cron expression {_what(cron)}: write 5 fields (minute hour day month weekday), "
                         "6 with seconds first, or @hourly/@daily/@weekly/@monthly/@yearly")
            ok = False
        zone = node.get("timezone")
        if zone is not None and (not isinstance(zone, str) or not timezone_is_valid(zone)):
            self.problem(self.loc.at((*path, "timezone")),
                         f"unknown time zone {_what(zone)}: write an IANA name such as `Europe/Paris` or `UTC`")
            ok = False
        recover = node.get("recoverMissedSchedules")
        if recover is not None and recover not in RECOVER:
            self.problem(self.loc.at((*path, "recoverMissedSchedules")),
                         f"`recoverMissedSchedules` must be one of {', '.join(RECOVER)}; found {_what(recover)}")
            ok = False
        return ok

    def webhook(self, node: dict[str, Any], path: tuple[Any, ...]) -> bool:
        key = node.get("key")
        if "key" not in node:
            self.problem(self.loc.at(path), "a Webhook trigger needs `key`: a secret of at least 8 characters that "
                                            "callers put in the URL")
            return False
        if not isinstance(key, str) or len(key) < 8 or "/" in key:
            self.problem(self.loc.at((*path, "key")), "`key` must be text of at least 8 characters without `/` "
                                                      "(it is the webhook's only secret)")
            return False
        return True

    def flow_trigger(self, node: dict[str, Any], path: tuple[Any, ...]) -> bool:
        conditions = node.get("conditions")
        if conditions is None:
            return True
        if not isinstance(conditions, list):
            self.problem(self.loc.at((*path, "conditions")), f"`conditions` expects a list, found {_what(conditions)}")
            return False
        ok = True
        for i, condition in enumerate(conditions):
            ok = self.condition(condition, (*path, "conditions", i)) and ok
        return ok

    def condition(self, node: Any, path: tuple[Any, ...]) -> bool:
        if not isinstance(node, dict):
            self.problem(self.loc.at(path), f"expected a condition (a mapping with `type`), found {_what(node)}")
            return False
        kind = node.get("type")
        canonical = CONDITION_TYPES.get(kind) if isinstance(kind, str) else None
        if canonical is None:
            self.problem(self.loc.at((*path, "type")) if "type" in node else self.loc.at(path),
                         f"unsupported condition type {_what(node.get('type'))}; write {EXECUTION_STATUS}, "
                         f"{EXECUTION_FLOW} or {EXECUTION_NAMESPACE}")
            return False
        node["type"] = canonical
        ok = True
        for key in node:
            if key not in CONDITION_KEYS[canonical]:
                self.problem(self.loc.key_at((*path, key)), f"`{key}` is not a property of "
                             f"{canonical.rsplit('.', 1)[-1]}; allowed: {', '.join(CONDITION_KEYS[canonical][1:])}")
                ok = False
        if canonical == EXECUTION_STATUS:
            for key in ("in", "notIn"):
                states = node.get(key)
                if states is None:
                    continue
                if not isinstance(states, list) or any(s not in STATES for s in states):
                    self.problem(self.loc.at((*path, key)), f"`{key}` expects a list of states among "
                                                            f"{', '.join(STATES)}")
                    ok = False
            if "in" not in node and "notIn" not in node:
                self.problem(self.loc.at(path), "ExecutionStatus needs `in` or `notIn` (a list of states)")
                ok = False
        elif canonical == EXECUTION_FLOW:
            for key in ("namespace", "flowId"):
                if not isinstance(node.get(key), str) or not node.get(key):
                    self.problem(self.loc.at((*path, key)) if key in node else self.loc.at(path),
                                 f"ExecutionFlow needs `{key}`")
                    ok = False
            if ok and self.own is not None and (node["namespace"], node["flowId"]) == self.own:
                self.problem(self.loc.at((*path, "flowId")),
                             f"this condition names the flow's own executions ({self.own[0]}.{self.own[1]}), but "
                             "a Flow trigger never starts its own flow (as in Kestra: no recursive triggers), so "
                             "it could never fire; name another flow")
                ok = False
        else:
            if not isinstance(node.get("namespace"), str) or not node.get("namespace"):
                self.problem(self.loc.at(path), "ExecutionNamespace needs `namespace`")
                ok = False
            comparison = node.get("comparison")
            if comparison is not None and comparison not in COMPARISONS:
                self.problem(self.loc.at((*path, "comparison")),
                             f"`comparison` must be one of {', '.join(COMPARISONS)}")
                ok = False
            if "prefix" in node and not isinstance(node["prefix"], bool):
                self.problem(self.loc.at((*path, "prefix")), "`prefix` expects true or false")
                ok = False
        return ok
