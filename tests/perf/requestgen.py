"""Requests and decisions for the stats figure: a request history to go with the generated
audit trail (one request per four audit events: its execution start, the request, the
decision, the execution end), written with direct SQL in one transaction."""
from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from auditgen import ACTORS, FLOWS, NAMESPACES

from signoff.engine.clock import format_time

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
        requests.append((rid, f"e{i:011d}", "approve", "approve", "approval", namespace, rng.choice(FLOWS), state,
                         "bench request", "{}", "[]", "{}", rng.choice(ACTORS), format_time(created),
                         None, format_time(decided) if decided else None, None))
        if state in ("APPROVED", "DENIED"):
            decisions.append((rid, rng.choice(ACTORS), "approve" if state == "APPROVED" else "deny", "{}", None,
                              format_time(decided), "bench", 0))
    with db.write() as tx:
        tx.executemany("INSERT INTO requests(id, execution_id, task_path, task_id, kind, namespace, flow_id, state,"
                       " summary, context, form, rules, requested_by, created_at, due_at, decided_at, result)"
                       " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", requests)
        tx.executemany("INSERT INTO decisions(request_id, actor, verdict, inputs, reason, at, origin, automatic)"
                       " VALUES (?,?,?,?,?,?,?,?)", decisions)
    db.connection().execute("ANALYZE")
