"""Requests and decisions for the stats figure: a request history to go with the generated
audit trail (one request per four audit events: its execution start, the request, the
decision, the execution end), written with direct SQL in one transaction, with the columns the
engine fills as things happen (decision_s, escalations, response_s: schema 15)."""
from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from auditgen import ACTORS, FLOWS, NAMESPACES

from signoff.engine.clock import format_time, seconds_between

STATES = [("APPROVED", 70), ("DENIED", 10), ("EXPIRED", 4), ("CANCELLED", 4), ("PENDING", 12)]


def build_requests(db, count: int, *, days: int = 90, now: datetime | None = None, seed: int = 15) -> None:
    rng = random.Random(seed)
    now = now or datetime.now(UTC)
    span = days * 86400
    names = [s for s, _ in STATES]
    weights = [w for _, w in STATES]
    requests, decisions = [], []
    for i in range(count):
        created = now - timedelta(seconds=rng.random() * span)
        state = rng.choices(names, weights)[0]
        decided = None if state == "PENDING" else min(now, created + timedelta(seconds=rng.expovariate(1 / 3600)))
        rid = f"r{i:011d}"
        namespace = rng.choice(NAMESPACES)
        created_at, decided_at = format_time(created), format_time(decided) if decided else None
        elapsed = seconds_between(created_at, decided_at) if decided_at else None
        requests.append((rid, f"e{i:011d}", "approve", "approve", "approval", namespace, rng.choice(FLOWS), state,
                         "bench request", "{}", "[]", "{}", rng.choice(ACTORS), created_at,
                         None, decided_at, None, elapsed, 1 if rng.random() < 0.02 else 0))
        if state in ("APPROVED", "DENIED"):
            decisions.append((rid, rng.choice(ACTORS), "approve" if state == "APPROVED" else "deny", "{}", None,
                              decided_at, "bench", 0, elapsed))
    with db.write() as tx:
        tx.executemany("INSERT INTO requests(id, execution_id, task_path, task_id, kind, namespace, flow_id, state,"
                       " summary, context, form, rules, requested_by, created_at, due_at, decided_at, result,"
                       " decision_s, escalations) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", requests)
        tx.executemany("INSERT INTO decisions(request_id, actor, verdict, inputs, reason, at, origin, automatic,"
                       " response_s) VALUES (?,?,?,?,?,?,?,?,?)", decisions)
    # no ANALYZE: an installation never gathers planner statistics, so neither does the bench.
    # A long-lived database has its WAL checkpointed (as auditgen does): a just-written WAL of
    # the whole history would make every read search the WAL index first
    db.connection().execute("PRAGMA wal_checkpoint(TRUNCATE)")
