"""Firing due Schedule triggers, exactly once per due time across processes.

Each Schedule has a row in ``triggers`` holding its next due time. Whoever runs the engine
(``signoff worker``, ``signoff serve``, any command's tick) looks for due ones; firing is one
write transaction that advances ``next_at`` with a compare-and-set on the value it read and
inserts the executions: a second process racing for the same due time finds ``next_at``
moved and does nothing.

Decisions (Kestra's semantics where it has them):

* A schedule seen for the first time starts from now: the first due time after now (no
  backfill of the past, as Kestra).
* ``recoverMissedSchedules`` (default ``ALL``, Kestra's default) decides what happens to due
  times that passed while nothing ran the engine: ``ALL`` fires each of them (at most
  :data:`engine.triggers.cron.MAX_RECOVERED`), oldest first; ``LAST`` only the latest;
  ``NONE`` none of them. A due time is *missed* when it is more than :data:`GRACE` old when
  found (a worker polling every second is never late by that much); one found in time fires
  under every setting.
* Disabled (``disabled: true`` in the flow, or ``signoff triggers disable``): nothing fires;
  enabling again starts from the next due time after now (nothing is backfilled).
* Trigger variables: ``trigger.date`` (this due time), ``trigger.previous`` and
  ``trigger.next`` (the due times before and after it), ISO 8601 in the trigger's zone.
* Inputs that do not fit the flow: the due time is consumed, ``trigger.failed`` is audited
  with the messages, and the schedule goes on.
"""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from signoff.engine.audit import append_event
from signoff.engine.clock import format_time, parse_time
from signoff.engine.errors import InvalidInputs
from signoff.engine.flows.model import Flow, Trigger
from signoff.engine.flows.trigger_parse import SCHEDULE
from signoff.engine.triggers import cron
from signoff.engine.triggers.start import start_in_tx, trigger_actor

GRACE = timedelta(seconds=60)


def schedules(engine: Any) -> list[tuple[Flow, Trigger]]:
    return [(f, t) for f in engine.flows.with_triggers() for t in f.triggers if t.type == SCHEDULE]


def process_due_schedules(engine: Any) -> int:
    """Fire every due schedule; returns how many executions were started."""
    items = schedules(engine)
    if not items:
        return 0
    now = engine.clock.now()
    rows = {(r["namespace"], r["flow_id"], r["trigger_id"]): r
            for r in engine.db.query("SELECT namespace, flow_id, trigger_id, next_at, disabled FROM triggers")}
    started = 0
    for flow, trigger in items:
        if trigger.disabled or flow.disabled:
            continue
        row = rows.get((flow.namespace, flow.id, trigger.id))
        if row is None or row["next_at"] is None:
            _arm(engine, flow, trigger, now)
            continue
        if row["disabled"] or row["next_at"] > format_time(now):
            continue
        started += _fire(engine, flow, trigger, row["next_at"])
    return started


def _arm(engine: Any, flow: Flow, trigger: Trigger, now: Any) -> None:
    """First sight of a schedule (or after enabling it): its next due time after now."""
    first = format_time(cron.next_after(trigger.props, now))
    with engine.db.write() as tx:
        tx.execute("INSERT INTO triggers(namespace, flow_id, trigger_id, next_at, updated_at) VALUES (?,?,?,?,?)"
                   " ON CONFLICT(namespace, flow_id, trigger_id) DO UPDATE SET next_at=excluded.next_at,"
                   " updated_at=excluded.updated_at WHERE triggers.next_at IS NULL",
                   (flow.namespace, flow.id, trigger.id, first, format_time(now)))


def due_to_fire(props: dict[str, Any], next_at: str, now: Any) -> list[Any]:
    """The due times to fire now, per ``recoverMissedSchedules``, oldest first."""
    due = cron.due_between(props, parse_time(next_at), now)
    policy = (props.get("recoverMissedSchedules") or "ALL").upper()
    if policy == "ALL" or not due:
        return due
    if policy == "LAST":
        return due[-1:]
    return [d for d in due[-1:] if now - d <= GRACE]  # NONE: only one found in time


def _fire(engine: Any, flow: Flow, trigger: Trigger, seen_next_at: str) -> int:
    started = 0
    with engine.db.write() as tx:
        now = engine.clock.now()
        stamp = format_time(now)
        new_next = format_time(cron.next_after(trigger.props, now))
        claimed = tx.execute("UPDATE triggers SET next_at=?, updated_at=? WHERE namespace=? AND flow_id=?"
                             " AND trigger_id=? AND next_at=? AND disabled=0",
                             (new_next, stamp, flow.namespace, flow.id, trigger.id, seen_next_at)).rowcount
        if claimed != 1:  # another process fired it (or it was disabled) meanwhile
            return 0
        for date in due_to_fire(trigger.props, seen_next_at, now):
            variables = {"date": cron.iso(date), "next": cron.iso(cron.next_after(trigger.props, date)),
                         "previous": cron.iso(cron.previous_before(trigger.props, date))}
            tx.execute("SAVEPOINT trigger_start")
            try:
                start_in_tx(engine, tx, flow, trigger, variables, stamp)
            except InvalidInputs as exc:
                tx.execute("ROLLBACK TO trigger_start")
                append_event(tx, at=stamp, actor=trigger_actor(flow, trigger), action="trigger.failed",
                             namespace=flow.namespace, flow_id=flow.id,
                             data={"trigger_id": trigger.id, "date": variables["date"], "errors": exc.errors})
            else:
                started += 1
            tx.execute("RELEASE trigger_start")
            tx.execute("UPDATE triggers SET last_date=? WHERE namespace=? AND flow_id=? AND trigger_id=?",
                       (format_time(date), flow.namespace, flow.id, trigger.id))
    return started
