"""A real `signoff serve` in a subprocess for tests: free port on 127.0.0.1, temp data dir,
tokens issued with `signoff token issue`, /healthz polled until it answers.

Also a throw-away CA and server certificate (for the TLS tests) and the environment the
subprocesses get (a private config dir, the test keyring backend).
"""
from __future__ import annotations

import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx

from tests.support import SIGNOFF, clean_env

HERE = Path(__file__).parent
FLOWS = HERE / "flows"
POLICY = HERE / "policy.yaml"
REPO = HERE.parent.parent
#: the namespace of the contract flows
NS = "contract.tests"
TOKEN_RE = re.compile(r"so_[0-9a-z]{12}_[A-Za-z0-9_-]{20,100}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def signoff_cmd(*args: str) -> list[str]:
    """Run the `signoff` command line of this checkout with this interpreter."""
    return [*SIGNOFF, *args]


def child_env(config_dir: Path, **extra: str) -> dict[str, str]:
    """A clean environment (tests/support.py) with a private config dir, then ``extra`` (the
    keyring tests pass their PYTHON_KEYRING_BACKEND and SIGNOFF_TEST_KEYRING here)."""
    return clean_env(**{"SIGNOFF_CONFIG_DIR": str(config_dir), "PYTHONUNBUFFERED": "1", **extra})


def run_cli(*args: str, env: dict[str, str], input: str | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(signoff_cmd(*args), env=env, input=input, capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)


class ServerProcess:
    """`signoff serve` on 127.0.0.1; ``start()`` waits for /healthz, ``stop()`` sends SIGTERM."""

    def __init__(self, workdir: Path, *, policy: Path | None = POLICY, flows: Path = FLOWS,
                 port: int | None = None, tls: tuple[Path, Path] | None = None, ca_cert: Path | None = None,
                 extra_args: tuple[str, ...] = (), database: str | None = None) -> None:
        self.workdir = Path(workdir)
        #: a postgresql:// URL (the tests' throwaway cluster), else the SQLite file in data_dir
        self.database = database
        self.data_dir = self.workdir / "data"
        self.config_dir = self.workdir / "config"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.config_dir.mkdir(parents=True, exist_ok=True)
        self.policy = policy
        self.flows = flows
        self.port = port or free_port()
        self.tls = tls
        #: the CA that signed the TLS certificate (to poll /healthz over https)
        self.ca_cert = ca_cert
        self.extra_args = tuple(extra_args)
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.workdir / "server.log"
        self.env = child_env(self.config_dir)

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def common(self) -> list[str]:
        args = ["--data-dir", str(self.data_dir), "--flows", str(self.flows)]
        if self.database is not None:
            args += ["--database", self.database]
        if self.policy is not None:
            args += ["--policy", str(self.policy)]
        return args

    def command(self) -> list[str]:
        args = ["serve", "--host", "127.0.0.1", "--port", str(self.port), *self.common()]
        if self.policy is None:
            args.append("--single-user")
        if self.tls:
            args += ["--tls-cert", str(self.tls[0]), "--tls-key", str(self.tls[1])]
        return signoff_cmd(*args, *self.extra_args)

    def start(self, timeout: float = 30.0) -> ServerProcess:
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.command(), env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                     cwd=REPO, start_new_session=True)
        log.close()
        self.wait_healthy(timeout)
        return self

    def wait_healthy(self, timeout: float = 30.0) -> None:
        end = time.monotonic() + timeout
        verify: object = True
        if self.tls:
            import ssl

            verify = ssl.create_default_context(cafile=str(self.ca_cert))
        while time.monotonic() < end:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"signoff serve exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1.0, verify=verify).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"signoff serve did not answer /healthz within {timeout}s:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def issue_token(self, user: str, *extra: str) -> str:
        done = run_cli("token", "issue", user, *self.common(), *extra, env=self.env)
        found = TOKEN_RE.search(done.stdout)
        if done.returncode != 0 or not found:
            raise RuntimeError(f"`signoff token issue {user}` failed ({done.returncode}):\n{done.stdout}{done.stderr}")
        return found.group(0)

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
            self.proc.kill()
            self.proc.wait(15)

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def make_certs(directory: Path) -> tuple[Path, Path, Path]:
    """A throw-away CA and a certificate for 127.0.0.1/localhost signed by it:
    (ca.pem, server-cert.pem, server-key.pem)."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "signoff test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
          .not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    ca_path, cert_path, key_path = directory / "ca.pem", directory / "server-cert.pem", directory / "server-key.pem"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return ca_path, cert_path, key_path
