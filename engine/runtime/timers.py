"""Due timers: request expiry (with escalation and re-issue) and reminders.

Timers are rows with due times. Whoever runs the engine processes the due ones, each in its
own transaction that first marks the timer done, so two processes never apply one twice.
"""
from __future__ import annotations

import functools
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from signoff.engine import jsonutil
from signoff.engine.approvals.close import close_request, retire_timers
from signoff.engine.audit import append_event
from signoff.engine.clock import format_time, parse_time
from signoff.engine.durations import parse_duration
from signoff.engine.identity import SYSTEM
from signoff.engine.notify import outbox
from signoff.engine.runtime import work
from signoff.engine.store.locks import for_update, lock_work_of, retrying

if TYPE_CHECKING:
    import sqlite3

    from signoff.engine.core import Engine


def process_due_timers(engine: Engine, limit: int = 500) -> int:
    now = format_time(engine.clock.now())
    due = engine.db.query("SELECT id FROM timers WHERE done_at IS NULL AND due_at<=? ORDER BY due_at, id LIMIT ?",
                          (now, limit))
    handled = 0
    for (timer_id,) in due:
        handled += retrying(engine.db, functools.partial(_fire, engine, timer_id=timer_id, now=now))
    return handled


def _fire(engine: Engine, tx: Any, *, timer_id: int, now: str) -> int:
    """One due timer, exactly once across processes and replicas: the execution's work row and
    the request are locked first (the order decisions and runners lock in, store.locks), then the
    timer is claimed by a guarded UPDATE; whoever loses the claim finds it done and does nothing."""
    timer = tx.execute("SELECT * FROM timers WHERE id=? AND done_at IS NULL", (timer_id,)).fetchone()
    if timer is None:
        return 0  # another process took it
    lock_work_of(tx, [timer["request_id"]])  # the work row first, as a runner takes it (store.locks)
    request = tx.execute("SELECT * FROM requests WHERE id=?" + for_update(tx), (timer["request_id"],)).fetchone()
    if tx.execute("UPDATE timers SET done_at=? WHERE id=? AND done_at IS NULL", (now, timer_id)).rowcount != 1:
        return 0
    if request is None or request["state"] != "PENDING":
        return 0
    handler = TIMER_KINDS.get(timer["kind"])
    if handler is None:
        return 0
    handler(engine, tx, timer, request, now)
    return 1


def schedule(tx: sqlite3.Connection, request_id: str, due_at: str, reminders: list[str] | None) -> None:
    """Expiry timer at ``due_at`` plus one reminder per offset before it."""
    tx.execute("INSERT INTO timers(kind, request_id, due_at) VALUES ('expire', ?, ?) ON CONFLICT DO NOTHING",
               (request_id, due_at))
    due = parse_time(due_at)
    for offset in reminders or []:
        at = format_time(due - parse_duration(str(offset)))
        tx.execute("INSERT INTO timers(kind, request_id, due_at, payload) VALUES ('remind', ?, ?, ?)"
                   " ON CONFLICT DO NOTHING",
                   (request_id, at, jsonutil.dumps({"before": offset})))


def _event(tx: sqlite3.Connection, request: sqlite3.Row, action: str, now: str, data: dict[str, Any]) -> None:
    append_event(tx, at=now, actor=SYSTEM.name, action=action, namespace=request["namespace"],
                 flow_id=request["flow_id"], execution_id=request["execution_id"], request_id=request["id"], data=data)


def remind(engine: Engine, tx: sqlite3.Connection, timer: sqlite3.Row, request: sqlite3.Row, now: str) -> None:
    before = jsonutil.loads(timer["payload"], {}).get("before")
    _event(tx, request, "request.reminded", now, {"before": before, "due": request["due_at"]})
    outbox.enqueue(tx, engine.notifications, "reminded", dict(request), now,
                   link=engine.request_link(request["id"]))


def expire(engine: Engine, tx: sqlite3.Connection, timer: sqlite3.Row, request: sqlite3.Row, now: str) -> None:
    rules = jsonutil.loads(request["rules"], {})
    behavior = (rules.get("expireBehavior") or "FAIL").upper()
    if behavior == "ESCALATE" and not rules.get("escalatedTo"):
        return escalate(engine, tx, request, rules, now)
    if behavior == "ESCALATE":  # the escalation's own timeout ran out
        behavior = ((rules.get("escalation") or {}).get("expireBehavior") or "FAIL").upper()
    if behavior == "REISSUE":
        if int(rules.get("reissues") or 0) < int(rules.get("maxReissues", 1)):
            return reissue(engine, tx, request, rules, now)
        behavior = "FAIL"
    rules["expireBehavior"] = behavior
    close_request(tx, request["id"], "EXPIRED", by=SYSTEM.name, now=now, behavior=behavior)
    tx.execute("UPDATE requests SET rules=? WHERE id=?", (jsonutil.dumps(rules), request["id"]))
    _event(tx, request, "request.expired", now, {"behavior": behavior, "due": request["due_at"]})
    outbox.enqueue(tx, engine.notifications, "expired", dict(request), now, {"state": f"EXPIRED ({behavior})"})
    work.enqueue(tx, request["execution_id"], now)


def _new_due(now: str, wait: str | None) -> str:
    return format_time(parse_time(now) + (parse_duration(wait) if wait else timedelta(hours=1)))


def escalate(engine: Engine, tx: sqlite3.Connection, request: sqlite3.Row, rules: dict[str, Any], now: str) -> None:
    escalation = rules.get("escalation") or {}
    assignment = escalation.get("assignment") or {}
    rules["escalatedTo"] = {"users": list(assignment.get("users") or []),
                            "groups": list(assignment.get("groups") or [])}
    due_at = _new_due(now, escalation.get("timeout") or rules.get("wait"))
    _reschedule(tx, request, rules, due_at, now)
    tx.execute("UPDATE requests SET escalations = escalations + 1 WHERE id=?", (request["id"],))  # for stats
    _event(tx, request, "request.escalated", now, {"assignment": rules["escalatedTo"], "due": due_at,
                                                   "previous_due": request["due_at"]})
    outbox.enqueue(tx, engine.notifications, "escalated", {**dict(request), "due_at": due_at}, now,
                   {"assignment": rules["escalatedTo"]}, link=engine.request_link(request["id"]))


def reissue(engine: Engine, tx: sqlite3.Connection, request: sqlite3.Row, rules: dict[str, Any], now: str) -> None:
    rules["reissues"] = int(rules.get("reissues") or 0) + 1
    due_at = _new_due(now, rules.get("wait"))
    _reschedule(tx, request, rules, due_at, now)
    _event(tx, request, "request.reissued", now, {"reissue": rules["reissues"], "due": due_at,
                                                  "previous_due": request["due_at"]})
    outbox.enqueue(tx, engine.notifications, "reissued", {**dict(request), "due_at": due_at}, now,
                   link=engine.request_link(request["id"]))


def _reschedule(tx: sqlite3.Connection, request: sqlite3.Row, rules: dict[str, Any], due_at: str, now: str) -> None:
    retire_timers(tx, request["id"], now)
    tx.execute("UPDATE requests SET due_at=?, rules=? WHERE id=?", (due_at, jsonutil.dumps(rules), request["id"]))
    schedule(tx, request["id"], due_at, rules.get("reminders"))


TIMER_KINDS = {"expire": expire, "remind": remind}
