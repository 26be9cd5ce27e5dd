"""`signoff serve --socket` on its own (issue 12): the refusals before anything listens, the
socket file's life, TCP and the socket side by side, systemd socket activation with the
shipped units (deploy/systemd), and clients that cannot reach a socket. The accounts-based
tests are in tests/test_shared_box.py."""
from __future__ import annotations

import configparser
import os
import shlex
import shutil
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.contract.server import FLOWS, POLICY
from tests.socket_server import SocketServer, healthy
from tests.support import REPO, SIGNOFF, clean_env

UNITS = REPO / "deploy" / "systemd"


def serve(tmp_path: Path, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SIGNOFF, "serve", "--flows", str(FLOWS), "--policy", str(POLICY), *args],
                          env=clean_env(SIGNOFF_CONFIG_DIR=str(tmp_path / "config")), capture_output=True,
                          text=True, timeout=timeout, cwd=REPO)


def client(path: Path) -> httpx.Client:
    return httpx.Client(transport=httpx.HTTPTransport(uds=str(path)), base_url="http://localhost", timeout=10)


def test_refuses_a_data_dir_others_can_write(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    data.chmod(0o770)
    done = serve(tmp_path, "--data-dir", str(data), "--socket", str(tmp_path / "s.sock"))
    assert done.returncode == 2
    assert "writable by its group (mode 0770)" in done.stderr and f"chmod 700 {data}" in done.stderr
    data.chmod(0o777)
    done = serve(tmp_path, "--data-dir", str(data), "--port", "0")  # TCP too: the same rule
    assert done.returncode == 2 and "group and others" in done.stderr
    assert not (tmp_path / "s.sock").exists() and not (data / "signoff.db").exists()


def test_refuses_database_files_others_can_read(tmp_path):
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    (data / "signoff.db").touch()
    (data / "signoff.db").chmod(0o644)
    done = serve(tmp_path, "--data-dir", str(data), "--socket", str(tmp_path / "s.sock"))
    assert done.returncode == 2
    assert "mode 0644" in done.stderr and f"chmod 600 {data}/signoff.db*" in done.stderr


@pytest.mark.parametrize(("args", "message"), [
    (("--socket-group", "root"), "--socket-group needs --socket PATH"),
    (("--socket", "{tmp}/s.sock", "--tls-cert", "{tmp}/c", "--tls-key", "{tmp}/k"),
     "are for the TCP listener; give --host/--port too"),
    (("--socket", "{tmp}/missing/s.sock"), "the directory {tmp}/missing does not exist"),
    (("--socket", "{tmp}/s.sock", "--socket-group", "no-such-group-so12"), "no such group"),
    (("--socket", "{tmp}/file"), "exists and is not a socket"),
])
def test_refusals(tmp_path, args, message):
    (tmp_path / "file").write_text("mine")
    (tmp_path / "c").write_text("x")
    (tmp_path / "k").write_text("x")
    done = serve(tmp_path, "--data-dir", str(tmp_path / "data"), *(a.format(tmp=tmp_path) for a in args))
    assert done.returncode == 2, done.stderr
    assert message.format(tmp=tmp_path) in done.stderr
    assert "Traceback" not in done.stderr
    assert (tmp_path / "file").read_text() == "mine"


def test_socket_life_stale_live_and_removed_on_stop(tmp_path):
    path = tmp_path / "s.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()  # a socket file nobody listens on, as after a crash
    server = SocketServer(path, tmp_path / "data", flows=FLOWS, policy=POLICY, log_path=tmp_path / "log")
    server.start()
    try:
        assert stat.S_IMODE(path.stat().st_mode) == 0o666
        second = serve(tmp_path, "--data-dir", str(tmp_path / "other"), "--socket", str(path))
        assert second.returncode == 2 and "another server is already listening" in second.stderr
        assert healthy(path)
    finally:
        assert server.stop() == 0
    assert not path.exists()


def test_socket_and_tcp_side_by_side(tmp_path):
    from tests.support import wait_listening

    path = tmp_path / "s.sock"
    log = tmp_path / "log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([*SIGNOFF, "serve", "--flows", str(FLOWS), "--policy", str(POLICY), "--data-dir",
                                 str(tmp_path / "data"), "--socket", str(path), "--port", "0",
                                 "--socket-group", "root"],
                                env=clean_env(SIGNOFF_CONFIG_DIR=str(tmp_path / "c")), stdout=out,
                                stderr=subprocess.STDOUT, cwd=REPO)
    try:
        url = wait_listening(proc, log)
        assert f"listening on {url} and unix:{path}" in log.read_text()
        assert stat.S_IMODE(path.stat().st_mode) == 0o660 and path.stat().st_gid == 0
        assert httpx.get(url + "/api/v1/me").status_code == 401  # TCP still wants a token
        with client(path) as c:
            me = c.get("/api/v1/me")
            # the test runs as root, whom the contract policy does not name: a clear refusal
            assert me.status_code == 403 and "has no role" in me.json()["detail"]
            assert "uid 0" in me.json()["detail"]
    finally:
        proc.terminate()
        assert proc.wait(30) == 0


