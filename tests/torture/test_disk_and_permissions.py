"""A full disk and a read-only data directory (issue 6, "Corrupt and missing state"; the garbage,
truncated, newer and foreign database files are covered by tests/test_storage.py).

How the broken disks are made:

- Full disk: a 1 MiB tmpfs mounted on a temporary directory (``mount -t tmpfs -o size=1m``),
  so writes fail with ENOSPC exactly as on a full real disk, for every process and for SQLite's
  -wal/-shm files too. That needs root (CAP_SYS_ADMIN), which this sandbox and its CI have.
  Without it the test falls back to ``RLIMIT_FSIZE`` in the child (with SIGXFSZ ignored so the
  write fails with EFBIG instead of killing the process): a size-limited file rather than a
  full disk, which SQLite reports as an I/O error rather than "disk full", so the message
  check is looser there.
- Read-only data directory: a read-only bind mount (``mount --bind -o ro``) of a directory
  holding a real database (root ignores permission bits, so ``chmod`` proves nothing for root).
  Without the right to mount (an unprivileged CI user), a ``chmod 555`` directory.

Every mount is undone in the test's teardown.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.torture.support import REPO, db_snapshot, no_traceback, signoff

FLOWS = REPO / "tests" / "torture" / "corpus" / "_flows"
BIG_VALUE_CHARS = 100_000


def _mount(*args: str) -> bool:
    try:
        return subprocess.run(["mount", *args], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _umount(path: Path) -> None:
    for _ in range(20):
        if subprocess.run(["umount", str(path)], capture_output=True).returncode == 0:
            return
        subprocess.run(["sync"])
    subprocess.run(["umount", "-l", str(path)], capture_output=True)  # never leave a mount behind


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[bool]:
    """A size-limited tmpfs at ``path``; yields False (nothing mounted) when mounting is not allowed."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = _mount("-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path))
    try:
        yield mounted
    finally:
        if mounted:
            _umount(path)


@contextlib.contextmanager
def read_only_view(source: Path, view: Path) -> Iterator[dict]:
    """``view`` shows ``source`` read-only. Yields extra arguments for running the CLI against it
    (none today; kept so a fallback can add some)."""
    view.mkdir(parents=True, exist_ok=True)
    if _mount("--bind", "-o", "ro", str(source), str(view)):
        # some kernels ignore "ro" on the first bind: make sure it is read-only
        if os.access(view, os.W_OK):
            _mount("-o", "remount,bind,ro", str(view))
        try:
            assert not os.access(view, os.W_OK), "the bind mount is still writable"
            yield {}
        finally:
            _umount(view)
        return
    # fallback: a plain directory without write permission, used by someone who is not root
    view.rmdir()
    view.symlink_to(source, target_is_directory=True)
    mode = source.stat().st_mode
    for p in [source, *source.rglob("*")]:
        if p.is_dir():
            p.chmod(0o555)
    try:
        # root ignores permission bits: a root run that may not mount fails here rather than
        # pretending (the venv's python usually lives under /root, so dropping to another uid
        # is no way out either)
        assert os.geteuid() != 0, "running as root without the right to mount: cannot make a read-only directory"
        yield {}
    finally:
        for p in [source, *source.rglob("*")]:
            if p.is_dir():
                p.chmod(0o755)
        source.chmod(mode)


def fingerprint(path: Path) -> tuple[int, str]:
    data = path.read_bytes()
    return len(data), hashlib.sha256(data).hexdigest()


def listing(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir())


def _read_only(data: Path) -> sqlite3.Connection:
    """A reading connection that never checkpoints (so it cannot repair what it looks at)."""
    return sqlite3.connect(f"{(data / 'signoff.db').resolve().as_uri()}?mode=ro", uri=True, timeout=30)


def integrity(data: Path) -> str:
    conn = _read_only(data)
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()


def kv_values(data: Path) -> dict[str, str]:
    conn = _read_only(data)
    try:
        return {k: v for k, v in conn.execute("SELECT key, value FROM kv")}
    finally:
        conn.close()


def make_db(data: Path) -> str:
    """A real database: one execution waiting at its Pause, one kv key. Returns the request id."""
    import json

    r = signoff("run", "torture.corpus", "typed", "--json", data_dir=data, flows=FLOWS)
    assert r.returncode == 0, r.stderr
    r2 = signoff("kv", "set", "FIRST", "kept", data_dir=data, flows=FLOWS)
    assert r2.returncode == 0, r2.stderr
    return json.loads(r.stdout)["requests"][0]["id"]


# -- full disk --------------------------------------------------------------------------------


def _no_space_limits(limit_bytes: int):
    import resource

    def apply() -> None:  # in the child, before exec
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))
    return apply


