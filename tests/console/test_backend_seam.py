"""The Backend Protocol is the console's whole door to the engine: both backends subclass it,
and its defaults cover what a backend has nothing to do for (no probing with getattr)."""
from __future__ import annotations

import ast
from datetime import timedelta
from pathlib import Path

from signoff.console.backend import FIRST_PAGE, Backend, LocalBackend
from signoff.console.remote import RemoteBackend

ROOT = Path(__file__).resolve().parents[2]


def test_both_backends_are_held_to_the_protocol() -> None:
    # explicit subclasses (issubclass() refuses Protocols with data members)
    assert Backend in LocalBackend.__mro__
    assert Backend in RemoteBackend.__mro__


def test_remote_defaults_do_nothing_and_send_nothing() -> None:
    # nothing listens on port 9 (discard): any traffic would raise ConnectionLost
    remote = RemoteBackend("http://127.0.0.1:9", "t0ken", check=False)
    try:
        remote.prefetch_pending(FIRST_PAGE)
        assert remote.take_prefetched(FIRST_PAGE) is None
        assert remote.tick_after_load is False
        remote.run_deferred_tick()
        remote.refresh_token()  # no token source: keeps the token it has
        assert remote._http.headers["Authorization"] == "Bearer t0ken"
    finally:
        remote.close()


def test_remote_refresh_token_reads_the_source_again() -> None:
    tokens = iter(["first", "second"])
    remote = RemoteBackend("http://127.0.0.1:9", "first", check=False, token_source=lambda: next(tokens))
    try:
        remote.refresh_token()
        remote.refresh_token()
        assert remote._http.headers["Authorization"] == "Bearer second"
        assert remote._http_once.headers["Authorization"] == "Bearer second"
    finally:
        remote.close()


def test_local_deferred_tick_runs_once(env) -> None:
    expiring = [r["id"] for r in env.pending() if r["flow_id"] == "payment"]
    env.clock.advance(timedelta(minutes=30))  # the payments' PT2H timeout has passed
    backend: Backend = env.backend
    backend.run_deferred_tick()  # nothing owed: no tick
    assert set(expiring) <= set(env.pending_ids())
    backend.tick_after_load = True
    backend.run_deferred_tick()
    assert backend.tick_after_load is False
    assert not set(expiring) & set(env.pending_ids())


def test_local_prefetch_is_taken_once_for_its_limit(env) -> None:
    env.backend.prefetch_pending(3)
    env.backend._prefetch[0].join(5)  # type: ignore[index]
    assert env.backend.take_prefetched(FIRST_PAGE) is None  # another limit: not these rows
    env.backend.prefetch_pending(3)
    env.backend._prefetch[0].join(5)  # type: ignore[index]
    seq, rows = env.backend.take_prefetched(3)
    assert seq == env.backend.last_change() and len(rows) == 3
    assert env.backend.take_prefetched(3) is None


def test_console_never_probes_the_backend() -> None:
    """No getattr/hasattr on a backend anywhere in the console: what it needs is in the Protocol."""
    offenders = []
    for path in sorted((ROOT / "console").rglob("*.py")):
        if path.name == "credentials.py":  # its `backend` is a keyring backend, not ours
            continue
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id in ("getattr", "hasattr") and node.args
                    and "backend" in ast.unparse(node.args[0])):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)}")
    assert offenders == []
