"""Taking queued executions and advancing them (used by CLI commands, the console and
`signoff worker`)."""
from __future__ import annotations

from typing import Iterable

from engine.runtime import work
from engine.runtime.runner import ExecutionRun


def drive(engine, execution_ids: Iterable[str] | None = None, *, max_rounds: int = 1000) -> int:
    """Advance the given executions (or any claimable ones) as far as they go.

    An execution whose lease is held by a live process is left to that process. Returns how
    many advances ran."""
    advanced = 0
    targets = list(dict.fromkeys(execution_ids)) if execution_ids is not None else None
    for _ in range(max_rounds):
        batch = targets if targets is not None else work.claimable(engine.db.connection(), engine.clock, 100)
        if not batch:
            return advanced
        again: list[str] = []
        for execution_id in batch:
            with engine.db.write() as tx:
                gen = work.try_claim(tx, execution_id, engine.owner, engine.clock)
            if gen is None:
                continue
            more = ExecutionRun(engine, execution_id, engine.owner, gen).advance()
            advanced += 1
            if more:
                again.append(execution_id)
        if targets is not None:
            targets = again
        elif not again and advanced == 0:
            return advanced
    return advanced
