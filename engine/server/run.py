"""Running the server: ``serve(...)`` = checks, engine, app, uvicorn, graceful SIGTERM.

Refusals (a :class:`UsageError`, exit code 2, before anything listens):
- no policy file and no ``single_user``: a shared server must say who may do what;
- a policy file together with ``single_user``: ambiguous, so neither is guessed;
- a host that is not loopback without TLS, unless ``insecure_http`` (tokens would cross the
  network in clear text; say ``--insecure-http`` when a TLS proxy terminates in front);
- only one of the TLS certificate and key, or files that cannot be read;
- with a Unix socket (``socket_path``): a data directory other accounts could write, or
  database files they could read (engine.server.unix), a missing socket directory, a path
  that is not a socket or where another server listens.

Listeners: TCP on ``host:port``, a Unix socket at ``socket_path`` (identity from the kernel,
engine.server.peer), or both in one server (``host``/``port`` None with a socket: socket only).

SIGTERM / SIGINT: uvicorn stops accepting connections and lets requests in progress finish
(up to ``graceful_timeout`` seconds); event streams end at once (clients reconnect). Then the
background runner stops after the tick it is in. A decision is acknowledged only after its
transaction commits, so nothing acknowledged is lost, and the runner's work is resumable.
"""
from __future__ import annotations

import gc
import ipaddress
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Literal

from signoff.engine.errors import SignoffError, UsageError

if TYPE_CHECKING:
    from signoff.engine.notify.config import NotificationConfig
    from signoff.engine.policy import Policy

log = logging.getLogger("signoff.server")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8750


def is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_listen(host: str, *, tls_cert: Path | None, tls_key: Path | None, insecure_http: bool) -> bool:
    """Refuse unsafe or incomplete listening options; True when TLS is used."""
    if (tls_cert is None) != (tls_key is None):
        raise UsageError("give both --tls-cert and --tls-key (the certificate chain and its private key)")
    for label, path in (("--tls-cert", tls_cert), ("--tls-key", tls_key)):
        if path is not None and not (Path(path).is_file() and os.access(path, os.R_OK)):
            raise UsageError(f"{label} {path}: no such readable file")
    tls = tls_cert is not None
    if not tls and not is_loopback(host) and not insecure_http:
        raise UsageError(
            f"refusing to listen on {host or 'every interface'} without TLS: bearer tokens would cross the network "
            "in clear text. Give --tls-cert FILE --tls-key FILE, or --insecure-http if a TLS-terminating proxy "
            "is in front of this server (or listen on 127.0.0.1).")
    return tls


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio turns Nagle off (TCP_NODELAY) only on sockets that say so
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        raise SignoffError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


