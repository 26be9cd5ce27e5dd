"""Flow ``concurrency`` (Kestra): at most ``limit`` executions of a flow not ended at once.

An execution counts from its start until it ends: CREATED, RUNNING and PAUSED (waiting for a
decision counts, as in Kestra). One started beyond the limit is, by ``behavior``: QUEUED
(default; it starts when a running one ends, oldest first), or ended at once as CANCELLED or
FAILED with a message saying why. Starting and ending both happen inside the write
transaction that counts, so two starts never both take the last slot.

On SQLite the write transaction alone serialises them (one writer). On PostgreSQL, READ
COMMITTED lets two replicas count at the same moment and both see a free slot, so the count is
taken under a transaction-scoped advisory lock on the flow (:func:`lock_flow`): a second start
of the same flow waits until the first commits, then counts its execution too. Other flows
are not held up. The count is served by the index executions(namespace, flow_id, state).
"""
from __future__ import annotations

import sqlite3

from signoff.engine.audit import append_event
from signoff.engine.flows.model import Flow
from signoff.engine.identity import SYSTEM
from signoff.engine.runtime import work
from signoff.engine.store.locks import advisory_lock

ACTIVE_STATES = ("CREATED", "RESTARTED", "RUNNING", "PAUSED")
BEHAVIOR_STATES = {"QUEUE": "QUEUED", "CANCEL": "CANCELLED", "FAIL": "FAILED"}


def active_count(tx: sqlite3.Connection, namespace: str, flow_id: str) -> int:
    marks = ",".join("?" for _ in ACTIVE_STATES)
    return int(tx.execute(f"SELECT count(*) FROM executions WHERE namespace=? AND flow_id=? AND state IN ({marks})",
                          (namespace, flow_id, *ACTIVE_STATES)).fetchone()[0])


def lock_flow(tx: sqlite3.Connection, namespace: str, flow_id: str) -> None:
    """PostgreSQL: hold the flow's concurrency slots until this transaction ends (nothing on
    SQLite, whose write transaction already excludes every other writer)."""
    advisory_lock(tx, "concurrency", namespace, flow_id)


def admission(tx: sqlite3.Connection, flow: Flow) -> tuple[str, str] | None:
    """None when a new execution of ``flow`` may start now, else (its state, why)."""
    limit = flow.concurrency
    if limit is None:
        return None
    lock_flow(tx, flow.namespace, flow.id)
    running = active_count(tx, flow.namespace, flow.id)
    if running < limit.limit:
        return None
    why = (f"concurrency limit reached: {running} execution(s) of {flow.namespace}.{flow.id} are running "
           f"and the flow allows {limit.limit} (behavior {limit.behavior})")
    return BEHAVIOR_STATES[limit.behavior], why


def start_queued(tx: sqlite3.Connection, flow: Flow, now: str) -> list[str]:
    """Start the oldest QUEUED executions of ``flow`` while slots are free; their ids."""
    if flow.concurrency is None:
        return []
    lock_flow(tx, flow.namespace, flow.id)
    free = flow.concurrency.limit - active_count(tx, flow.namespace, flow.id)
    if free <= 0:
        return []
    # oldest first: in the order they were queued (the audit sequence; start times can be equal)
    rows = tx.execute("SELECT e.id FROM executions e WHERE e.namespace=? AND e.flow_id=? AND e.state='QUEUED'"
                      " ORDER BY e.created_at, (SELECT min(a.seq) FROM audit a WHERE a.execution_id=e.id"
                      " AND a.action='execution.queued'), e.id LIMIT ?", (flow.namespace, flow.id, free)).fetchall()
    started = []
    for (execution_id,) in rows:
        tx.execute("UPDATE executions SET state='CREATED', updated_at=? WHERE id=? AND state='QUEUED'",
                   (now, execution_id))
        work.enqueue(tx, execution_id, now)
        append_event(tx, at=now, actor=SYSTEM.name, action="execution.dequeued", namespace=flow.namespace,
                     flow_id=flow.id, execution_id=execution_id, data={"limit": flow.concurrency.limit})
        started.append(execution_id)
    return started
