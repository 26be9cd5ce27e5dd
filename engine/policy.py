"""Who may do what. This module is the one place that answers permission questions.

Without a policy file the engine is single-user (:class:`SingleUserPolicy`): the local account
may do everything (ARCHITECTURE.md). With one (``--policy FILE``, default ``policy.yaml`` in the
config directory) every service call is checked against a :class:`FilePolicy`::

    fourEyes: true                 # default true: nobody approves what they started
    groups:
      finance: [alice, bob]        # account names
      ops: [unix:wheel]            # members of an OS group
    bindings:
      - role: approver             # viewer | requester | approver | editor | admin
        subjects: [group:finance, user:carol]
        namespaces: [company.finance, company.finance.*]
        signatures: required       # optional, per binding: see below
    signatures: optional           # required | optional | off (default optional)

Rules (decisions taken for the file format):

* Roles add up: an identity's roles in a namespace are the union of the roles of every
  binding whose subjects include it and whose namespace patterns match the namespace.
* Subjects: ``user:NAME`` (an account name), ``group:NAME`` (a group defined under
  ``groups``; naming an undefined one is an error) or ``unix:GROUP`` (an OS group directly).
* Group members: account names, or ``unix:GROUP`` meaning everyone in that OS group
  (``GROUP in identity.groups``). ``user:NAME`` is accepted as a synonym of ``NAME``. Groups
  do not nest (``group:x`` as a member is an error).
* Namespace patterns: ``*`` (all), an exact namespace ``a.b``, or ``a.b.*`` which matches
  ``a.b.x`` and deeper but NOT ``a.b`` itself - list both to cover a namespace and its
  children (as the example does).
* ``allows(identity, action, "*")``: the special namespace ``"*"`` asks "in every namespace",
  true only when a binding with the pattern ``*`` grants the action.
* ``in_group(identity, g)`` (used by task ``assignment.groups``): true when ``g`` is a policy
  group containing the identity, or when ``g`` (or ``unix:g``) names one of the identity's OS
  groups. A name that is both a policy group and an OS group matches through either.
* ``subjects`` and ``namespaces`` may be a list or a single string.
* ``signatures`` (signed decisions, engine.signing): ``required`` refuses unsigned decisions,
  ``optional`` accepts both, ``off`` means decisions are not signed. The top-level value is
  the default; a binding may set its own for its subjects in its namespaces. When several
  bindings that apply set it, the strictest wins (required > optional > off); a binding's
  value overrides the top-level one (so `off` for one namespace works under a global
  `required`).

The file is read and validated by :func:`load_policy` (parser in
:mod:`engine.governance.policy_file`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

from signoff.engine.errors import Location, UsageError
from signoff.engine.identity import Identity

ROLES = ("viewer", "requester", "approver", "editor", "admin")
#: what each role may do; roles add up
PERMISSIONS = {
    "viewer": {"view"},
    "requester": {"view", "start", "cancel_own"},
    "approver": {"view", "decide"},
    "editor": {"view", "edit"},  # create, change and delete flows through the API
    "admin": {"view", "start", "cancel_own", "cancel_any", "decide", "edit", "admin"},
}
ACTIONS = ("view", "start", "cancel_own", "cancel_any", "decide", "edit", "admin")
TOP_KEYS = ("fourEyes", "groups", "bindings", "signatures")
BINDING_KEYS = ("role", "subjects", "namespaces", "signatures")
#: signed-decision modes, strictest first
SIGNATURE_MODES = ("required", "optional", "off")
SUBJECT_KINDS = ("user", "group", "unix")


@dataclass
class SingleUserPolicy:
    """Everything allowed; four-eyes off unless a task asks for it."""

    four_eyes: bool = False
    single_user: bool = True
    signatures: str = "optional"

    def signatures_for(self, identity: Identity, namespace: str) -> str:
        return self.signatures

    def roles(self, identity: Identity, namespace: str) -> set[str]:
        return set(ROLES)

    def allows(self, identity: Identity, action: str, namespace: str) -> bool:
        return True

    def in_group(self, identity: Identity, group: str) -> bool:
        return group in identity.groups or group.removeprefix("unix:") in identity.groups

    def describe(self, identity: Identity) -> dict[str, Any]:
        return {"name": identity.name, "groups": sorted(identity.groups), "roles": {"*": list(ROLES)},
                "single_user": True, "four_eyes": self.four_eyes}


@dataclass(frozen=True)
class Binding:
    role: str
    subjects: tuple[str, ...]
    namespaces: tuple[str, ...]
    location: Location | None = None
    signatures: str | None = None


def namespace_matches(pattern: str, namespace: str) -> bool:
    """``*`` matches all; ``a.b.*`` matches ``a.b.x`` and deeper (not ``a.b``); else exact.

    The caller's special namespace ``"*"`` (any namespace at all) is matched only by ``*``.
    """
    if pattern == "*":
        return True
    if namespace == "*":
        return False
    if pattern.endswith(".*"):
        return namespace.startswith(pattern[:-1])
    return namespace == pattern


@dataclass
class FilePolicy:
    """A loaded policy file (see the module docstring for the rules)."""

    four_eyes: bool = True
    groups: dict[str, list[str]] = field(default_factory=dict)
    bindings: list[Binding] = field(default_factory=list)
    path: str | None = None
    single_user: bool = False
    signatures: str = "optional"

    # -- membership ---------------------------------------------------------------------
    def _in_policy_group(self, identity: Identity, group: str) -> bool:
        for member in self.groups.get(group, ()):
            if member.startswith("unix:"):
                if member[5:] in identity.groups:
                    return True
            elif member.removeprefix("user:") == identity.name:
                return True
        return False

    def in_group(self, identity: Identity, group: str) -> bool:
        """Policy group containing the identity, or one of its OS groups (``g`` or ``unix:g``)."""
        if group.startswith("unix:"):
            return group[5:] in identity.groups
        return self._in_policy_group(identity, group) or group in identity.groups

    def _subject_matches(self, identity: Identity, subject: str) -> bool:
        kind, _, name = subject.partition(":")
        if kind == "user":
            return identity.name == name
        if kind == "group":
            return self._in_policy_group(identity, name)
        if kind == "unix":
            return name in identity.groups
        return False

    def _applies(self, identity: Identity, binding: Binding) -> bool:
        return any(self._subject_matches(identity, s) for s in binding.subjects)

    # -- questions the engine asks --------------------------------------------------------
    def roles(self, identity: Identity, namespace: str) -> set[str]:
        """Union of the roles of every binding for the identity matching ``namespace``."""
        return {b.role for b in self.bindings if self._applies(identity, b)
                and any(namespace_matches(p, namespace) for p in b.namespaces)}

    def allows(self, identity: Identity, action: str, namespace: str) -> bool:
        if action not in ACTIONS:
            raise ValueError(f"unknown action `{action}`")
        return any(action in PERMISSIONS[role] for role in self.roles(identity, namespace))

    def signatures_for(self, identity: Identity, namespace: str) -> str:
        """required | optional | off for decisions by ``identity`` in ``namespace``."""
        modes = {b.signatures for b in self.bindings if b.signatures and self._applies(identity, b)
                 and any(namespace_matches(p, namespace) for p in b.namespaces)}
        for mode in SIGNATURE_MODES:
            if mode in modes:
                return mode
        return self.signatures

    def describe(self, identity: Identity) -> dict[str, Any]:
        """Who the identity is to this policy: groups (policy ones, then OS ones, each sorted)
        and roles by the namespace patterns of the bindings that apply (for ``/api/v1/me``)."""
        policy_groups = sorted(g for g in self.groups if self._in_policy_group(identity, g))
        groups = policy_groups + sorted(g for g in identity.groups if g not in policy_groups)
        roles: dict[str, set[str]] = {}
        for b in self.bindings:
            if self._applies(identity, b):
                for pattern in b.namespaces:
                    roles.setdefault(pattern, set()).add(b.role)
        return {"name": identity.name, "groups": groups,
                "roles": {p: [r for r in ROLES if r in rs] for p, rs in sorted(roles.items())},
                "single_user": False, "four_eyes": self.four_eyes}


#: what the engine consults for access decisions
Policy: TypeAlias = "SingleUserPolicy | FilePolicy"


def load_policy(path: Path) -> FilePolicy:
    """Read and validate a policy file; :class:`FlowLoadError` lists every problem found
    (``file:line:col: message``). A file that cannot be read raises :class:`UsageError`."""
    from signoff.engine.governance.policy_file import parse_policy

    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        raise UsageError(f"cannot read policy file {path}: {reason}") from None
    return parse_policy(text, str(path))
