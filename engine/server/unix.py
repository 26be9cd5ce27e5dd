"""The local server's Unix socket and the data directory it guards.

Decisions (a shared ops box, see README "Sharing one machine"):

- The socket file's mode says who may connect: ``0666`` (every account on the machine; the
  policy then decides what each may do) or, with ``--socket-group GROUP``, ``0660`` and that
  group. The file is created under a tight umask and only then opened up, so it is never
  reachable by more accounts than intended, not even for a moment.
- A stale socket file (nobody listening) is replaced; a live one is refused, as is any path
  that is not a socket: we never delete someone's file.
- systemd socket activation: when ``$LISTEN_FDS``/``$LISTEN_PID`` hand this process a Unix
  socket bound to the same path, it is used as is (systemd set its mode and group).
- The data directory must not be writable by group or others (they could replace the
  database or its journal), and the database files must be the service account's alone
  (``0600``): ``serve`` refuses otherwise and names the ``chmod`` that fixes it.
"""
from __future__ import annotations

import errno
import grp
import os
import socket
import stat
from pathlib import Path

from signoff.engine.errors import SignoffError, UsageError

#: where clients look for the local server when nothing else is configured
SYSTEM_SOCKET = Path("/run/signoff/signoff.sock")
#: the first file descriptor systemd passes (sd_listen_fds(3))
SD_LISTEN_FDS_START = 3


def group_id(name: str) -> int:
    """The gid of ``--socket-group`` NAME (a number is taken as a gid)."""
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        if name.isdigit():
            return int(name)
        raise UsageError(f"--socket-group {name}: no such group on this machine") from None


def activated_socket(path: Path) -> socket.socket | None:
    """The socket systemd passed for ``path`` (socket activation), else None."""
    if os.environ.get("LISTEN_PID") != str(os.getpid()):
        return None
    try:
        count = int(os.environ.get("LISTEN_FDS", "0"))
    except ValueError:
        return None
    for fd in range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + count):
        try:
            sock = socket.socket(fileno=fd)
        except OSError:
            continue
        if sock.family == socket.AF_UNIX and sock.getsockname() == str(path):
            sock.set_inheritable(True)
            for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
                os.environ.pop(name, None)  # not for our children
            return sock
        sock.detach()
    raise UsageError(f"systemd passed sockets (LISTEN_FDS={count}) but none is a Unix socket at {path}; "
                     "make ListenStream= in signoff.socket and --socket name the same path")


def _remove_stale(path: Path) -> None:
    try:
        info = path.lstat()
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(info.st_mode):
        raise UsageError(f"--socket {path}: the path exists and is not a socket; remove it or choose another path")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError as exc:
        if exc.errno not in (errno.ECONNREFUSED, errno.ENOENT):
            raise SignoffError(f"--socket {path}: cannot tell whether a server is listening there: "
                               f"{exc.strerror or exc}") from None
    else:
        raise UsageError(f"--socket {path}: another server is already listening there")
    finally:
        probe.close()
    path.unlink(missing_ok=True)


def bind_unix(path: Path, group: str | None = None) -> socket.socket:
    """A listening-ready Unix socket at ``path``: mode 0666, or 0660 owned by ``group``."""
    path = Path(path)
    if not path.parent.is_dir():
        raise UsageError(f"--socket {path}: the directory {path.parent} does not exist "
                         "(on a systemd box the tmpfiles.d line creates /run/signoff)")
    gid = group_id(group) if group is not None else None
    _remove_stale(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    previous = os.umask(0o177)  # born 0600: nobody else can connect before the mode below
    try:
        sock.bind(str(path))
    except OSError as exc:
        sock.close()
        raise SignoffError(f"cannot listen on {path}: {exc.strerror or exc}") from None
    finally:
        os.umask(previous)
    try:
        if gid is not None:
            os.chown(path, -1, gid)
            os.chmod(path, 0o660)
        else:
            os.chmod(path, 0o666)
    except OSError as exc:
        sock.close()
        path.unlink(missing_ok=True)
        hint = (" (the server's account must be a member of that group)" if gid is not None
                and exc.errno == errno.EPERM else "")
        raise SignoffError(f"cannot set the owner group or mode of {path}: {exc.strerror or exc}{hint}") from None
    sock.set_inheritable(True)
    return sock


def check_data_dir(data_dir: Path, files: tuple[str, ...]) -> None:
    """Refuse a data directory (or database files) other accounts could write or read."""
    data_dir = Path(data_dir)
    try:
        mode = data_dir.stat().st_mode
    except FileNotFoundError:
        return  # created by the engine with mode 0700
    except OSError as exc:
        raise UsageError(f"cannot inspect the data directory {data_dir}: {exc.strerror or exc}") from None
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        who = "group and others" if mode & stat.S_IWGRP and mode & stat.S_IWOTH else (
            "its group" if mode & stat.S_IWGRP else "every account")
        raise UsageError(
            f"refusing to serve from {data_dir}: it is writable by {who} (mode {stat.S_IMODE(mode):04o}), who could "
            f"replace the database and rewrite the audit. Make it the server account's alone: chmod 700 {data_dir}")
    for name in files:
        path = data_dir / name
        try:
            file_mode = stat.S_IMODE(path.stat().st_mode)
        except FileNotFoundError:
            continue
        if file_mode & 0o077:
            raise UsageError(
                f"refusing to serve {path}: other accounts may read or write it (mode {file_mode:04o}), bypassing "
                f"the policy. Make it the server account's alone: chmod 600 {data_dir}/{name.split('.')[0]}.db*")
