"""A real `signoff serve --socket PATH` in a subprocess for tests, optionally run as another OS
account (tests/accounts.py); ``start()`` waits until /healthz answers on the socket."""
from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import httpx

from tests.support import REPO, SIGNOFF, clean_env


def healthy(socket_path: Path) -> bool:
    try:
        with httpx.Client(transport=httpx.HTTPTransport(uds=str(socket_path)), timeout=2.0) as client:
            return client.get("http://localhost/healthz").status_code == 200
    except httpx.HTTPError:
        return False


class SocketServer:
    """`signoff serve --socket` on ``socket_path`` (``prefix``: e.g. setpriv as the service account)."""

    def __init__(self, socket_path: Path, data_dir: Path, *, flows: Path, policy: Path | None,
                 log_path: Path, prefix: list[str] | None = None, env: dict[str, str] | None = None,
                 extra_args: tuple[str, ...] = ()) -> None:
        self.socket_path = Path(socket_path)
        self.data_dir = Path(data_dir)
        self.flows = flows
        self.policy = policy
        self.log_path = Path(log_path)
        self.prefix = list(prefix or [])
        self.env = env or clean_env()
        self.extra_args = tuple(extra_args)
        self.proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        args = ["serve", "--socket", str(self.socket_path), "--data-dir", str(self.data_dir),
                "--flows", str(self.flows), "--log-level", "warning"]
        args += ["--policy", str(self.policy)] if self.policy is not None else ["--single-user"]
        return [*self.prefix, *SIGNOFF, *args, *self.extra_args]

    def start(self, timeout: float = 30.0) -> SocketServer:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.command(), env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                         cwd=REPO, start_new_session=True)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"signoff serve exited with {self.proc.returncode}:\n{self.log()}")
            if self.socket_path.exists() and healthy(self.socket_path):
                return self
            time.sleep(0.05)
        raise RuntimeError(f"signoff serve did not answer on {self.socket_path} within {timeout}s:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def stop(self, timeout: float = 15.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(15)
