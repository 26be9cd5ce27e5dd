"""The notifications file (`--notifications FILE`, default notifications.yaml in the config dir).

```yaml
targets:
  - namespaces: [company.finance, company.finance.*]   # exact, prefix.*, or "*"
    events: [created, reminded, escalated, reissued, decided, expired]   # default: all
    slack: "https://hooks.slack.com/services/..."      # Slack-compatible JSON {"text": ...}
  - namespaces: ["*"]
    teams: "https://example.webhook.office.com/..."    # Teams-compatible JSON
  - namespaces: [company.data.*]
    email: {to: [dpo@example.com], from: signoff@example.com, host: smtp.example.com, port: 25}
```
URLs and email settings may use `{{ secret('NAME') }}`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from signoff.engine.errors import FlowLoadError, Problem
from signoff.engine.policy import namespace_matches

EVENTS = ("created", "reminded", "escalated", "reissued", "decided", "expired")
KINDS = ("slack", "teams", "email")
EMAIL_KEYS = ("to", "cc", "from", "host", "port", "username", "password", "transportStrategy")


@dataclass
class Target:
    kind: str
    setting: Any  # URL for slack/teams, a mapping for email
    namespaces: list[str]
    events: list[str] = field(default_factory=lambda: list(EVENTS))

    def matches(self, namespace: str, event: str) -> bool:
        if event not in self.events:
            return False
        return any(namespace_matches(p, namespace) for p in self.namespaces)

    @property
    def label(self) -> str:
        return f"{self.kind}:{self.setting if isinstance(self.setting, str) else self.setting.get('to')}"


@dataclass
class NotificationConfig:
    targets: list[Target] = field(default_factory=list)

    def for_event(self, namespace: str, event: str) -> list[Target]:
        return [t for t in self.targets if t.matches(namespace, event)]


def load_notifications(path: Path) -> NotificationConfig:
    from signoff.engine.flows.yaml_source import parse_yaml

    text = Path(path).read_text(encoding="utf-8")
    data, where = parse_yaml(text, str(path))
    problems: list[Problem] = []
    if not isinstance(data, dict):
        raise FlowLoadError([Problem(where.at(()), "the notifications file must be a mapping with `targets`")])
    for key in data:
        if key != "targets":
            problems.append(Problem(where.key_at((key,)), f"unknown key `{key}`; the file has only `targets`"))
    targets: list[Target] = []
    items = data.get("targets") or []
    if not isinstance(items, list):
        problems.append(Problem(where.at(("targets",)), "`targets` must be a list"))
        items = []
    for i, item in enumerate(items):
        path_ = ("targets", i)
        if not isinstance(item, dict):
            problems.append(Problem(where.at(path_), "each target must be a mapping"))
            continue
        kinds = [k for k in KINDS if k in item]
        for key in item:
            if key not in (*KINDS, "namespaces", "events"):
                problems.append(Problem(where.key_at((*path_, key)), f"unknown key `{key}` in a target; use "
                                        "namespaces, events and one of slack, teams, email"))
        if len(kinds) != 1:
            problems.append(Problem(where.at(path_), "a target needs exactly one of slack, teams or email"))
            continue
        kind = kinds[0]
        setting = item[kind]
        if kind in ("slack", "teams") and not isinstance(setting, str):
            problems.append(Problem(where.at((*path_, kind)), f"`{kind}` must be a webhook URL"))
            continue
        if kind == "email":
            if not isinstance(setting, dict) or "to" not in setting:
                problems.append(Problem(where.at((*path_, kind)), "`email` must be a mapping with at least `to`"))
                continue
            for key in setting:
                if key not in EMAIL_KEYS:
                    problems.append(Problem(where.key_at((*path_, kind, key)),
                                            f"unknown email setting `{key}`; use {', '.join(EMAIL_KEYS)}"))
        namespaces = item.get("namespaces", ["*"])
        if isinstance(namespaces, str):
            namespaces = [namespaces]
        events = item.get("events", list(EVENTS))
        if isinstance(events, str):
            events = [events]
        for e in events:
            if e not in EVENTS:
                problems.append(Problem(where.at((*path_, "events")),
                                        f"unknown event `{e}`; use {', '.join(EVENTS)}"))
        targets.append(Target(kind, setting, [str(n) for n in namespaces], [str(e) for e in events]))
    if problems:
        raise FlowLoadError(problems)
    return NotificationConfig(targets)
