"""Building a large, realistic audit trail fast (for the audit_search / audit_verify figures).

Rows are written with direct SQL in one transaction, but with the real hash chain
(engine.audit.log.event_content / event_hash), so ``signoff audit verify`` passes on them.
The FTS index is filled with one 'rebuild' after the insert (much faster than the per-row
trigger); the trigger itself is put back exactly as the schema defines it.
"""
from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from signoff.engine import jsonutil
from signoff.engine.audit.fulltext_feed import mark_complete
from signoff.engine.audit.log import GENESIS, event_content, event_hash, row_content

ACTORS = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy",
          "mallory", "niaj", "olivia", "peggy", "rupert", "sybil", "trent", "victor", "walter", "svc-deploy"]
NAMESPACES = ["prod.payments", "prod.deploy", "prod.data", "prod.access", "staging.deploy", "staging.data",
              "company.finance", "company.hr", "company.security", "company.legal", "dev.sandbox", "ops.incident"]
FLOWS = ["deploy", "access_request", "payment_approval", "data_deletion", "config_change", "vacation_approval",
         "content_moderation"]
REASONS = ["looks good", "approved per change ticket", "disk full on the replica, ship the fix",
           "rollback plan attached", "need a second opinion from security", "amount above limit",
           "duplicate of an earlier request", "customer escalation", "weekend freeze, not now",
           "tested in staging for a week", "missing justification", "ok for the maintenance window",
           "quarterly access review", "hotfix for the payment outage", "certificate renewal"]
SUMMARIES = ["Deploy api {v} to production", "WRITE access to billing-db for {u}", "Pay invoice {n} EUR",
             "Delete customer data for account {n}", "Raise connection pool to {n}", "Vacation {u} {n} days",
             "Publish post {n}"]
#: action -> weight (a request's life: created, decided, execution start/end, a few others)
ACTIONS = [("execution.started", 20), ("request.created", 20), ("request.approved", 15), ("request.denied", 4),
           ("execution.ended", 20), ("request.cancelled", 2), ("request.expired", 1), ("request.reminded", 3),
           ("request.escalated", 1), ("request.auto_approved", 2), ("policy.denied", 1), ("kv.set", 1)]

def build_audit(db, count: int, *, days: int = 90, now: datetime | None = None, seed: int = 6) -> dict[str, Any]:
    """Append ``count`` events to the (empty) audit table of ``db`` (an engine Database).

    Returns samples useful as query values (a request id, an execution id, ...)."""
    rng = random.Random(seed)
    now = now or datetime.now(UTC)
    start = now - timedelta(days=days)
    span = (now - start).total_seconds()
    action_names = [a for a, _ in ACTIONS]
    action_weights = [w for _, w in ACTIONS]
    conn = db.connection()
    trigger_sql = conn.execute("SELECT sql FROM sqlite_master WHERE type='trigger' AND name='audit_fts_insert'"
                               ).fetchone()
    # the schema's own indexes are dropped for the load and re-created from their stored SQL
    index_sql = [r[0] for r in conn.execute("SELECT sql FROM sqlite_master WHERE type='index'"
                                            " AND tbl_name='audit' AND sql IS NOT NULL")]
    index_names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'"
                                              " AND tbl_name='audit' AND sql IS NOT NULL")]
    samples: dict[str, Any] = {}
    with db.write() as tx:
        last = tx.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        seq, prev = (last[0], last[1]) if last else (0, GENESIS)
        if trigger_sql is not None:
            tx.execute("DROP TRIGGER audit_fts_insert")
        for name in index_names:
            tx.execute(f'DROP INDEX "{name}"')
        # times grow with seq (as in real life), with a little jitter; the random picks are
        # drawn in bulk up front (per-event random.choice calls would dominate the build)
        step = span / max(count, 1)
        t0 = start.timestamp()
        picks_action = rng.choices(action_names, action_weights, k=count)
        picks_actor = rng.choices(ACTORS, k=count)
        picks_reason = rng.choices(REASONS, k=count)
        picks_summary = rng.choices(SUMMARIES, k=count)
        picks_ns = rng.choices(NAMESPACES, k=count)
        picks_flow = rng.choices(FLOWS, k=count)
        picks_origin = rng.choices(["cli", "console", "http 10.0.0.5"], k=count)
        picks_state = rng.choices(["SUCCESS", "KILLED", "FAILED"], k=count)
        rand = rng.random
        bits = rng.getrandbits
        batch: list[tuple] = []
        live: list[tuple[str, str, str, str]] = []  # recent (request, execution, namespace, flow)
        for i in range(count):
            seq += 1
            moment = t0 + (i + rand()) * step
            at = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(moment)) + f".{int((moment % 1) * 1e6):06d}Z"
            action = picks_action[i]
            actor = picks_actor[i]
            if action in ("execution.started", "request.created") or not live:
                # ids in the engine's alphabet and lengths (hex digits are a subset of it)
                ctx = (f"r{bits(48):012x}", f"{bits(88):022x}", picks_ns[i], picks_flow[i])
                live.append(ctx)
                if len(live) > 64:
                    live.pop(0)
            else:
                ctx = live[int(rand() * len(live))]
            request_id, execution_id, ns, flow = ctx
            reason = picks_reason[i]
            n = 100 + bits(16)
            summary = picks_summary[i].format(v=f"v{n % 40}.{n % 10}", u=actor, n=n)
            if action == "kv.set":
                data = {"key": f"KEY_{n % 50}"}
                request_id = execution_id = flow = None
            elif action.startswith("execution."):
                data = {"state": picks_state[i], "error": None} \
                    if action == "execution.ended" else {"revision": 1, "inputs": {"ticket": f"CHG-{n}"}}
                request_id = None
            elif action == "request.created":
                data = {"task": "approve", "summary": summary, "due": None, "required": 1,
                        "context": {"summary": summary, "details": f"Requested because {reason}"}}
            else:
                data = {"verdict": "approve" if action != "request.denied" else "deny", "reason": reason,
                        "origin": picks_origin[i], "inputs": {"note": reason},
                        "state": action.split(".")[1].upper()}
            data_json = jsonutil.dumps(data)
            row = (seq, at, actor, action, ns, flow, execution_id, request_id, data_json)
            content = row_content(row)
            if i < 1000:  # the fast spelling must be byte-identical to the engine's
                assert content == event_content(*row), (content, event_content(*row))
            digest = event_hash(prev, content)
            batch.append((seq, at, actor, action, ns, flow, execution_id, request_id, data_json, prev, digest))
            prev = digest
            if i == count // 2:
                samples.update(request_id=ctx[0], execution_id=ctx[1], actor=actor)
            if len(batch) >= 20_000:
                tx.executemany("INSERT INTO audit(seq, at, actor, action, namespace, flow_id, execution_id,"
                               " request_id, data, prev_hash, hash) VALUES (?,?,?,?,?,?,?,?,?,?,?)", batch)
                batch.clear()
        if batch:
            tx.executemany("INSERT INTO audit(seq, at, actor, action, namespace, flow_id, execution_id,"
                           " request_id, data, prev_hash, hash) VALUES (?,?,?,?,?,?,?,?,?,?,?)", batch)
        for sql in index_sql:
            tx.execute(sql)
        tx.execute("INSERT INTO audit_fts(audit_fts) VALUES('rebuild')")
        mark_complete(tx)
        if trigger_sql is not None:
            tx.execute(trigger_sql[0])
    # a long-lived database has its WAL checkpointed; a just-written 1 GB WAL would make every
    # read search the WAL index first, which no real installation sees
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return samples