def test_socket_beside_a_tls_listener(tmp_path):
    """TLS applies to the TCP listener only; the socket beside it speaks plain HTTP."""
    from tests.contract.server import make_certs
    from tests.support import wait_listening

    ca, cert, key = make_certs(tmp_path / "tls")
    path = tmp_path / "s.sock"
    log = tmp_path / "log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([*SIGNOFF, "serve", "--flows", str(FLOWS), "--policy", str(POLICY), "--data-dir",
                                 str(tmp_path / "data"), "--socket", str(path), "--port", "0",
                                 "--tls-cert", str(cert), "--tls-key", str(key)],
                                env=clean_env(SIGNOFF_CONFIG_DIR=str(tmp_path / "c")), stdout=out,
                                stderr=subprocess.STDOUT, cwd=REPO)
    try:
        import ssl

        url = wait_listening(proc, log, verify=ssl.create_default_context(cafile=str(ca)))
        assert url.startswith("https://") and f"and unix:{path}" in log.read_text()
        assert httpx.get(url + "/api/v1/me", verify=ssl.create_default_context(cafile=str(ca))).status_code == 401
        with client(path) as c:
            assert c.get("/healthz").status_code == 200
            assert c.get("/api/v1/me").status_code == 403  # root has no role in the contract policy
    finally:
        proc.terminate()
        assert proc.wait(30) == 0, log.read_text()
    assert not path.exists()


def test_clients_without_a_server_get_a_clear_message(tmp_path):
    env = clean_env(SIGNOFF_CONFIG_DIR=str(tmp_path), SIGNOFF_SOCKET=str(tmp_path / "none.sock"))
    done = subprocess.run([*SIGNOFF, "pending"], env=env, capture_output=True, text=True, cwd=REPO, timeout=60)
    assert done.returncode == 1
    assert f"cannot reach the local server ({tmp_path}/none.sock)" in done.stderr
    assert "signoff serve --socket" in done.stderr and "Traceback" not in done.stderr
    # a socket nobody listens on (the server stopped)
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(str(tmp_path / "dead.sock"))
    dead.close()
    done = subprocess.run([*SIGNOFF, "--socket", str(tmp_path / "dead.sock"), "pending"], env=env,
                          capture_output=True, text=True, cwd=REPO, timeout=60)
    assert done.returncode == 1 and "not running" in done.stderr
    both = subprocess.run([*SIGNOFF, "--socket", "x", "--server", "http://127.0.0.1:1", "pending"], env=env,
                          capture_output=True, text=True, cwd=REPO, timeout=60)
    assert both.returncode == 2 and "not both" in both.stderr


def test_worker_refuses_to_run_beside_a_local_server(tmp_path):
    env = clean_env(SIGNOFF_CONFIG_DIR=str(tmp_path), SIGNOFF_SOCKET=str(tmp_path / "s.sock"))
    done = subprocess.run([*SIGNOFF, "worker", "--once"], env=env, capture_output=True, text=True, cwd=REPO,
                          timeout=60)
    assert done.returncode == 2 and "embedded engine only" in done.stderr


