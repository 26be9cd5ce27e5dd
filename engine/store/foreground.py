"""Person-facing work first: background advances wait while someone's writes are going.

A bulk decision someone is waiting for and the runner continuing the executions it decided
want the same CPU and the same database. Within one process, the runner waits (at most
``max_wait`` seconds per chunk, so it is never starved) while a thread of the process has
foreground writes going: on SQLite this is also what gets the foreground the write lock first,
since SQLite's lock is not fair. With several ``signoff serve`` replicas on PostgreSQL, a
large bulk decision marks itself to every replica (engine.store.pg ``BULK_LOCK``, a shared
advisory lock held while it runs, released by the server if the replica dies), and their
runners wait the same way: on a shared host three runners
continuing the first chunks' executions made a 10,000-item bulk through one replica take
8.7 s instead of 4.9 s. The continuations run right after, or after ``max_wait``.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class ForegroundGate:
    """This process's count of foreground writes, and the wait background work does on it."""

    def __init__(self) -> None:
        self._count = 0
        self._done = threading.Condition()
        self._local = threading.local()

    @contextmanager
    def foreground(self) -> Iterator[None]:
        with self._done:
            self._count += 1
        self._local.depth = getattr(self._local, "depth", 0) + 1
        try:
            yield
        finally:
            self._local.depth -= 1
            with self._done:
                self._count -= 1
                if not self._count:
                    self._done.notify_all()

    def in_foreground(self) -> bool:
        """This thread is doing foreground work itself (it never waits for itself)."""
        return bool(getattr(self._local, "depth", 0))

    def wait(self, max_wait: float, elsewhere: Callable[[], bool] | None = None) -> None:
        """Wait while this process has foreground work, or while ``elsewhere()`` says another
        process has, for at most ``max_wait`` seconds in all."""
        if self.in_foreground():
            return
        deadline = time.monotonic() + max_wait
        with self._done:
            self._done.wait_for(lambda: not self._count, timeout=max_wait)
        if elsewhere is None:
            return
        while time.monotonic() < deadline and elsewhere():
            time.sleep(min(_POLL_S, max(0.0, deadline - time.monotonic())))


#: how often a waiting runner asks again whether another replica's bulk is still going
_POLL_S = 0.05
#: a bulk decision of more items than this marks itself to every replica (PostgreSQL)
BULK_ITEMS = 500
