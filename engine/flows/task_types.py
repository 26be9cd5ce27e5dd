"""The task types signoff understands, with their property schemas.

Each :class:`TaskType` has a canonical Kestra full name, the older names Kestra still accepts
(``aliases``), and a schema: property name -> :class:`Prop`. A :class:`Prop` has a *kind*:

======== ===============================================================================
kind     accepted value
======== ===============================================================================
str      a string (may be a template); numbers and booleans are accepted as text
bool     true/false, or a template string
int      an integer (``min`` optional), or a template string
number   an integer or a decimal, or a template string
duration an ISO 8601 duration (``PT1H``), checked with parse_duration unless a template
enum     one of ``values``, or a template string
map      a mapping; with ``fields`` only those keys are allowed, each checked by its Prop
list     a list; with ``item`` every element is checked by that Prop
any      anything
tasks    a list of tasks -> Task.blocks[name]
task     one task (a mapping) -> Task.blocks[name] as a one-element list
cases    Switch cases: mapping value -> list of tasks -> Task.blocks["cases.<value>"]
inputs   input declarations -> Task.form (via engine.inputs.parse.parse_input_specs)
======== ===============================================================================

``also`` lists further kinds the value may take instead (Log ``message`` is a str or a list).
Every type also accepts Kestra's common task properties (:data:`COMMON_PROPS`).
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

LEVELS = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR")


@dataclass(frozen=True)
class Prop:
    kind: str
    required: bool = False
    values: tuple[str, ...] = ()  # enum
    min: int | None = None  # int
    also: tuple[str, ...] = ()  # alternative kinds
    item: Prop | None = None  # list items
    fields: dict[str, Prop] | None = None  # map keys (strict when given)

    def describe(self) -> str:
        """Human words for what the property takes, for 'expected ...' messages."""
        words = [_KIND_WORDS.get(k, k) for k in (self.kind, *self.also)]
        if self.kind == "enum":
            words[0] = "one of " + ", ".join(self.values)
        return " or ".join(words)


_KIND_WORDS = {
    "str": "a string", "bool": "true or false", "int": "an integer", "number": "a number",
    "duration": "an ISO 8601 duration such as PT1H", "map": "a mapping", "list": "a list",
    "any": "any value", "tasks": "a list of tasks", "task": "a task (a mapping with `id` and `type`)",
    "cases": "a mapping of case values to lists of tasks", "inputs": "a list of inputs",
}


@dataclass(frozen=True)
class TaskType:
    name: str
    props: dict[str, Prop]
    aliases: tuple[str, ...] = ()

    @property
    def short_name(self) -> str:
        return self.name.rsplit(".", 1)[-1]

    def all_props(self) -> dict[str, Prop]:
        return {**COMMON_PROPS, **self.props}


COMMON_PROPS: dict[str, Prop] = {
    "id": Prop("str", required=True),
    "type": Prop("str", required=True),
    "description": Prop("str"),
    "disabled": Prop("bool"),
    "timeout": Prop("duration"),
    "retry": Prop("map", fields={
        "type": Prop("enum", required=True, values=("constant", "exponential", "random")),
        "interval": Prop("duration"),
        "maxInterval": Prop("duration"),
        "minInterval": Prop("duration"),
        "delayFactor": Prop("number"),
        "maxAttempts": Prop("int", min=1),
        "maxAttempt": Prop("int", min=1),  # Kestra's older name
        "maxDuration": Prop("duration"),
        "warningOnRetry": Prop("bool"),
        "behavior": Prop("enum", values=("RETRY_FAILED_TASK",)),
    }),
    "allowFailure": Prop("bool"),
    "allowWarning": Prop("bool"),
    "logLevel": Prop("enum", values=LEVELS),
    "runIf": Prop("str"),
}

#: Kestra's task properties signoff does not implement yet: refused with this reason.
NOT_SUPPORTED_TASK_PROPS: dict[str, str] = {
    "workerGroup": "every task runs on the host of the engine that advances the execution",
    "logToFile": "task logs are kept in the database and shown by `executions show`",
}

#: the types that honour the common ``timeout`` (others end at once or hold tasks; refused there)
TIMEOUT_TYPES = frozenset({
    "io.kestra.plugin.core.flow.Pause", "io.kestra.plugin.core.flow.Approval",
    "io.kestra.plugin.core.http.Request", "io.kestra.plugin.notifications.slack.SlackIncomingWebhook",
    "io.kestra.plugin.notifications.teams.TeamsIncomingWebhook", "io.kestra.plugin.notifications.mail.MailSend",
    "io.kestra.plugin.scripts.shell.Commands",
})

_STR_LIST = Prop("list", item=Prop("str"))
_ASSIGNMENT = Prop("map", fields={"users": Prop("list", item=Prop("str"), also=("str",)),
                                  "groups": Prop("list", item=Prop("str"), also=("str",))})

#: signoff's governance extensions, valid on Pause and Approval.
GOVERNANCE_PROPS: dict[str, Prop] = {
    "assignment": _ASSIGNMENT,
    "required": Prop("int", min=1),
    "allowSelfApproval": Prop("bool"),
    "context": Prop("map", fields={"summary": Prop("str"), "details": Prop("str"),
                                   "impact": Prop("str")}),
    # after the escalation's own timeout, expireBehavior applies (default FAIL)
    "escalation": Prop("map", fields={"assignment": _ASSIGNMENT, "timeout": Prop("duration"),
                                      "expireBehavior": Prop("enum", values=("RESUME", "APPROVE", "DENY", "FAIL",
                                                                             "WARN", "CANCEL"))}),
    "maxReissues": Prop("int", min=0),
    "reminders": Prop("list", item=Prop("duration")),
}

PAUSE = "io.kestra.plugin.core.flow.Pause"
APPROVAL = "io.kestra.plugin.core.flow.Approval"
#: types the runner walks itself (they hold tasks or decisions) rather than running a handler
FLOWABLE_TYPES = frozenset({
    PAUSE, APPROVAL, "io.kestra.plugin.core.flow.If", "io.kestra.plugin.core.flow.Switch",
    "io.kestra.plugin.core.flow.Sequential", "io.kestra.plugin.core.flow.Parallel",
    "io.kestra.plugin.core.flow.ForEach", "io.kestra.plugin.core.execution.Resume",
})


def _types() -> list[TaskType]:
    return [
        TaskType("io.kestra.plugin.core.log.Log", {
            "message": Prop("str", required=True, also=("list",)),
            "level": Prop("enum", values=LEVELS),
        }, aliases=("io.kestra.core.tasks.log.Log",)),
        TaskType(PAUSE, {
            "onResume": Prop("inputs"),
            "pauseDuration": Prop("duration"),
            "behavior": Prop("enum", values=("RESUME", "WARN", "FAIL", "CANCEL", "ESCALATE", "REISSUE")),
            "timeout": Prop("duration"),
            "onPause": Prop("task"),
            "errors": Prop("tasks"),
            "delay": Prop("duration"),  # deprecated: the loader maps it to pauseDuration
            "tasks": Prop("tasks"),  # deprecated (write them after the Pause): run on resume
            "when": Prop("str"),
            **GOVERNANCE_PROPS,
        }, aliases=("io.kestra.core.tasks.flows.Pause",)),
        TaskType(APPROVAL, {
            "inputs": Prop("inputs"),
            "decisions": Prop("map", fields={"approve": Prop("str"), "deny": Prop("str")}),
            "commentRequired": Prop("enum", values=("NEVER", "ALWAYS", "ON_DENY", "ON_APPROVE")),
            "autoApprove": Prop("str"),
            "approveBehavior": Prop("enum", values=("CONTINUE",)),
            "denyBehavior": Prop("enum", values=("FAIL", "CONTINUE", "CANCEL", "WARN")),
            "expireBehavior": Prop("enum", values=("APPROVE", "DENY", "FAIL", "WARN", "CANCEL",
                                                   "ESCALATE", "REISSUE")),
            "onWait": Prop("tasks"),
            "onApprove": Prop("tasks"),
            "onDeny": Prop("tasks"),
            "timeout": Prop("duration"),
            "message": Prop("str"),
            "description": Prop("str"),
            **GOVERNANCE_PROPS,
        }),
        TaskType("io.kestra.plugin.core.flow.If", {
            "condition": Prop("str", required=True),
            "then": Prop("tasks", required=True),
            "else": Prop("tasks"),
        }, aliases=("io.kestra.core.tasks.flows.If",)),
        TaskType("io.kestra.plugin.core.flow.Switch", {
            "value": Prop("any", required=True),
            "cases": Prop("cases"),
            "defaults": Prop("tasks"),
        }, aliases=("io.kestra.core.tasks.flows.Switch",)),
        TaskType("io.kestra.plugin.core.flow.Sequential", {
            "tasks": Prop("tasks", required=True),
        }, aliases=("io.kestra.core.tasks.flows.Sequential",)),
        TaskType("io.kestra.plugin.core.flow.Parallel", {
            "tasks": Prop("tasks", required=True),
            "concurrent": Prop("int", min=0),
        }, aliases=("io.kestra.core.tasks.flows.Parallel",)),
        TaskType("io.kestra.plugin.core.flow.ForEach", {
            "values": Prop("list", required=True, also=("str",)),
            "tasks": Prop("tasks", required=True),
            "concurrencyLimit": Prop("int", min=0),
        }),
        TaskType("io.kestra.plugin.core.output.OutputValues", {
            "values": Prop("map", required=True),
        }, aliases=("io.kestra.core.tasks.outputs.OutputValues",)),
        TaskType("io.kestra.plugin.core.execution.Fail", {
            "condition": Prop("str"),
            "errorMessage": Prop("str"),
        }, aliases=("io.kestra.core.tasks.executions.Fail",)),
        TaskType("io.kestra.plugin.core.http.Request", {
            "uri": Prop("str", required=True),
            "method": Prop("enum", values=("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")),
            "headers": Prop("map"),
            "body": Prop("any"),
            "contentType": Prop("str"),
            "formData": Prop("map"),
            "options": Prop("map"),
            "allowFailed": Prop("bool"),
        }, aliases=("io.kestra.plugin.fs.http.Request", "io.kestra.core.tasks.http.Request")),
        TaskType("io.kestra.plugin.notifications.slack.SlackIncomingWebhook", {
            "url": Prop("str", required=True),
            "payload": Prop("str", also=("map",)),  # one of payload / messageText (the loader checks)
            "messageText": Prop("str"),
        }),
        TaskType("io.kestra.plugin.notifications.teams.TeamsIncomingWebhook", {
            "url": Prop("str", required=True),
            "payload": Prop("str", also=("map",)),
            "messageText": Prop("str"),
        }),
        TaskType("io.kestra.plugin.notifications.mail.MailSend", {
            "host": Prop("str"),
            "port": Prop("int", min=1),
            "username": Prop("str"),
            "password": Prop("str"),
            "from": Prop("str"),
            "to": Prop("str", required=True, also=("list",)),
            "cc": Prop("str", also=("list",)),
            "subject": Prop("str"),
            "htmlTextContent": Prop("str"),
            "plainTextContent": Prop("str"),
            "transportStrategy": Prop("enum", values=("SMTP", "SMTPS", "SMTP_TLS")),
            "sessionTimeout": Prop("int", min=1),  # milliseconds, as Kestra
        }),
        TaskType("io.kestra.plugin.scripts.shell.Commands", {
            "commands": Prop("list", required=True, item=Prop("str")),
            "env": Prop("map"),
            "interpreter": _STR_LIST,
            "timeout": Prop("duration"),
            "beforeCommands": _STR_LIST,
            "failFast": Prop("bool"),
            "inputFiles": Prop("map"),
        }),
        TaskType("io.kestra.plugin.core.execution.Resume", {
            "executionId": Prop("str"),
            "namespace": Prop("str"),
            "flowId": Prop("str"),
            "inputs": Prop("map"),
        }),
        TaskType("io.kestra.plugin.core.debug.Return", {
            "format": Prop("str"),
        }, aliases=("io.kestra.core.tasks.debugs.Return",)),
        TaskType("io.kestra.plugin.core.debug.Echo", {
            "format": Prop("str"),
            "level": Prop("enum", values=LEVELS),
        }, aliases=("io.kestra.core.tasks.debugs.Echo",)),
    ]


TASK_TYPES: dict[str, TaskType] = {t.name: t for t in _types()}
ALIASES: dict[str, str] = {a: t.name for t in TASK_TYPES.values() for a in t.aliases}


def resolve_type(name: str) -> TaskType | None:
    """The task type named ``name`` (full name or an accepted alias), else None."""
    if name in TASK_TYPES:
        return TASK_TYPES[name]
    canonical = ALIASES.get(name)
    return TASK_TYPES[canonical] if canonical else None


def canonical_name(name: str) -> str | None:
    t = resolve_type(name)
    return t.name if t else None


def suggest_type(name: str) -> str | None:
    """The full name the user most likely meant by ``name``, or None."""
    if not isinstance(name, str) or not name:
        return None
    short: dict[str, str] = {}
    for full in [*TASK_TYPES, *ALIASES]:
        short.setdefault(full.rsplit(".", 1)[-1].lower(), canonical_name(full) or full)
    last = name.rsplit(".", 1)[-1]
    if last.lower() in short and "." not in name:
        return short[last.lower()]
    candidates = [*TASK_TYPES, *ALIASES]
    match = difflib.get_close_matches(name, candidates, n=1, cutoff=0.75)
    if match:
        return canonical_name(match[0])
    if last.lower() in short:
        return short[last.lower()]
    match = difflib.get_close_matches(last.lower(), list(short), n=1, cutoff=0.75)
    if match:
        return short[match[0]]
    return None


def suggest(name: str, options: Any, cutoff: float = 0.6) -> str | None:
    """The closest of ``options`` to ``name`` (case-insensitive), or None."""
    options = list(options)
    lowered: dict[str, str] = {o.lower(): o for o in options}
    if name.lower() in lowered:
        return lowered[name.lower()]
    match = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=cutoff)
    return lowered[match[0]] if match else None
