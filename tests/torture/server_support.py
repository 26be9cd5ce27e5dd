"""A real `signoff serve` subprocess for the torture tests (single-user mode: every valid token
may do everything; tokens issued with the real `signoff token issue`)."""
from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

from tests.support import wait_listening
from tests.torture.support import REPO, SIGNOFF, clean_env, signoff


def issue_token(data: Path, user: str) -> dict:
    """{"token": ..., "id": ...} for USER, from `signoff token issue USER --json`."""
    r = signoff("token", "issue", user, "--json", data_dir=data)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["token"].startswith("so_"), info
    return info


def revoke_token(data: Path, token_id: str) -> None:
    r = signoff("token", "revoke", token_id, data_dir=data)
    assert r.returncode == 0, r.stderr


class Serve:
    """`signoff serve --single-user --port 0` on 127.0.0.1 (``--policy FILE`` instead when
    ``policy`` is given), its output in a log file."""

    def __init__(self, data: Path, flows: Path, log_dir: Path, *, policy: Path | None = None,
                 database: str | None = None, extra: tuple[str, ...] = (), env: dict[str, str] | None = None,
                 prefix: tuple[str, ...] = ()) -> None:
        self.data = data
        #: a postgresql:// URL: this server is one replica on that database
        self.database = database
        self.extra = [*(("--database", database) if database else ()), *extra]
        self.env = dict(env or {})
        #: run through this command (e.g. under another host name: tests/test_heartbeat.py)
        self.prefix = list(prefix)
        self.flows = flows
        self.log_dir = log_dir
        self.mode = ["--policy", str(policy)] if policy is not None else ["--single-user"]
        self.proc: subprocess.Popen | None = None
        self.url = ""
        self.log_path: Path | None = None
        self.logs: list[Path] = []

    def start(self, timeout: float = 60) -> Serve:
        # named after the data directory: replicas sharing log_dir keep their own logs
        self.log_path = self.log_dir / f"serve-{self.data.name}-{len(self.logs)}.log"
        self.logs.append(self.log_path)
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen(
                [*self.prefix, *SIGNOFF, "serve", *self.mode, "--port", "0", "--data-dir", str(self.data),
                 "--flows", str(self.flows), "--log-level", "warning", *self.extra],
                env=clean_env(PYTHONUNBUFFERED="1", **self.env), cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL)
        self.url = wait_listening(self.proc, self.log_path, timeout=timeout)
        return self

    @property
    def log(self) -> str:
        return "".join(p.read_text() for p in self.logs if p.exists())

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.kill()