def test_full_disk_gives_a_clear_message_and_keeps_the_database(tmp_path: Path) -> None:
    disk = tmp_path / "disk"
    with tmpfs(disk, "1m") as mounted:
        data = disk / "data"
        request_id = make_db(data)
        extra: dict = {}
        if not mounted:  # see the module docstring
            extra["preexec_fn"] = _no_space_limits((data / "signoff.db").stat().st_size + 400_000)
        acked: dict[str, str] = {"FIRST": '"kept"'}
        refused: list[str] = []
        messages: list[str] = []
        # keep writing 100 KB values, each its own process, until the disk is full; then a few more
        # writes of different kinds, each of which must also be refused cleanly
        for i in range(40):
            key = f"BIG{i}"
            value = chr(ord("a") + i % 26) * BIG_VALUE_CHARS
            r = signoff("kv", "set", key, value, data_dir=data, flows=FLOWS, **extra)
            no_traceback(r)
            if r.returncode == 0:
                assert not refused, "a write succeeded after the disk was full (did space come back?)"
                acked[key] = f'"{value}"'
                continue
            refused.append(key)
            messages.append(r.stderr)
            assert r.returncode == 2, r.stderr
            if len(refused) >= 3:
                break
        assert refused, "the disk never filled up"
        for args in (("run", "torture.corpus", "typed"), ("approve", request_id), ("worker", "--once")):
            r = signoff(*args, data_dir=data, flows=FLOWS, **extra)
            no_traceback(r)
            if r.returncode != 0:
                assert r.returncode == 2, (args, r.returncode, r.stderr)
                messages.append(r.stderr)

        # the database is intact: every acknowledged write is there in full, no refused one is
        assert integrity(data) == "ok"
        stored = kv_values(data)
        for key, value in acked.items():
            assert stored.get(key) == value, f"acknowledged {key} is missing or cut"
        for key in refused:
            assert key not in stored, f"refused {key} was half-written"

        # free the space: signoff works again on the same file, with the earlier data
        if mounted:
            # make room by growing the tmpfs (as freeing space on a real disk would)
            assert _mount("-o", "remount,size=16m", str(disk)), "cannot grow the tmpfs"
        else:
            extra = {}
        r = signoff("pending", "--json", data_dir=data, flows=FLOWS, **extra)
        no_traceback(r)
        assert r.returncode == 0, f"after freeing space, the intact database is refused: {r.stderr.strip()}"
        assert request_id in r.stdout
        r = signoff("kv", "set", "AFTER", "ok", data_dir=data, flows=FLOWS, **extra)
        assert r.returncode == 0, r.stderr
        r = signoff("audit", "verify", data_dir=data, flows=FLOWS, **extra)
        assert r.returncode == 0, r.stdout + r.stderr
        assert integrity(data) == "ok"

        # last, so a wrong message does not hide the state of the data above
        db = data / "signoff.db"
        for message in messages:
            assert str(db) in message, message
            if mounted:
                # the truth, not a scare: the file is fine, the disk is full
                assert "no space left" in message, f"a full disk reported as: {message.strip()}"
                assert "damaged" not in message and "malformed" not in message, message
            assert len(message.strip().splitlines()) <= 3, message


def test_full_disk_before_the_database_exists(tmp_path: Path) -> None:
    """A data directory on a disk too full to create the database: a message, no stray files
    that a later start would mistake for a damaged database."""
    disk = tmp_path / "disk"
    with tmpfs(disk, "64k") as mounted:
        data = disk / "data"
        data.mkdir()
        filler = disk / "filler"
        if mounted:
            with open(filler, "wb", buffering=0) as fh:  # fill the disk completely
                try:
                    while True:
                        fh.write(b"\0" * 4096)
                except OSError:
                    pass
            extra: dict = {}
        else:
            extra = {"preexec_fn": _no_space_limits(0)}
        r = signoff("pending", data_dir=data, flows=FLOWS, **extra)
        no_traceback(r)
        assert r.returncode == 2, r
        assert str(data) in r.stderr, r.stderr
        if mounted:
            assert "no space left" in r.stderr, r.stderr
        # once there is room, the same directory works
        if mounted:
            filler.unlink()
            assert _mount("-o", "remount,size=16m", str(disk)), "cannot grow the tmpfs"
        r = signoff("run", "torture.corpus", "typed", "--json", data_dir=data, flows=FLOWS)
        no_traceback(r)
        assert r.returncode == 0, f"after freeing space: {r.stderr.strip()}"


# -- read-only data directory ----------------------------------------------------------------------

READ_ONLY_COMMANDS = [
    ("pending",),
    ("executions", "list"),
    ("run", "torture.corpus", "typed"),
    ("approve", "{request}"),
    ("kv", "set", "K", "V"),
    ("worker", "--once"),
    ("audit", "verify"),
]


@pytest.fixture
def read_only_data(tmp_path: Path):
    source = tmp_path / "source"
    data = source / "data"
    request_id = make_db(data)
    before = db_snapshot(data)
    view = tmp_path / "view"
    with read_only_view(source, view) as extra:
        yield view / "data", data, request_id, before, extra


@pytest.mark.parametrize("args", READ_ONLY_COMMANDS, ids=lambda a: " ".join(a))
def test_read_only_data_directory(read_only_data, args: tuple[str, ...]) -> None:
    view, data, request_id, before, extra = read_only_data
    db = data / "signoff.db"
    prints = fingerprint(db)
    files = listing(data)
    r = signoff(*[a.replace("{request}", request_id) for a in args], data_dir=view, flows=FLOWS, **extra)
    no_traceback(r)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert str(view / "signoff.db") in r.stderr or str(view) in r.stderr, r.stderr
    assert "read-only" in r.stderr or "not writable" in r.stderr, \
        f"a read-only directory reported as: {r.stderr.strip()}"
    assert len(r.stderr.strip().splitlines()) <= 3, r.stderr
    assert fingerprint(db) == prints, "the database file changed"
    assert listing(data) == files, "files appeared next to the database"
    assert db_snapshot(data) == before


def test_read_only_directory_without_a_database(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    with read_only_view(source, tmp_path / "view") as extra:
        for data in (tmp_path / "view", tmp_path / "view" / "data"):
            r = signoff("pending", data_dir=data, flows=FLOWS, **extra)
            no_traceback(r)
            assert r.returncode == 2, r
            assert str(data) in r.stderr, r.stderr
            assert "Read-only" in r.stderr or "read-only" in r.stderr or "not writable" in r.stderr, r.stderr
    assert list(source.iterdir()) == []