def serve(*, data_dir: Path, flow_dirs: list[Path], policy: Policy | None, single_user: bool = False,
          host: str | None = DEFAULT_HOST, port: int | None = DEFAULT_PORT, tls_cert: Path | None = None,
          tls_key: Path | None = None, insecure_http: bool = False, notifications: NotificationConfig | None = None,
          public_url: str | None = None, log_level: str = "info", graceful_timeout: int = 10,
          echo: Callable[[str], None] | None = None, database: str | None = None, socket_path: Path | None = None,
          socket_group: str | None = None) -> None:
    """Run `signoff serve` until SIGTERM/SIGINT (see the module docstring). The refusals come
    first, in this order: listening options, then the policy, then the data directory."""
    tcp = socket_path is None or host is not None or port is not None
    host = host if host is not None else DEFAULT_HOST
    port = port if port is not None else DEFAULT_PORT
    if socket_group is not None and socket_path is None:
        raise UsageError("--socket-group needs --socket PATH (the group that may connect to that socket)")
    tls = check_listen(host, tls_cert=tls_cert, tls_key=tls_key, insecure_http=insecure_http) if tcp else False
    if not tcp and (tls_cert or tls_key):
        raise UsageError("--tls-cert/--tls-key are for the TCP listener; give --host/--port too (the Unix "
                         "socket speaks plain HTTP to local processes)")
    if policy is None and not single_user:
        raise UsageError("refusing to start without a policy file: give --policy FILE (who may view, start, "
                         "decide and administer), or --single-user to let every valid token holder do everything")
    if policy is not None and single_user:
        where = getattr(policy, "path", None) or "a policy file"
        raise UsageError(f"--single-user was given but {where} is in use; use one or the other")
    from signoff.engine.runtime.heartbeat import settings as heartbeat_settings

    try:
        heartbeat_settings()  # $SIGNOFF_HEARTBEAT_*: a replica others would take for dead is refused
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    from signoff.engine.server.unix import check_data_dir
    from signoff.engine.store.db import DB_FILENAME

    check_data_dir(data_dir, (DB_FILENAME, DB_FILENAME + "-wal", DB_FILENAME + "-shm"))

    import uvicorn

    from signoff.engine.core import Engine
    from signoff.engine.server.app import create_app
    from signoff.engine.service import ApprovalService

    if not logging.getLogger("signoff").handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s:     %(name)s: %(message)s"))
        logging.getLogger("signoff").addHandler(handler)
        logging.getLogger("signoff").setLevel(log_level.upper())

    engine = Engine(data_dir, flow_dirs, policy=policy, notifications=notifications, public_url=public_url,
                    database=database)
    try:
        # a start runs its first steps in its own request on PostgreSQL, where the runner's
        # separate claim and advance cost round trips (4 clients on 3 replicas: 345 -> 404
        # starts/s); on SQLite the runner's chunks share one fsync among up to 100 advances, which
        # beats a commit per start under load (395 queued against 348 inline). See
        # ApprovalService.start_inline.
        service = ApprovalService(engine, run_inline=False, local_files=False,
                                  start_inline=engine.db.dialect == "postgresql")
        problems = service.flow_problems()
        app = create_app(service, single_user=single_user)
        stopping = app.state.stopping
        sockets: list[socket.socket] = []
        shown_at: list[str] = []
        created: int | None = None
        scheme = "https" if tls else "http"
        if socket_path is not None:
            from signoff.engine.server.unix import activated_socket, bind_unix

            activated = activated_socket(Path(socket_path))
            unix_sock = activated or bind_unix(Path(socket_path), socket_group)
            # ours to remove on a clean stop (systemd removes its own): this very file
            created = None if activated is not None else os.stat(socket_path).st_ino
            sockets.append(unix_sock)
        if tcp:
            sock = _bind(host, port)
            sockets.append(sock)
            bound_host, bound_port = sock.getsockname()[:2]
            shown = f"[{bound_host}]" if ":" in bound_host else bound_host
            shown_at.append(f"{scheme}://{shown}:{bound_port}")
        if socket_path is not None:
            shown_at.append(f"unix:{socket_path}")

        servers: list[uvicorn.Server] = []

        class Server(uvicorn.Server):
            def handle_exit(self, sig: int, frame: FrameType | None) -> None:
                stopping.set()  # end event streams now, so in-flight requests are all that is waited for
                engine.db.stop_waiting()  # a database that is gone must not hold the stop up for minutes
                for other in servers:  # one signal stops every listener
                    if other is not self:
                        other.should_exit = True
                super().handle_exit(sig, frame)

        from signoff.engine.server.peer import peer_protocol

        def config(ssl: bool, lifespan: Literal["on", "off"]) -> uvicorn.Config:
            return uvicorn.Config(
                app, log_level=log_level, access_log=True, lifespan=lifespan, server_header=False,
                timeout_graceful_shutdown=graceful_timeout, http=peer_protocol(),
                # request line + headers: room for ?ids= with 1000 ids, so long queries reach the app
                # (which answers with a problem) instead of h11's bare text/plain 400
                h11_max_incomplete_event_size=1024 * 1024,
                ssl_certfile=str(tls_cert) if ssl and tls_cert else None,
                ssl_keyfile=str(tls_key) if ssl and tls_key else None)

        if tls and socket_path is not None:
            # uvicorn applies TLS to every socket of a server: the Unix socket (plain HTTP to
            # local processes) gets a server of its own in the same loop, without lifespan
            plan = [(Server(config(True, "on")), sockets[1:]), (Server(config(False, "off")), sockets[:1])]
        else:
            plan = [(Server(config(tls, "on")), sockets)]
        servers.extend(server for server, _ in plan)
        say = echo or (lambda text: print(text, flush=True))
        mode = "single-user" if single_user else f"policy {getattr(policy, 'path', None) or '(given)'}"
        where = engine.db.path if database else engine.data_dir
        say(f"signoff serve: listening on {' and '.join(shown_at)}  "
            f"(data {where}; {mode}; {len(service.engine.flows.list())} flow(s))")
        for problem in problems:
            say(f"warning: {problem}")
        # uvicorn re-raises the signal it stopped for once it has shut down; a SIGTERM that
        # ended in a clean shutdown is a normal exit (status 0), not death by signal
        previous = signal.signal(signal.SIGTERM, lambda *_: None)
        # everything alive now (modules, the app, its schemas, the engine) is moved out of the
        # collector's way for the process's life, as the console does (console/startup.py):
        # 3 replicas on PostgreSQL, 4 clients: ~3% more starts/s (305/301/334 -> 313/312/343)
        gc.freeze()
        try:
            if len(plan) == 1:
                plan[0][0].run(sockets=plan[0][1])
            else:
                import asyncio

                async def serve_all() -> None:
                    await asyncio.gather(*(server.serve(sockets=socks) for server, socks in plan))

                asyncio.run(serve_all())
        finally:
            signal.signal(signal.SIGTERM, previous)
            if created is not None and socket_path is not None:
                _unlink_socket(Path(socket_path), created)
        if not all(server.started for server in servers):
            raise SignoffError(f"the server could not start on {' and '.join(shown_at)} (see the messages above)")
        say("signoff serve: stopped")
    finally:
        engine.close()


def _unlink_socket(path: Path, inode: int) -> None:
    """Remove the socket file we created, on a clean stop (not a file put there since)."""
    try:
        if os.stat(path).st_ino == inode:
            path.unlink()
    except OSError:
        pass
