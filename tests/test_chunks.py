"""A bulk decision's chunks (engine.approvals.chunks): two in flight give the outcomes in the
ids' order, each chunk run once; a stop leaves the later chunks not attempted."""
from __future__ import annotations

import threading

from signoff.engine.approvals.chunks import run_chunks
from signoff.engine.approvals.outcome import Outcome


def test_two_in_flight_keep_the_order_and_run_each_chunk_once() -> None:
    chunks = [[f"r{c}-{i}" for i in range(3)] for c in range(7)]
    ran: list[int] = []
    threads: set[str] = set()
    lock = threading.Lock()

    def run(chunk: list[str]) -> list[Outcome]:
        with lock:
            ran.append(chunks.index(chunk))
            threads.add(threading.current_thread().name)
        return [Outcome(i, "decided", "ok") for i in chunk]

    outcomes = run_chunks(chunks, run, parallel=2)
    assert [o.id for o in outcomes] == [i for c in chunks for i in c]
    assert sorted(ran) == list(range(7))
    assert all(name.startswith("signoff-bulk") for name in threads)


def test_a_stop_reports_the_rest_as_not_attempted() -> None:
    chunks = [["a", "b"], ["c"], ["d", "e"]]
    ran: list[list[str]] = []

    def run(chunk: list[str]) -> list[Outcome]:
        ran.append(chunk)
        return [Outcome(i, "decided", "ok") for i in chunk]

    outcomes = run_chunks(chunks, run, progress=lambda done, total: done < 2)
    assert ran == [["a", "b"]]
    assert [(o.id, o.outcome) for o in outcomes] == [("a", "decided"), ("b", "decided"), ("c", "skipped"),
                                                       ("d", "skipped"), ("e", "skipped")]
