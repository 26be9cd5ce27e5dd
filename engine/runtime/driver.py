"""Taking queued executions and advancing them (used by CLI commands, the console and
`signoff worker`)."""
from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from signoff.engine.runtime import work
from signoff.engine.runtime.runner import ExecutionRun
from signoff.engine.store.locks import is_pg

if TYPE_CHECKING:
    from signoff.engine.core import Engine

#: executions claimed and advanced per durable commit (performance: one fsync per chunk
#: instead of two per execution; bounded so the write lock is never held for long)
CHUNK = 100


def drive(engine: Engine, execution_ids: Iterable[str] | None = None, *, max_rounds: int = 1000) -> int:
    """Advance the given executions (or any claimable ones) as far as they go.

    An execution whose lease is held by a live process is left to that process. Returns how
    many advances ran."""
    advanced = 0
    targets = list(dict.fromkeys(execution_ids)) if execution_ids is not None else None
    pg = is_pg(engine.db)
    for _ in range(max_rounds):
        # PostgreSQL, for FULL_SCAN_EVERY_S after a full look found work: list and lock free
        # rows in the transaction that advances them (work.free_locked); otherwise (idle, or
        # that long since) the full look, leases of dead owners too, as on SQLite
        found_at = engine.work_found_at
        if targets is None and pg and found_at is not None and time.monotonic() - found_at < work.FULL_SCAN_EVERY_S:
            took = _advance_chunk(engine, None, [])  # (what is queued again is found next round)
            if took:
                advanced += took
                continue
            if took is None:  # nothing free (dead owners' leases: at the next full look)
                return advanced
            # 0: rows were free by their expiry but none could be taken: look further
        if targets is None:
            engine.work_found_at = None
        batch = targets if targets is not None else work.claimable(engine.db.connection(), engine.clock, CHUNK)
        if not batch:
            return advanced
        again: list[str] = []
        round_advanced = 0
        for start in range(0, len(batch), CHUNK):
            round_advanced += _advance_chunk(engine, batch[start:start + CHUNK], again) or 0
        advanced += round_advanced
        if targets is None and pg and round_advanced:
            engine.work_found_at = time.monotonic()
        if targets is not None:
            # chained starts (Flow triggers) go on too; a rolled-back one has no work row: skipped
            targets = list(dict.fromkeys(again + engine.take_triggered()))
        elif not again and round_advanced == 0:
            return advanced
    return advanced


def _advance_chunk(engine: Engine, chunk: list[str] | None, again: list[str]) -> int | None:
    """Advance ``chunk`` in one durable transaction; ``None``: the free rows listed and locked
    in that transaction (PostgreSQL, work.free_locked), so other replicas do not try them too -
    then None when there were none. Returns how many advances ran."""
    engine.db.yield_to_foreground()
    conn = engine.db.begin()
    try:
        if chunk is None:
            chunk = work.free_locked(conn, engine.clock, CHUNK)
            if not chunk:
                return None
        return advance_in_tx(engine, chunk, again)
    finally:
        # each run undid its own savepoint if it failed, so what is left is consistent
        if engine.db.connection().in_transaction:
            engine.db.commit()


def advance_in_tx(engine: Engine, execution_ids: Iterable[str], again: list[str]) -> int:
    """Claim and advance these executions inside the caller's open write transaction.

    The caller commits (a run with an outside effect commits durably before the effect and
    opens a new transaction after it). Executions with more work queued meanwhile are added
    to ``again``. Returns how many advances ran."""
    advanced = 0
    db = engine.db
    for execution_id in execution_ids:
        conn = db.connection()
        if not conn.in_transaction:
            db.begin()
        with work.lease_holder() as owner:  # this advance's own lease, not the process's
            gen = work.try_claim(conn, execution_id, owner, engine.clock, engine.lease)
            if gen is None:
                continue  # another advance (maybe another thread of this process) has it
            run = ExecutionRun(engine, execution_id, owner, gen, shared=True, claimed_in_tx=True)
            more = run.advance()
        advanced += 1
        if more:
            again.append(execution_id)
        again.extend(run.dequeued)  # started because this one ended (flow concurrency)
    return advanced
