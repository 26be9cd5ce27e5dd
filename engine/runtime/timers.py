"""Due timers (request expiry; reminders and escalations join them with governance).

Timers are rows with due times. Whoever runs the engine processes the due ones, each in its
own transaction that first marks the timer done, so two processes never apply one twice.
"""
from __future__ import annotations

from engine import jsonutil
from engine.audit import append_event
from engine.clock import format_time
from engine.identity import SYSTEM
from engine.runtime import work


def process_due_timers(engine, limit: int = 500) -> int:
    now = format_time(engine.clock.now())
    due = engine.db.query("SELECT id FROM timers WHERE done_at IS NULL AND due_at<=? ORDER BY due_at LIMIT ?",
                          (now, limit))
    handled = 0
    for (timer_id,) in due:
        with engine.db.write() as tx:
            timer = tx.execute("SELECT * FROM timers WHERE id=? AND done_at IS NULL", (timer_id,)).fetchone()
            if timer is None:
                continue  # another process took it
            tx.execute("UPDATE timers SET done_at=? WHERE id=?", (now, timer_id))
            request = tx.execute("SELECT * FROM requests WHERE id=?", (timer["request_id"],)).fetchone()
            if request is None or request["state"] != "PENDING":
                continue
            handler = TIMER_KINDS.get(timer["kind"])
            if handler is not None:
                handler(engine, tx, timer, request, now)
                handled += 1
    return handled


def expire(engine, tx, timer, request, now: str) -> None:
    rules = jsonutil.loads(request["rules"], {})
    behavior = rules.get("expireBehavior") or "FAIL"
    tx.execute("UPDATE requests SET state='EXPIRED', decided_at=?, result=? WHERE id=?",
               (now, jsonutil.dumps({"state": "EXPIRED", "by": SYSTEM.name, "on": now, "behavior": behavior}),
                request["id"]))
    tx.execute("UPDATE timers SET done_at=? WHERE request_id=? AND done_at IS NULL", (now, request["id"]))
    append_event(tx, at=now, actor=SYSTEM.name, action="request.expired", namespace=request["namespace"],
                 flow_id=request["flow_id"], execution_id=request["execution_id"], request_id=request["id"],
                 data={"behavior": behavior, "due": request["due_at"]})
    work.enqueue(tx, request["execution_id"], now)


TIMER_KINDS = {"expire": expire}
