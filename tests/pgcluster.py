"""A throwaway PostgreSQL for the tests: started by the tests themselves, removed at the end.

``initdb`` refuses to run as root, so when the tests run as root the cluster belongs to the
unprivileged ``nobody`` account (the data directory and the socket directory are handed to it).
The server listens only on a Unix socket in a fresh temporary directory (no TCP port, so
nothing collides with another test run or another cluster on the machine). The binaries come
from ``$SIGNOFF_PG_BIN`` or the newest ``/usr/lib/postgresql/*/bin`` (Debian's packages; `.ci/run`
installs them where they are missing).

Each test gets its own database (``CREATE DATABASE``), so tests never see each other's rows.
"""
from __future__ import annotations

import atexit
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

_OWNER = "nobody"
_counter = itertools.count(1)


def pg_bin() -> Path:
    env = os.environ.get("SIGNOFF_PG_BIN")
    if env:
        return Path(env)
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)
    if not candidates:
        raise RuntimeError("PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin); install the "
                           "`postgresql` package (.ci/run does) or set $SIGNOFF_PG_BIN")
    return candidates[-1].parent


class PgCluster:
    """One PostgreSQL server on a Unix socket; ``url(name)`` gives a database URL."""

    def __init__(self, prefix: str = "signoff-pgtest-") -> None:
        self.bin = pg_bin()
        self.root = Path(tempfile.mkdtemp(prefix=prefix))
        self.data = self.root / "data"
        self.socket_dir = self.root / "sock"
        self.log = self.root / "server.log"
        self.as_root = os.geteuid() == 0
        self.user = "signoff"
        self.running = False

    # -- running commands as the cluster's owner ---------------------------------------------
    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [str(a) for a in args]
        if self.as_root:
            cmd = ["runuser", "-u", _OWNER, "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=self.root)

    def _checked(self, *args: str) -> None:
        result = self._run(*args)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(map(str, args))} failed ({result.returncode}):\n"
                               f"{result.stdout}\n{result.stderr}\n{self._log_tail()}")

    def log_mark(self) -> int:
        """Where the server's log ends now (see :meth:`log_since`)."""
        try:
            return self.log.stat().st_size
        except OSError:
            return 0

    def log_since(self, mark: int) -> str:
        """What the server logged after ``mark``: e.g. a "deadlock detected" that a retry hid."""
        try:
            with open(self.log, "rb") as f:
                f.seek(mark)
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def _log_tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def start(self) -> PgCluster:
        self.socket_dir.mkdir()
        self.data.mkdir()
        if self.as_root:
            owner = pwd.getpwnam(_OWNER)
            for path in (self.root, self.data, self.socket_dir):
                os.chown(path, owner.pw_uid, owner.pw_gid)
            self.log.touch()
            os.chown(self.log, owner.pw_uid, owner.pw_gid)
        self._checked(self.bin / "initdb", "-D", self.data, "-U", self.user, "--auth=trust", "--encoding=UTF8",
                      "--locale=C", "--no-sync")
        self.restart_server()
        atexit.register(self.stop)
        return self

    def restart_server(self) -> None:
        """Start the server on the existing data directory (also after :meth:`kill`)."""
        options = (f"-k {self.socket_dir} -c listen_addresses='' -c max_connections=200 "
                   "-c shared_buffers=32MB -c max_locks_per_transaction=128")
        self._checked(self.bin / "pg_ctl", "-D", self.data, "-l", self.log, "-o", options, "-w", "-t", "60", "start")
        self.running = True

    def kill(self) -> None:
        """Stop the server at once (``immediate``: like a crash; the WAL brings it back)."""
        self._run(self.bin / "pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")
        self.running = False

    def stop(self) -> None:
        if self.running:
            self._run(self.bin / "pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")
            self.running = False
        shutil.rmtree(self.root, ignore_errors=True)

    # -- databases ----------------------------------------------------------------------------
    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@/{database}?host={self.socket_dir}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        import psycopg

        with psycopg.connect(self.url(database), autocommit=True) as conn:
            cur = conn.execute(sql)
            return "" if cur.description is None else "\n".join("|".join(map(str, r)) for r in cur.fetchall())

    def new_database(self, stem: str = "t") -> str:
        """A fresh, empty database; its URL."""
        name = f"{stem}_{os.getpid()}_{next(_counter)}"
        self.psql(f'CREATE DATABASE "{name}"')
        return self.url(name)
