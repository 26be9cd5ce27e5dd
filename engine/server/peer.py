"""Who is on the other end of a Unix-socket connection, from the kernel (``SO_PEERCRED``).

The uid of the connecting process is recorded by the kernel when it calls ``connect()``; no
header, body, environment variable or token can change it. uvicorn does not hand the
transport to the application, so :func:`peer_protocol` subclasses uvicorn's HTTP protocol:
when a connection on an ``AF_UNIX`` socket is made, it reads the credentials once and puts
them into every request's ASGI scope under ``extensions["signoff.peer"]``. TCP connections
get nothing there, so the application tells the two transports apart by this key alone,
which only the server can set.
"""
from __future__ import annotations

import socket
import struct
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

SCOPE_KEY = "signoff.peer"
_UCRED = struct.Struct("3i")  # struct ucred {pid_t pid; uid_t uid; gid_t gid;}

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Any, Any], Awaitable[None]]


@dataclass(frozen=True)
class PeerCred:
    """The peer process of a Unix-socket connection, as the kernel saw it at ``connect()``."""

    pid: int
    uid: int
    gid: int

    @property
    def origin(self) -> str:
        """How decisions made over this connection are recorded in the audit (``origin``)."""
        return f"socket uid={self.uid}"


def peer_cred(sock: Any) -> PeerCred | None:
    """The credentials of a connected ``AF_UNIX`` socket's peer; None for any other socket."""
    if sock is None or getattr(sock, "family", None) != socket.AF_UNIX:
        return None
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    pid, uid, gid = _UCRED.unpack(raw)
    return PeerCred(pid, uid, gid)


def peer_of(scope: Scope) -> PeerCred | None:
    """The peer credentials the server recorded for this request (None on TCP)."""
    value = (scope.get("extensions") or {}).get(SCOPE_KEY)
    return value if isinstance(value, PeerCred) else None


def _with_peer(app: ASGIApp, peer: PeerCred) -> ASGIApp:
    async def wrapped(scope: Scope, receive: Any, send: Any) -> None:
        extensions = dict(scope.get("extensions") or {})
        extensions[SCOPE_KEY] = peer
        scope["extensions"] = extensions
        await app(scope, receive, send)

    return wrapped


def peer_protocol() -> type:
    """uvicorn's HTTP protocol class, recording ``SO_PEERCRED`` on Unix-socket connections."""
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    class PeerCredProtocol(AutoHTTPProtocol):  # type: ignore[misc, valid-type]  # uvicorn picks the class at import
        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            try:
                peer = peer_cred(transport.get_extra_info("socket"))
            except OSError:
                # no credentials, no service: a connection whose peer is unknown is closed
                transport.close()
                return
            if peer is not None:
                inner: ASGIApp = self.app  # type: ignore[has-type]  # uvicorn sets it in __init__
                self.app = _with_peer(inner, peer)

    return PeerCredProtocol
