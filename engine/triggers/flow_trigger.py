"""Flow triggers: start a flow when another flow's execution ends (Kestra's Flow trigger).

Called by the runner in the transaction that ends an execution, so each ended execution
starts each matching flow exactly once (the end and the starts commit together). Conditions
(all must hold): ``ExecutionStatus`` (``in`` / ``notIn`` states; without one, Kestra's
default applies: only ended states count, which is all this sees), ``ExecutionFlow``
(``namespace`` + ``flowId``) and ``ExecutionNamespace`` (``namespace``, ``comparison``
EQUALS / PREFIX / SUFFIX, or the older ``prefix: true``). Trigger variables:
``trigger.executionId``, ``trigger.namespace``, ``trigger.flowId``, ``trigger.flowRevision``,
``trigger.state``. A flow never triggers itself from its own execution, as in Kestra (which
drops a flow's own executions before looking at its conditions: no recursive triggers), so a
trigger whose conditions also match its own flow (a namespace prefix, a status only) fires
for the other flows and never loops; a condition that names the flow itself (ExecutionFlow)
could never fire and is refused when the flow loads (engine.flows.trigger_parse). A chain of
several flows that comes back to its start is not prevented (neither is it in Kestra).
"""
from __future__ import annotations

import sqlite3
from typing import Any

from signoff.engine.audit import append_event
from signoff.engine.errors import InvalidInputs
from signoff.engine.flows.model import Flow, Trigger
from signoff.engine.flows.trigger_parse import EXECUTION_FLOW, EXECUTION_NAMESPACE, EXECUTION_STATUS, FLOW
from signoff.engine.triggers.start import start_in_tx, trigger_actor


def matches(trigger: Trigger, target: Flow, ended: dict[str, Any]) -> bool:
    if (target.namespace, target.id) == (ended["namespace"], ended["flow_id"]):
        return False  # never its own executions
    conditions = trigger.props.get("conditions") or []
    for condition in conditions:
        kind = condition.get("type")
        if kind == EXECUTION_STATUS:
            if "in" in condition and ended["state"] not in condition["in"]:
                return False
            if "notIn" in condition and ended["state"] in condition["notIn"]:
                return False
        elif kind == EXECUTION_FLOW:
            if (condition["namespace"], condition["flowId"]) != (ended["namespace"], ended["flow_id"]):
                return False
        elif kind == EXECUTION_NAMESPACE:
            namespace, wanted = ended["namespace"], condition["namespace"]
            comparison = condition.get("comparison") or ("PREFIX" if condition.get("prefix") else "EQUALS")
            ok = {"EQUALS": namespace == wanted, "PREFIX": namespace.startswith(wanted),
                  "SUFFIX": namespace.endswith(wanted)}[comparison]
            if not ok:
                return False
    return True


def on_execution_ended(engine: Any, tx: sqlite3.Connection, ended: dict[str, Any], now: str) -> list[str]:
    """Start every flow whose Flow trigger matches the execution that just ended."""
    candidates = [(f, t) for f in engine.flows.with_triggers() if not f.disabled
                  for t in f.triggers if t.type == FLOW and not t.disabled]
    if not candidates:
        return []
    started: list[str] = []
    for flow, trigger in candidates:
        if not matches(trigger, flow, ended):
            continue
        row = tx.execute("SELECT disabled FROM triggers WHERE namespace=? AND flow_id=? AND trigger_id=?",
                         (flow.namespace, flow.id, trigger.id)).fetchone()
        if row is not None and row[0]:
            continue
        variables = {"executionId": ended["id"], "namespace": ended["namespace"], "flowId": ended["flow_id"],
                     "flowRevision": ended["revision"], "state": ended["state"]}
        tx.execute("SAVEPOINT flow_trigger")
        try:
            started.append(start_in_tx(engine, tx, flow, trigger, variables, now))
        except InvalidInputs as exc:
            tx.execute("ROLLBACK TO flow_trigger")
            append_event(tx, at=now, actor=trigger_actor(flow, trigger), action="trigger.failed",
                         namespace=flow.namespace, flow_id=flow.id,
                         data={"trigger_id": trigger.id, "execution_id": ended["id"], "errors": exc.errors})
        tx.execute("RELEASE flow_trigger")
    return started
