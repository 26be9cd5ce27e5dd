"""What `signoff triggers list` shows, and the operator's enable/disable switch.

A trigger is disabled when its flow says ``disabled: true`` (only an edit of the flow changes
that) or when an operator ran ``signoff triggers disable`` (stored in ``triggers.disabled``,
audited as ``trigger.disabled`` / ``trigger.enabled``). Enabling a Schedule again re-arms it
from the next due time after now, so what was due meanwhile is not backfilled.
"""
from __future__ import annotations

from typing import Any

from signoff.engine.audit import append_event
from signoff.engine.clock import format_time
from signoff.engine.errors import NotFound
from signoff.engine.flows.model import Flow
from signoff.engine.flows.trigger_parse import SCHEDULE, WEBHOOK
from signoff.engine.triggers import cron


def trigger_rows(engine: Any) -> list[dict[str, Any]]:
    stored = {(r["namespace"], r["flow_id"], r["trigger_id"]): r for r in engine.db.query("SELECT * FROM triggers")}
    now = engine.clock.now()
    out: list[dict[str, Any]] = []
    for flow in engine.flows.with_triggers():
        for trigger in flow.triggers:
            row = stored.get((flow.namespace, flow.id, trigger.id))
            operator_off = bool(row and row["disabled"])
            disabled = "flow" if trigger.disabled or flow.disabled else "operator" if operator_off else None
            next_at = None
            if trigger.type == SCHEDULE and disabled is None:
                next_at = row["next_at"] if row and row["next_at"] else format_time(cron.next_after(trigger.props, now))
            detail: dict[str, Any] = {}
            if trigger.type == SCHEDULE:
                detail = {"cron": trigger.props["cron"], "timezone": trigger.props.get("timezone") or "UTC",
                          "recoverMissedSchedules": trigger.props.get("recoverMissedSchedules") or "ALL"}
            elif trigger.type == WEBHOOK:
                detail = {"path": f"/api/v1/executions/webhook/{flow.namespace}/{flow.id}/<key>"}
            else:
                detail = {"conditions": [{k: v for k, v in c.items()} for c in trigger.props.get("conditions") or []]}
            out.append({"namespace": flow.namespace, "flow_id": flow.id, "trigger_id": trigger.id,
                        "type": trigger.type, "disabled": disabled, "next_at": next_at,
                        "last_at": row["last_at"] if row else None,
                        "last_execution_id": row["last_execution_id"] if row else None,
                        "detail": detail})
    return out


def set_enabled(engine: Any, flow: Flow, trigger_id: str, enabled: bool, *, actor: str) -> None:
    trigger = next((t for t in flow.triggers if t.id == trigger_id), None)
    if trigger is None:
        known = ", ".join(t.id for t in flow.triggers) or "none"
        raise NotFound(f"flow {flow.namespace}.{flow.id} has no trigger `{trigger_id}` (triggers: {known})")
    now = engine.clock.now()
    stamp = format_time(now)
    next_at = format_time(cron.next_after(trigger.props, now)) if enabled and trigger.type == SCHEDULE else None
    with engine.db.write() as tx:
        tx.execute("INSERT INTO triggers(namespace, flow_id, trigger_id, next_at, disabled, updated_at)"
                   " VALUES (?,?,?,?,?,?) ON CONFLICT(namespace, flow_id, trigger_id) DO UPDATE SET"
                   " disabled=excluded.disabled, updated_at=excluded.updated_at,"
                   " next_at=CASE WHEN excluded.disabled=0 THEN excluded.next_at ELSE triggers.next_at END",
                   (flow.namespace, flow.id, trigger_id, next_at, 0 if enabled else 1, stamp))
        append_event(tx, at=stamp, actor=actor, action="trigger.enabled" if enabled else "trigger.disabled",
                     namespace=flow.namespace, flow_id=flow.id, data={"trigger_id": trigger_id})
