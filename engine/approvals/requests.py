"""Creating an approval request when an execution reaches a Pause or Approval task.

The request freezes what the approver will see - rendered summary/details/impact, the
execution's inputs and the outputs of earlier tasks - and the rules that govern it, so the
audit can later show exactly what was decided on, whatever happens to the flow file.
"""
from __future__ import annotations

import copy
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from signoff.engine import jsonutil
from signoff.engine.audit import append_event
from signoff.engine.clock import format_time
from signoff.engine.durations import format_duration, parse_duration
from signoff.engine.expressions import is_template
from signoff.engine.flows.model import Task
from signoff.engine.flows.task_types import PAUSE
from signoff.engine.inputs.spec import mask
from signoff.engine.notify import outbox
from signoff.engine.runtime.timers import schedule
from signoff.engine.tasks.base import TaskFailed

if TYPE_CHECKING:
    from signoff.engine.runtime.runner import ExecutionRun, Scope

RULE_KEYS = ("required", "assignment", "allowSelfApproval", "commentRequired", "decisions", "autoApprove", "when",
             "escalation", "maxReissues", "reminders", "denyBehavior", "approveBehavior")


def due_and_behavior(task: Task) -> tuple[timedelta | None, str | None, str | None]:
    """(wait, behaviour on expiry, the property it came from) for a Pause or Approval."""
    props = task.props
    if task.type == PAUSE:
        for name in ("pauseDuration", "delay"):
            if props.get(name):
                return parse_duration(str(props[name])), (props.get("behavior") or "RESUME").upper(), name
        if props.get("timeout"):
            return parse_duration(str(props["timeout"])), (props.get("behavior") or "FAIL").upper(), "timeout"
        return None, None, None
    if props.get("timeout"):
        return parse_duration(str(props["timeout"])), (props.get("expireBehavior") or "FAIL").upper(), "timeout"
    return None, None, None


def create_request(run: ExecutionRun, task: Task, path: str, scope: Scope) -> str:
    tx = run.tx
    now_dt = run.engine.clock.now()
    now = format_time(now_dt)
    request_id = run.engine.ids.request_id()
    spec_context = task.props.get("context") or {}
    rendered = run.render(task, path, scope, spec_context) if spec_context else {}
    if not isinstance(rendered, dict):
        raise TaskFailed(f"task `{task.id}`: context must be a map with summary, details, impact")
    summary = rendered.get("summary") or run.render(task, path, scope, task.props.get("message")
                                                     or task.props.get("description") or "") \
        or f"{run.flow.id} · {task.id}"
    context = {
        "summary": str(summary),
        "details": rendered.get("details"),
        "impact": rendered.get("impact"),
        "inputs": mask(run.flow.inputs, run.inputs),
        "outputs": copy.deepcopy(run.outputs),
        "task": {"id": task.id, "type": task.type, "description": task.props.get("description")},
        "flow": {"namespace": run.flow.namespace, "id": run.flow.id, "revision": run.flow.revision},
        "labels": run.labels,
    }
    form = []
    for spec in task.form:
        entry = spec.to_dict()
        if isinstance(entry.get("defaults"), str) and is_template(entry["defaults"]):
            entry["defaults"] = run.render(task, path, scope, entry["defaults"])
        form.append(entry)
    wait, behavior, source = due_and_behavior(task)
    rules: dict[str, Any] = {k: task.props[k] for k in RULE_KEYS if k in task.props}
    rules["kind"] = "pause" if task.type == PAUSE else "approval"
    rules["expireBehavior"] = behavior
    rules["timeoutFrom"] = source
    rules["wait"] = format_duration(wait) if wait is not None else None
    due_at = format_time(now_dt + wait) if wait is not None else None
    tx.execute("INSERT INTO requests(id, execution_id, task_path, task_id, kind, namespace, flow_id, state, summary,"
               " context, form, rules, requested_by, created_at, due_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
               (request_id, run.execution_id, path, task.id, rules["kind"], run.flow.namespace, run.flow.id,
                "PENDING", str(summary), jsonutil.dumps(context), jsonutil.dumps(form), jsonutil.dumps(rules),
                run.row["started_by"], now, due_at))
    if due_at is not None:
        schedule(tx, request_id, due_at, rules.get("reminders"))
    append_event(tx, at=now, actor=run.row["started_by"], action="request.created", namespace=run.flow.namespace,
                 flow_id=run.flow.id, execution_id=run.execution_id, request_id=request_id,
                 data={"task": task.id, "summary": str(summary), "due": due_at, "context": context,
                       "required": rules.get("required", 1)})
    outbox.enqueue(tx, run.engine.notifications, "created",
                   {"id": request_id, "summary": str(summary), "namespace": run.flow.namespace,
                    "flow_id": run.flow.id, "due_at": due_at}, now, link=run.engine.request_link(request_id))
    return request_id