# -- the shipped systemd units ---------------------------------------------------------------------


def _unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(UNITS / name)
    return parser


def test_units_pass_systemd_analyze(tmp_path):
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is part of systemd; .ci/run installs it"
    text = (UNITS / "signoff.service").read_text().replace("/opt/signoff/venv/bin/signoff",
                                                           str(Path(sys.prefix) / "bin" / "signoff"))
    (tmp_path / "signoff.service").write_text(text)
    shutil.copy(UNITS / "signoff.socket", tmp_path / "signoff.socket")
    done = subprocess.run([analyze, "verify", "--man=no", str(tmp_path / "signoff.socket"),
                           str(tmp_path / "signoff.service")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Unknown" not in done.stderr, done.stderr


def test_tmpfiles_line_makes_the_directories(tmp_path):
    tmpfiles = shutil.which("systemd-tmpfiles")
    assert tmpfiles, "systemd-tmpfiles is part of systemd; .ci/run installs it"
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    uid = os.getuid()
    # the fake root's own account database: `signoff` is the test's own uid there
    (root / "etc" / "passwd").write_text(f"root:x:0:0::/root:/bin/sh\n"
                                         f"signoff:x:{uid}:{uid}::/var/lib/signoff:/bin/false\n")
    (root / "etc" / "group").write_text(f"root:x:0:\nsignoff:x:{uid}:\n")
    done = subprocess.run([tmpfiles, "--create", f"--root={root}", str(UNITS / "signoff.tmpfiles.conf")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE((root / "run" / "signoff").stat().st_mode) == 0o755
    assert stat.S_IMODE((root / "var" / "lib" / "signoff").stat().st_mode) == 0o700


def test_socket_activation_with_the_shipped_units(tmp_path):
    """systemd-socket-activate (systemd's own tool) listens where signoff.socket says and
    starts the service's ExecStart with the socket as fd 3; paths are moved into tmp_path."""
    activate = shutil.which("systemd-socket-activate")
    assert activate, "systemd-socket-activate is part of systemd; .ci/run installs it"
    listen = _unit("signoff.socket")["Socket"]["ListenStream"]
    exec_start = shlex.split(_unit("signoff.service")["Service"]["ExecStart"])
    assert exec_start[0] == "/opt/signoff/venv/bin/signoff" and listen in exec_start
    moved = {"/run/signoff": str(tmp_path / "run"), "/var/lib/signoff": str(tmp_path / "lib"),
             "/etc/signoff": str(tmp_path / "etc")}

    def move(arg: str) -> str:
        for old, new in moved.items():
            arg = arg.replace(old, new)
        return arg

    (tmp_path / "run").mkdir()
    (tmp_path / "etc").mkdir()
    shutil.copytree(FLOWS, tmp_path / "etc" / "flows")
    shutil.copy(POLICY, tmp_path / "etc" / "policy.yaml")
    path = Path(move(listen))
    command = [*SIGNOFF, *[move(a) for a in exec_start[1:]]]
    log = tmp_path / "log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([activate, "-l", str(path), *command], stdout=out, stderr=subprocess.STDOUT,
                                env=clean_env(SIGNOFF_CONFIG_DIR=str(tmp_path / "c")), cwd=REPO)
    try:
        deadline = time.monotonic() + 30
        while not path.exists():
            assert time.monotonic() < deadline and proc.poll() is None, log.read_text()
            time.sleep(0.05)
        with client(path) as c:  # the first connection starts the server
            answer = c.get("/healthz", timeout=30)
        assert answer.status_code == 200, log.read_text()
        assert f"listening on unix:{path}" in log.read_text()
        assert stat.S_IMODE((tmp_path / "lib").stat().st_mode) == 0o700
        assert stat.S_IMODE((tmp_path / "lib" / "signoff.db").stat().st_mode) == 0o600
    finally:
        proc.terminate()
        proc.wait(30)
