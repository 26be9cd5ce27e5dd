"""Pausing Python's cyclic garbage collector while a bulk decision runs.

A 10,000-item bulk keeps every item's outcome until it answers, so the objects it makes
survive collection after collection, and the collector walks them again and again: ~5 us of
a ~70 us item on SQLite (measured with tests/perf). Nothing a decision makes is cyclic
garbage (reference counting frees what it drops), so the pause loses nothing; collection
resumes when the last bulk running in the process ends, and catches up then. The pause is
process-wide (the collector is), so calls that overlap in threads share one.
"""
from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_pausers = 0
#: whether the collector was on when the first overlapping pause began (left off otherwise)
_was_enabled = False


@contextmanager
def collection_paused() -> Iterator[None]:
    global _pausers, _was_enabled
    with _lock:
        if _pausers == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _pausers += 1
    try:
        yield
    finally:
        with _lock:
            _pausers -= 1
            if _pausers == 0 and _was_enabled:
                gc.enable()
