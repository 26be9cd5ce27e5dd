"""Throw-away OS accounts and groups for the shared-box tests (issue 12), and running the real
`signoff` program as one of them.

The tests run as root (CI does): :class:`Accounts` creates users and groups with names unique
to this test process (``so<6 hex><role>``, so parallel workers and other suites never collide),
and removes them afterwards, even when a test fails. ``useradd`` comes from the ``passwd``
package and ``setpriv`` from ``util-linux``; when one is missing it is installed with apt-get.

Other accounts must be able to run ``python -m signoff`` of this checkout: :func:`reachable`
adds ``o+x`` to each directory on the way to the interpreter and the checkout that lacks it
(and ``o+r`` where a listing is needed) and puts every mode back afterwards.
"""
from __future__ import annotations

import grp
import os
import pwd
import secrets
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support import REPO, SIGNOFF, clean_env

TOOLS = {"useradd": "passwd", "groupadd": "passwd", "userdel": "passwd", "groupdel": "passwd",
         "setpriv": "util-linux", "pkill": "procps"}


def root_available() -> bool:
    return os.geteuid() == 0


def ensure_tools() -> None:
    """Install what creating accounts and switching to them needs (CI runs as root)."""
    missing = sorted({pkg for tool, pkg in TOOLS.items() if shutil.which(tool) is None and
                      not Path("/usr/sbin", tool).exists()})
    if missing:
        subprocess.run(["apt-get", "install", "-y", "-q", *missing], check=True, capture_output=True,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})


@dataclass(frozen=True)
class Account:
    name: str
    uid: int
    gid: int
    home: Path


class Accounts:
    """Users and groups created for one test module; :meth:`remove` deletes them all."""

    def __init__(self, base: Path) -> None:
        ensure_tools()
        self.tag = "so" + secrets.token_hex(3)
        self.base = base
        self.users: dict[str, Account] = {}
        self.groups: dict[str, str] = {}

    def group(self, role: str) -> str:
        name = f"{self.tag}{role}"
        subprocess.run(["groupadd", name], check=True, capture_output=True)
        self.groups[role] = name
        return name

    def user(self, role: str, *, groups: tuple[str, ...] = ()) -> Account:
        name = f"{self.tag}{role}"
        home = self.base / f"home-{role}"
        args = ["useradd", "--no-create-home", "--home-dir", str(home), "--shell", "/usr/sbin/nologin",
                "--user-group", name]
        if groups:
            args[1:1] = ["--groups", ",".join(groups)]
        subprocess.run(args, check=True, capture_output=True)
        entry = pwd.getpwnam(name)
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chown(home, entry.pw_uid, entry.pw_gid)
        account = Account(name, entry.pw_uid, entry.pw_gid, home)
        self.users[role] = account
        return account

    def remove(self) -> None:
        for account in self.users.values():
            subprocess.run(["pkill", "-KILL", "-u", str(account.uid)], capture_output=True)
            subprocess.run(["userdel", account.name], capture_output=True)
        for name in self.groups.values():
            subprocess.run(["groupdel", name], capture_output=True)
        # groups made by --user-group go with their user; anything left is reported by the check below
        leftovers = [a.name for a in self.users.values() if _exists_user(a.name)]
        leftovers += [g for g in self.groups.values() if _exists_group(g)]
        if leftovers:
            raise RuntimeError(f"could not remove the test accounts/groups {leftovers}")


def _exists_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def _exists_group(name: str) -> bool:
    try:
        grp.getgrnam(name)
        return True
    except KeyError:
        return False


@contextmanager
def reachable(*paths: Path) -> Iterator[None]:
    """Let every account traverse to ``paths`` (o+x on each ancestor, o+rx on the paths
    themselves); every mode changed is restored on exit."""
    changed: dict[Path, int] = {}
    try:
        for path in paths:
            path = Path(path).resolve()
            for part in [*reversed(path.parents), path]:
                mode = stat.S_IMODE(part.stat().st_mode)
                want = mode | stat.S_IXOTH | (stat.S_IROTH if part == path else 0)
                if want != mode and part not in changed:
                    changed[part] = mode
                    part.chmod(want)
        yield
    finally:
        for part, mode in changed.items():
            part.chmod(mode)


def interpreter_paths() -> list[Path]:
    """What another account needs to reach to run ``python -m signoff`` of this checkout."""
    return [Path(sys.prefix), Path(sys.executable).resolve().parent, REPO]


def as_user(account: Account, argv: list[str], *, env: Mapping[str, str] | None = None) -> list[str]:
    """``argv`` run as ``account`` (its uid, primary and supplementary groups) with setpriv,
    which keeps the environment exactly as given (runuser/su would reset USER and LOGNAME,
    which the spoofing tests set on purpose)."""
    return ["setpriv", f"--reuid={account.uid}", f"--regid={account.gid}", "--init-groups", "--", *argv]


def user_env(account: Account, **extra: str) -> dict[str, str]:
    """A clean environment for ``account``: its home, a private config dir, ``extra``."""
    values = {"HOME": str(account.home), "SIGNOFF_CONFIG_DIR": str(account.home / "config"),
              "PYTHONDONTWRITEBYTECODE": "1", "USER": account.name, "LOGNAME": account.name, **extra}
    return clean_env(**values)


def run_as(account: Account, *args: str, env: Mapping[str, str] | None = None, input: str | None = None,
           timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """The real `signoff` command line run as ``account``."""
    return subprocess.run(as_user(account, [*SIGNOFF, *args]), env=dict(env or user_env(account)), input=input,
                          capture_output=True, text=True, timeout=timeout, cwd="/")


def python_as(account: Account, code: str, *, env: Mapping[str, str] | None = None, input: str | None = None,
              timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """A Python snippet run as ``account`` by this interpreter (this checkout importable)."""
    return subprocess.run(as_user(account, [sys.executable, "-c", code]), env=dict(env or user_env(account)),
                          input=input, capture_output=True, text=True, timeout=timeout, cwd="/")
