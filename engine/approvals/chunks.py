"""Running a bulk decision's chunks: one after another, or two at a time on PostgreSQL.

Each chunk is its own transaction (engine.service.ApprovalService.decide). On PostgreSQL a
chunk spends about a third of its time waiting for the server (its pipelines, its COMMIT),
during which this process's Python could be preparing the next chunk; with two chunks in flight
on two connections, a 10,000-item bulk overlaps the two (engine.store.pg). Two chunks never
deadlock: each locks its work rows in execution-id order, then its own requests (the ids of one
call are distinct), and a deadlock or serialization failure would be retried anyway.

Outcomes come back in the order of the ids. ``progress(done, total)`` is called as chunks finish,
in order; when it returns False no further chunk is started and the rest are reported as not
attempted. (With two in flight a chunk already running would still finish: callers that pass a
progress callback run one at a time, engine.service.ApprovalService.decide.)
"""
from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from signoff.engine.approvals import outcome as oc
from signoff.engine.approvals.outcome import Outcome


def run_chunks(chunks: list[list[str]], run: Callable[[list[str]], list[Outcome]], *,
               progress: Callable[[int, int], bool] | None = None, parallel: int = 1) -> list[Outcome]:
    """``run(chunk)`` decides one chunk in its own transaction and gives its outcomes."""
    total = sum(len(c) for c in chunks)
    outcomes: list[Outcome] = []
    if parallel <= 1 or len(chunks) < 2:
        for chunk in chunks:
            outcomes.extend(run(chunk))
            if progress is not None and progress(len(outcomes), total) is False:
                break
    else:
        stopped = False
        with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="signoff-bulk") as pool:
            pending: list[Future[list[Outcome]]] = []
            started = 0
            while started < len(chunks) and len(pending) < parallel:
                pending.append(pool.submit(run, chunks[started]))
                started += 1
            while pending:
                outcomes.extend(pending.pop(0).result())  # (an error is raised once the others end)
                if not stopped and progress is not None and progress(len(outcomes), total) is False:
                    stopped = True
                if not stopped and started < len(chunks):
                    pending.append(pool.submit(run, chunks[started]))
                    started += 1
    if len(outcomes) < total:  # (outcomes so far are those of the first chunks, in order)
        outcomes += oc.not_attempted([i for c in chunks for i in c][len(outcomes):])
    return outcomes
