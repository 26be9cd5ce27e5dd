"""Starting an execution from a trigger, inside the caller's write transaction.

The firing and the start commit together, so a due time (or an ended execution, for a Flow
trigger) starts exactly one execution however many processes look at it. The start is an
audited ``execution.started`` whose actor is the trigger (``trigger:NS.FLOW.ID``) and whose
data carries the trigger as its origin; the execution keeps the ``trigger.*`` variables.
"""
from __future__ import annotations

import sqlite3
from typing import Any

from signoff.engine import jsonutil
from signoff.engine.audit import append_event
from signoff.engine.errors import ExpressionError, InvalidInputs
from signoff.engine.flows.model import Flow, Trigger
from signoff.engine.identity import SYSTEM
from signoff.engine.nul import input_errors
from signoff.engine.runtime import work
from signoff.engine.runtime.concurrency import admission
from signoff.engine.runtime.execution_row import insert_execution


def trigger_actor(flow: Flow, trigger: Trigger) -> str:
    return f"trigger:{flow.namespace}.{flow.id}.{trigger.id}"


def render_inputs(engine: Any, flow: Flow, trigger: Trigger, variables: dict[str, Any]) -> dict[str, Any]:
    """The trigger's ``inputs``, templates rendered with ``trigger.*`` (and kv(), secret())."""
    from signoff.engine.expressions import render_data
    from signoff.engine.runtime.functions import kv_lookup_from, make_functions

    raw = trigger.props.get("inputs") or {}
    functions = make_functions(clock=engine.clock, namespace=flow.namespace, kv_lookup=kv_lookup_from(engine.db),
                               app_link=lambda app_id: engine.app_link(flow.namespace, flow.id, "", app_id))
    scope = {"trigger": variables, "flow": {"id": flow.id, "namespace": flow.namespace}, "vars": flow.variables}
    try:
        rendered: dict[str, Any] = render_data(raw, scope, functions)
    except ExpressionError as exc:
        raise InvalidInputs({"inputs": f"trigger `{trigger.id}`: {exc}"}) from None
    return rendered


def start_in_tx(engine: Any, tx: sqlite3.Connection, flow: Flow, trigger: Trigger, variables: dict[str, Any],
                now: str) -> str:
    """Insert and queue an execution of ``flow`` started by ``trigger``; returns its id.

    Raises InvalidInputs when the trigger's inputs do not fit the flow (nothing is written)."""
    from signoff.engine.inputs import validate_inputs
    from signoff.engine.inputs.spec import mask

    inputs = render_inputs(engine, flow, trigger, variables)
    result = validate_inputs(flow.inputs, inputs, variables={})
    errors = {**result.errors, **input_errors(result.values)}  # NUL: engine.nul
    if errors:
        raise InvalidInputs(errors)
    execution_id: str = engine.ids.execution_id()
    revision = engine.flows.ensure_revision(tx, flow)
    origin = {"kind": "trigger", "type": trigger.type, "trigger_id": trigger.id, "variables": variables}
    actor = trigger_actor(flow, trigger)
    held = admission(tx, flow)  # the flow's concurrency limit applies to triggered starts too
    state, why = held if held is not None else ("CREATED", None)
    insert_execution(tx, {"id": execution_id, "namespace": flow.namespace, "flow_id": flow.id, "revision": revision,
                          "state": state, "inputs": jsonutil.dumps(result.values),
                          "labels": jsonutil.dumps(flow.labels), "started_by": actor, "created_at": now,
                          "updated_at": now, "ended_at": None if state in ("CREATED", "QUEUED") else now,
                          "error": why if state not in ("CREATED", "QUEUED") else None,
                          "origin": jsonutil.dumps(origin)})
    append_event(tx, at=now, actor=actor, action="execution.started", namespace=flow.namespace, flow_id=flow.id,
                 execution_id=execution_id,
                 data={"revision": revision, "inputs": mask(flow.inputs, result.values),
                       "origin": {"kind": "trigger", "type": trigger.type, "trigger_id": trigger.id,
                                  **_summary(variables)}})
    if held is not None:
        action = "execution.queued" if state == "QUEUED" else "execution.ended"
        append_event(tx, at=now, actor=SYSTEM.name, action=action,
                     namespace=flow.namespace, flow_id=flow.id, execution_id=execution_id,
                     data={"state": state, "error": why})
    else:
        work.enqueue(tx, execution_id, now)
    tx.execute("INSERT INTO triggers(namespace, flow_id, trigger_id, last_at, last_execution_id, updated_at)"
               " VALUES (?,?,?,?,?,?) ON CONFLICT(namespace, flow_id, trigger_id) DO UPDATE SET"
               " last_at=excluded.last_at, last_execution_id=excluded.last_execution_id,"
               " updated_at=excluded.updated_at", (flow.namespace, flow.id, trigger.id, now, execution_id, now))
    engine.note_triggered(execution_id)
    return execution_id


def _summary(variables: dict[str, Any]) -> dict[str, Any]:
    """What the audit keeps of the trigger variables: dates and ids, not webhook bodies."""
    keep = ("date", "previous", "next", "executionId", "namespace", "flowId", "state")
    return {k: variables[k] for k in keep if k in variables}
