"""Who is acting. In embedded mode that is the OS account of the process, read from the uid
(never from $USER or $LOGNAME, which anyone can set); the server builds identities from tokens."""
from __future__ import annotations

import grp
import os
import pwd
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Identity:
    name: str
    groups: tuple[str, ...] = field(default=())
    #: how the identity was established: "os" (process uid), "token" (server), "socket" (the
    #: peer uid of a local-socket connection, from the kernel), "system"
    #: (the engine itself, e.g. a timeout), "demo" (seeded demo requesters)
    source: str = "os"

    def __str__(self) -> str:
        return self.name


def os_identity() -> Identity:
    """The account running this process, with its OS groups."""
    return identity_for_uid(os.getuid())


def identity_for_uid(uid: int, source: str = "os") -> Identity:
    """The account with this uid and its OS groups (``source`` says how the uid was learnt)."""
    try:
        entry = pwd.getpwuid(uid)
        name, gid = entry.pw_name, entry.pw_gid
    except KeyError:  # a uid with no passwd entry (some containers): still not spoofable
        return Identity(name=f"uid:{uid}", groups=(), source=source)
    return Identity(name=name, groups=tuple(os_groups(name, gid)), source=source)


def os_groups(user: str, gid: int) -> list[str]:
    names: list[str] = []
    try:
        gids = os.getgrouplist(user, gid)
    except OSError:
        gids = [gid]
    for g in gids:
        try:
            names.append(grp.getgrgid(g).gr_name)
        except KeyError:
            names.append(str(g))
    return sorted(set(names))


SYSTEM = Identity(name="signoff", groups=(), source="system")
