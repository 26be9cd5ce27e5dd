"""Where things live: data directory, config directory, flow folders, the server to use.

Precedence, highest first: command-line option, environment variable, platformdirs default.

Which engine a command talks to (:meth:`Settings.endpoint`), first found wins:
``--socket PATH`` / ``--server URL`` (not both), ``$SIGNOFF_SOCKET``, ``$SIGNOFF_SERVER``,
``socket`` / ``server`` in ``config.toml``, then the system's local server at
``/run/signoff/signoff.sock`` when that socket exists - unless a data directory was named
(``--data-dir`` or ``$SIGNOFF_DATA_DIR``): naming one means "this directory, embedded".
Nothing found: the embedded engine on the data directory.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

APP = "signoff"
#: the documented place of a machine's local server (deploy/systemd; engine.server.unix)
SYSTEM_SOCKET = Path("/run/signoff/signoff.sock")


def _is_socket(path: Path) -> bool:
    import stat

    try:
        return stat.S_ISSOCK(path.stat().st_mode)
    except OSError:
        return False

# platformdirs is imported only when a default is needed: on Linux it pulls in tempfile,
# shutil and random (~6 ms of start-up) that a run with --data-dir / $SIGNOFF_* never uses.


def config_dir() -> Path:
    env = os.environ.get("SIGNOFF_CONFIG_DIR")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_config_dir(APP))


def default_data_dir() -> Path:
    env = os.environ.get("SIGNOFF_DATA_DIR")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_data_dir(APP))


def sample_flows_dir() -> Path:
    """The bundled sample flows; a package so they are found after a plain `pip install .`."""
    from signoff import sample_flows
    return Path(sample_flows.__file__).parent


@dataclass
class Settings:
    data_dir: Path | None = None
    database: str | None = None
    flow_dirs: list[Path] = field(default_factory=list)
    policy: Path | None = None
    notifications: Path | None = None
    server: str | None = None
    #: the local server's Unix socket (clients connect to it; `serve` listens on it)
    socket: Path | None = None
    token_file: Path | None = None
    ca_cert: Path | None = None
    demo: bool = False
    _console_config: Any = field(default=None, repr=False, compare=False)

    def resolved_server(self) -> str | None:
        """The server URL commands use (None: the local socket or the embedded engine)."""
        kind, where = self.endpoint()
        return where if kind == "server" else None

    def resolved_socket(self) -> str | None:
        """The local server's socket commands use (None: a URL or the embedded engine)."""
        kind, where = self.endpoint()
        return where if kind == "socket" else None

    def endpoint(self) -> tuple[str, str | None]:
        """("socket", PATH), ("server", URL) or ("embedded", None), by the rule in the module
        docstring."""
        from signoff.engine.errors import UsageError

        if self.socket and self.server:
            raise UsageError("give --socket PATH or --server URL, not both")
        if self.socket:
            return "socket", str(self.socket)
        if self.server:
            return "server", self.server
        for kind, name in (("socket", "SIGNOFF_SOCKET"), ("server", "SIGNOFF_SERVER")):
            value = os.environ.get(name)
            if value:
                return kind, value
        config = self.console_config()
        if config.socket:
            return "socket", config.socket
        if config.server:
            return "server", config.server
        if self.data_dir is None and not os.environ.get("SIGNOFF_DATA_DIR") and _is_socket(SYSTEM_SOCKET):
            return "socket", str(SYSTEM_SOCKET)
        return "embedded", None

    def resolved_public_url(self, given: str | None = None) -> str | None:
        """Where `signoff serve` is reached from outside, for links: ``given`` (serve's
        --public-url), else $SIGNOFF_PUBLIC_URL, else `public_url` in the config file."""
        from signoff.engine.links import check_public_url

        for value in (given, os.environ.get("SIGNOFF_PUBLIC_URL")):
            if value:
                return check_public_url(value)
        return self.console_config().public_url

    def console_config(self):
        """The console config file (console.config.ConsoleConfig), read once per run."""
        if self._console_config is None:
            from signoff.console.config import ConsoleConfig

            self._console_config = ConsoleConfig.load()
        return self._console_config

    def resolved_database(self) -> str | None:
        """--database, else $SIGNOFF_DATABASE_URL, else `database` in the config file; None = the
        SQLite file in the data directory. A value that is not a postgresql:// URL is refused."""
        from signoff.engine.store import check_database_url

        if self.database:
            return check_database_url(self.database, "--database")
        env = os.environ.get("SIGNOFF_DATABASE_URL")
        if env:
            return check_database_url(env, "$SIGNOFF_DATABASE_URL")
        configured = self.console_config().database
        return check_database_url(configured, "`database` in config.toml") if configured else None

    def resolved_data_dir(self) -> Path:
        return self.data_dir or default_data_dir()

    def load_policy(self):
        """The policy file given, else policy.yaml in the config dir, else single-user mode (None)."""
        from signoff.engine.errors import UsageError
        from signoff.engine.policy import load_policy

        path = self.policy or config_dir() / "policy.yaml"
        if self.policy is not None and not path.is_file():
            raise UsageError(f"policy file {path} does not exist")
        return load_policy(path) if path.is_file() else None

    def load_notifications(self):
        """The notification targets given, else notifications.yaml in the config dir, else None."""
        from signoff.engine.errors import UsageError

        path = self.notifications or config_dir() / "notifications.yaml"
        if self.notifications is not None and not path.is_file():
            raise UsageError(f"notifications file {path} does not exist")
        if not path.is_file():
            return None
        from signoff.engine.notify.config import load_notifications

        return load_notifications(path)

    def resolved_flow_dirs(self) -> list[Path]:
        dirs = list(self.flow_dirs) or [config_dir() / "flows"]
        if self.demo:
            dirs.append(sample_flows_dir())
        return dirs
