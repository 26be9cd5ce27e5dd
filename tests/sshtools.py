"""Real OpenSSH for the signing tests and the benchmark: an `ssh-agent` on a private socket,
keys made by `ssh-keygen`, `ssh-add`, and `ssh-keygen -Y verify` (the auditor's check).

OpenSSH's client tools are installed by `.ci/run` where missing (CI runs it as root)."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path


def require_openssh() -> None:
    missing = [tool for tool in ("ssh-agent", "ssh-keygen", "ssh-add") if shutil.which(tool) is None]
    if missing:
        raise RuntimeError(f"OpenSSH client tools missing ({', '.join(missing)}): `apt-get install -y openssh-client`"
                           " (.ci/run does this)")


class SshAgent:
    """A real `ssh-agent -D` on a socket in a private temp dir; ``env`` points SSH_AUTH_SOCK at it."""

    def __init__(self) -> None:
        require_openssh()
        self.dir = Path(tempfile.mkdtemp(prefix="signoff-agent-"))
        self.sock = str(self.dir / "agent.sock")
        self.proc = subprocess.Popen(["ssh-agent", "-D", "-a", self.sock], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not os.path.exists(self.sock):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("ssh-agent did not start")
            time.sleep(0.01)

    @property
    def env(self) -> dict[str, str]:
        return {"SSH_AUTH_SOCK": self.sock}

    def add(self, private_key: Path) -> None:
        subprocess.run(["ssh-add", "-q", str(private_key)], env={**os.environ, **self.env}, check=True,
                       capture_output=True)

    def remove_all(self) -> None:
        subprocess.run(["ssh-add", "-D"], env={**os.environ, **self.env}, check=True, capture_output=True)

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def make_key(directory: Path, name: str, key_type: str = "ed25519", passphrase: str = "") -> Path:
    """A new key pair ``directory/name`` (+ ``.pub``) made by ssh-keygen; returns the private key's path."""
    require_openssh()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    args = ["ssh-keygen", "-q", "-t", key_type, "-N", passphrase, "-C", f"{name}@test", "-f", str(path)]
    if key_type == "rsa":
        args[4:4] = ["-b", "3072"]
    subprocess.run(args, check=True, capture_output=True)
    return path


def ssh_verify(allowed_signers: Path, principal: str, namespace: str, signature: Path, message: Path,
               verify_time: str | None = None) -> subprocess.CompletedProcess:
    """Stock `ssh-keygen -Y verify` (exit 0 and "Good ... signature" when it verifies)."""
    args = ["ssh-keygen", "-Y", "verify", "-f", str(allowed_signers), "-I", principal, "-n", namespace,
            "-s", str(signature)]
    if verify_time:
        args += ["-O", f"verify-time={verify_time}"]
    with open(message, "rb") as stdin:
        return subprocess.run(args, stdin=stdin, capture_output=True, text=True)
