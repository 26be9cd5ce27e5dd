"""Reading and validating a policy file into a :class:`engine.policy.FilePolicy`.

Every problem is collected (never only the first) and reported as ``file:line:col: message``
through :class:`FlowLoadError`, like flow files; positions come from
:func:`engine.flows.yaml_source.parse_yaml`. The format and its rules are described in
:mod:`engine.policy`. Decisions taken here:

* a missing or empty ``bindings`` is an error (nobody could do anything);
* ``fourEyes`` defaults to true; only YAML ``true``/``false`` are booleans;
* a group's value may be a list or empty (an empty group); a member is an account name,
  ``user:NAME`` or ``unix:GROUP``; ``group:x`` members are refused (groups do not nest);
* ``subjects`` and ``namespaces`` may be one string instead of a list, never an empty list;
* problems are sorted by position.
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from signoff.engine.errors import FlowLoadError, Problem
from signoff.engine.flows.task_types import suggest
from signoff.engine.flows.yaml_source import describe_value as _what
from signoff.engine.policy import (
    BINDING_KEYS,
    ROLES,
    SIGNATURE_MODES,
    SUBJECT_KINDS,
    TOP_KEYS,
    Binding,
    FilePolicy,
)

if TYPE_CHECKING:
    from signoff.engine.flows.yaml_source import YamlLocator

_NAME = r"[a-zA-Z0-9][a-zA-Z0-9_-]*"
#: ``*``, ``a.b`` or ``a.b.*`` (namespace segments as in flow files)
NAMESPACE_PATTERN_RE = re.compile(rf"^(?:\*|{_NAME}(?:\.{_NAME})*(?:\.\*)?)$")
_GROUP_NAME_RE = re.compile(r"^[^\s:]+$")


_WHOLE_FILE = {  # parse_yaml speaks of flows; say "policy" for these whole-file problems
    "the file is empty": "the policy file is empty; it needs at least `bindings` (see the README, \"Policy file\")",
    "a flow file must hold exactly one YAML document":
        "a policy file must hold exactly one YAML document; remove this second document",
}


def _parse_yaml(text: str, file: str) -> tuple[dict[str, Any], YamlLocator]:
    from signoff.engine.flows.yaml_source import parse_yaml

    try:
        return parse_yaml(text, file)
    except FlowLoadError as err:
        problems = []
        for p in err.problems:
            message = p.message
            for prefix, replacement in _WHOLE_FILE.items():
                if message.startswith(prefix):
                    message = replacement
            if message.startswith("a flow file must be a mapping"):
                message = ("a policy file must be a mapping (`fourEyes`, `groups`, `bindings`), found "
                           + message.rsplit("found ", 1)[-1])
            problems.append(Problem(p.location, message))
        raise FlowLoadError(problems) from None


class _PolicyChecker:
    def __init__(self, text: str, file: str) -> None:
        self.file = file
        self.data, self.loc = _parse_yaml(text, file)
        self.problems: list[Problem] = []

    def problem(self, path: tuple[Any, ...], message: str, *, key: bool = False) -> None:
        self.problems.append(Problem((self.loc.key_at if key else self.loc.at)(path), message))

    def policy(self) -> FilePolicy:
        data = self.data
        for key in data:
            if key not in TOP_KEYS:
                hint = suggest(key, TOP_KEYS)
                self.problem((key,), f"unknown top-level key `{key}`" + (
                    f", did you mean `{hint}`?" if hint else f"; a policy file has {', '.join(TOP_KEYS)}"), key=True)
        four_eyes = data.get("fourEyes", True)
        if not isinstance(four_eyes, bool):
            self.problem(("fourEyes",), f"`fourEyes` must be `true` or `false`, found {_what(four_eyes)}")
        signatures = self.signatures(data, ("signatures",)) or "optional"
        groups = self.groups(data.get("groups"))
        bindings = self.bindings(data.get("bindings"), groups)
        if self.problems:
            raise FlowLoadError(sorted(self.problems, key=lambda p: (p.location.line, p.location.col)))
        return FilePolicy(four_eyes=bool(four_eyes), groups=groups, bindings=bindings, path=self.file,
                          signatures=signatures)

    def signatures(self, item: dict[str, Any], path: tuple[Any, ...]) -> str | None:
        """A `signatures:` value (required | optional | off), or None when absent or wrong."""
        if "signatures" not in item:
            return None
        value = item["signatures"]
        if value not in SIGNATURE_MODES:
            self.problem(path, f"`signatures` must be one of {', '.join(SIGNATURE_MODES)}, found {_what(value)}")
            return None
        return str(value)

    def groups(self, raw: Any) -> dict[str, list[str]]:
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            self.problem(("groups",), "`groups` must be a mapping of group name to members "
                                      f"(e.g. `finance: [alice, unix:wheel]`), found {_what(raw)}")
            return {}
        groups: dict[str, list[str]] = {}
        for name, members in raw.items():
            path = ("groups", name)
            if not _GROUP_NAME_RE.match(name):
                self.problem(path, f"invalid group name `{name}`: a group name cannot be empty or contain `:` "
                                   "or spaces", key=True)
            if members is None:
                members = []
            if not isinstance(members, list):
                self.problem(path, f"group `{name}` must be a list of members (e.g. `[alice, unix:wheel]`), "
                                   f"found {_what(members)}")
                members = []
            groups[name] = [m for i, m in enumerate(members) if self.member(name, m, (*path, i))]
        return groups

    def member(self, group: str, member: Any, path: tuple[Any, ...]) -> bool:
        if not isinstance(member, str):
            self.problem(path, f"a member of group `{group}` must be an account name or `unix:GROUP`, "
                               f"found {_what(member)}")
            return False
        kind, colon, name = member.partition(":")
        if not colon:
            if not member.strip():
                self.problem(path, f"a member of group `{group}` is empty")
                return False
            return True
        if kind == "group":
            self.problem(path, f"groups do not nest: list the members of `{name}` in group `{group}`, "
                               "or use `unix:GROUP` for an OS group")
        elif kind not in ("user", "unix"):
            self.problem(path, f"invalid member `{member}` of group `{group}`: write an account name or "
                               "`unix:GROUP`")
        elif not name.strip():
            self.problem(path, f"`{member}` in group `{group}` needs a name after `{kind}:`"
                               + (", e.g. `unix:wheel`" if kind == "unix" else ""))
        else:
            return True
        return False

    def bindings(self, raw: Any, groups: dict[str, list[str]]) -> list[Binding]:
        example = "`bindings: [{role: admin, subjects: [user:NAME], namespaces: [\"*\"]}]`"
        if raw is None or raw == []:
            path = ("bindings",) if "bindings" in self.data else ()
            self.problem(path, f"the policy has no `bindings`, so nobody could do anything; add e.g. {example}")
            return []
        if not isinstance(raw, list):
            self.problem(("bindings",), f"`bindings` must be a list (`- role: ...`), found {_what(raw)}")
            return []
        out = []
        for i, item in enumerate(raw):
            binding = self.binding(item, ("bindings", i), groups)
            if binding is not None:
                out.append(binding)
        return out

    def binding(self, item: Any, path: tuple[Any, ...], groups: dict[str, list[str]]) -> Binding | None:
        if not isinstance(item, dict):
            self.problem(path, f"a binding must be a mapping with `role`, `subjects` and `namespaces`, "
                               f"found {_what(item)}")
            return None
        ok = True
        for key in item:
            if key not in BINDING_KEYS:
                hint = suggest(key, BINDING_KEYS)
                self.problem((*path, key), f"unknown key `{key}` in binding" + (
                    f", did you mean `{hint}`?" if hint else f"; a binding has {', '.join(BINDING_KEYS)}"), key=True)
                ok = False
        missing = {"role": f"add one of {', '.join(ROLES)}",
                   "subjects": "add e.g. `subjects: [user:alice, group:finance]`",
                   "namespaces": "add e.g. `namespaces: [company.team, company.team.*]` or `[\"*\"]`"}
        for key, advice in missing.items():
            if key not in item:
                self.problem(path, f"the binding is missing `{key}`; {advice}")
                ok = False
        role = item.get("role")
        if "role" in item and role not in ROLES:
            hint = suggest(role, ROLES) if isinstance(role, str) else None
            self.problem((*path, "role"), f"unknown role {_what(role)}" + (f" (did you mean `{hint}`?)" if hint else "")
                         + f"; valid roles: {', '.join(ROLES)}")
            ok = False
        subjects = self.strings(item, path, "subjects", "[user:alice, group:finance]")
        for sub_path, subject in subjects:
            ok = self.subject(subject, sub_path, groups) and ok
        patterns = self.strings(item, path, "namespaces", "[company.team, company.team.*]")
        for ns_path, pattern in patterns:
            if not isinstance(pattern, str) or not NAMESPACE_PATTERN_RE.match(pattern):
                self.problem(ns_path, f"invalid namespace pattern {_what(pattern)}: write `*`, a namespace like "
                                      "`company.team`, or `company.team.*` for everything below it")
                ok = False
        if not ok or not isinstance(role, str) or not subjects or not patterns:
            return None
        signatures = self.signatures(item, (*path, "signatures"))
        if "signatures" in item and signatures is None:
            return None
        return Binding(role, tuple(s for _, s in subjects), tuple(p for _, p in patterns), self.loc.at(path),
                       signatures)

    def strings(self, item: dict[str, Any], path: tuple[Any, ...], key: str,
                example: str) -> list[tuple[tuple[Any, ...], Any]]:
        """The entries of a list-or-single-string binding field, each with its path."""
        value = item.get(key)
        if key not in item:
            return []
        if isinstance(value, str):
            return [((*path, key), value)]
        if not isinstance(value, list) or not value:
            self.problem((*path, key), f"`{key}` must be a non-empty list like `{example}`, found {_what(value)}")
            return []
        return [((*path, key, i), v) for i, v in enumerate(value)]

    def subject(self, subject: Any, path: tuple[Any, ...], groups: dict[str, list[str]]) -> bool:
        if not isinstance(subject, str):
            self.problem(path, f"invalid subject {_what(subject)}: write `user:NAME`, `group:NAME` or `unix:GROUP`")
            return False
        kind, colon, name = subject.partition(":")
        if not colon:
            self.problem(path, f"invalid subject `{subject}`: write `user:{subject}` for an account, "
                               f"`group:{subject}` for a policy group or `unix:{subject}` for an OS group")
        elif kind not in SUBJECT_KINDS:
            self.problem(path, f"invalid subject `{subject}`: write `user:NAME`, `group:NAME` or `unix:GROUP`")
        elif not name.strip():
            self.problem(path, f"invalid subject `{subject}`: the name after `{kind}:` is empty")
        elif kind == "group" and name not in groups and name not in self.declared_groups():
            hint = suggest(name, self.declared_groups())
            known = ", ".join(sorted(self.declared_groups()))
            self.problem(path, f"`{subject}` names no group defined under `groups`" + (
                f", did you mean `group:{hint}`?" if hint else
                (f"; defined groups: {known}" if known else "; define it under `groups`")))
        else:
            return True
        return False

    def declared_groups(self) -> list[str]:
        raw = self.data.get("groups")
        return list(raw) if isinstance(raw, dict) else []


def parse_policy(text: str, file: str) -> FilePolicy:
    """Validate the text of a policy file (named ``file`` in messages)."""
    return _PolicyChecker(text, file).policy()
