"""The console's config file: ``config.toml`` in the config directory.

::

    theme = "signoff-light"     # remembered when you switch themes in the console
    server = "https://signoff.example.com:8750"   # remote mode by default (see --server)
    public_url = "https://signoff.example.com"    # links in notifications and appLink() (see --public-url)
    database = "postgresql://signoff@db.example.com/signoff"   # PostgreSQL (see --database)
    socket = "/run/signoff/signoff.sock"          # or: the local server's socket (see --socket)

    [keys]                      # action id = "key1,key2" (see `?` in the console)
    approve = "y"
    deny = "n,ctrl+d"

The file is read with :mod:`tomllib`. The console only ever writes the ``theme`` line back
(replacing it, or adding it at the top), so comments and everything else are left untouched.
A broken file never stops the console: its problems are reported as a notice.
"""
from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FILE_NAME = "config.toml"
_THEME_LINE = re.compile(r"^\s*theme\s*=.*$")
_TABLE_LINE = re.compile(r"^\s*\[")


def default_path() -> Path:
    from signoff.console.settings import config_dir

    return config_dir() / FILE_NAME


@dataclass
class ConsoleConfig:
    path: Path | None = None
    theme: str | None = None
    server: str | None = None
    public_url: str | None = None
    database: str | None = None
    socket: str | None = None
    keys: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path | str | None = None) -> ConsoleConfig:
        target = Path(path) if path is not None else default_path()
        config = cls(path=target)
        if not target.is_file():
            return config
        try:
            data = tomllib.loads(target.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            config.problems.append(f"{target}: cannot read: {exc}")
            return config
        except tomllib.TOMLDecodeError as exc:
            config.problems.append(f"{target}: not valid TOML: {exc}")
            return config
        config.theme = _text(data, "theme", "a theme name", target, config.problems, config.theme)
        config.server = _text(data, "server", "a URL", target, config.problems, config.server)
        public_url = data.get("public_url")
        if public_url is not None:
            from signoff.engine.errors import UsageError
            from signoff.engine.links import check_public_url

            try:
                if not isinstance(public_url, str):
                    raise UsageError("`public_url` must be an http:// or https:// URL in quotes")
                config.public_url = check_public_url(public_url)
            except UsageError as exc:
                config.problems.append(f"{target}: {exc}")
        config.database = _text(data, "database", "a postgresql:// URL", target, config.problems, config.database)
        config.socket = _text(data, "socket", "a path", target, config.problems, config.socket)
        keys = data.get("keys", {})
        if not isinstance(keys, dict):
            config.problems.append(f"{target}: [keys] must be a table of action = \"key1,key2\"")
        else:
            for name, value in keys.items():
                if isinstance(value, list) and all(isinstance(v, str) for v in value):
                    value = ",".join(value)
                if not isinstance(value, str):
                    config.problems.append(f"{target}: [keys] {name} must be a string like \"y,ctrl+y\"")
                    continue
                config.keys[str(name)] = value
        for name in data:
            if name not in ("theme", "server", "socket", "public_url", "database", "keys"):
                config.problems.append(f"{target}: unknown setting `{name}` "
                                       "(known: theme, server, socket, public_url, database, [keys])")
        return config

    def save_theme(self, name: str) -> None:
        """Remember the theme: rewrite only the top-level ``theme = ...`` line (atomically)."""
        self.theme = name
        if self.path is None:
            return
        line = f'theme = "{_escape(name)}"'
        try:
            text = self.path.read_text(encoding="utf-8") if self.path.is_file() else ""
        except OSError:
            text = ""
        lines = text.splitlines()
        replaced = False
        for i, existing in enumerate(lines):
            if _TABLE_LINE.match(existing):
                break  # a `theme` key inside a table is not ours
            if _THEME_LINE.match(existing):
                lines[i] = line
                replaced = True
                break
        if not replaced:
            lines.insert(0, line)
        new_text = "\n".join(lines) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        import tempfile  # here: only saving needs it, and it costs ~4 ms of every start

        fd, tmp = tempfile.mkstemp(prefix=".config-", suffix=".toml", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(new_text)
            os.replace(tmp, self.path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _text(data: dict[str, Any], key: str, what: str, target: object, problems: list[str],
          current: str | None) -> str | None:
    """One quoted text setting: its stripped value, or ``current`` and a problem naming the key."""
    value = data.get(key)
    if value is None:
        return current
    if isinstance(value, str) and value.strip():
        return value.strip()
    problems.append(f"{target}: `{key}` must be {what} in quotes")
    return current
