"""Who may do what. Without a policy file the engine is single-user: the local account may
do everything (DESIGN.md). The policy file format arrives with the governance work; this
module is the one place that answers permission questions."""
from __future__ import annotations

from dataclasses import dataclass

from engine.identity import Identity

ROLES = ("viewer", "requester", "approver", "admin")
#: what each role may do; roles add up
PERMISSIONS = {
    "viewer": {"view"},
    "requester": {"view", "start", "cancel_own"},
    "approver": {"view", "decide"},
    "admin": {"view", "start", "cancel_own", "cancel_any", "decide", "admin"},
}


@dataclass
class SingleUserPolicy:
    """Everything allowed; four-eyes off unless a task asks for it."""

    four_eyes: bool = False
    single_user: bool = True

    def roles(self, identity: Identity, namespace: str) -> set[str]:  # noqa: ARG002
        return set(ROLES)

    def allows(self, identity: Identity, action: str, namespace: str) -> bool:  # noqa: ARG002
        return True

    def in_group(self, identity: Identity, group: str) -> bool:
        return group in identity.groups or group.removeprefix("unix:") in identity.groups
