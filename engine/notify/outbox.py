"""Queueing notifications with the change they announce, and delivering them with retries.

Delivery reuses the flow task handlers (Slack/Teams webhook, MailSend), so a notification
behaves exactly like the equivalent task: same HTTP client, Idempotency-Key, SMTP code.
"""
from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from signoff.engine import jsonutil
from signoff.engine.audit import append_event
from signoff.engine.clock import format_time
from signoff.engine.flows.model import Task
from signoff.engine.identity import SYSTEM
from signoff.engine.links import request_link
from signoff.engine.notify.config import NotificationConfig
from signoff.engine.tasks.base import SimpleContext, TaskFailed

if TYPE_CHECKING:
    from signoff.engine.core import Engine

#: waits before attempts 2, 3, 4, 5; after the 5th failure the message is given up (audited)
BACKOFF = (timedelta(seconds=10), timedelta(minutes=1), timedelta(minutes=5), timedelta(minutes=30))
MAX_ATTEMPTS = len(BACKOFF) + 1
LEASE = timedelta(seconds=60)

TITLES = {
    "created": "Approval requested",
    "reminded": "Reminder: approval still pending",
    "escalated": "Escalated: approval needed",
    "reissued": "Re-issued: approval still needed",
    "decided": "Approval decided",
    "expired": "Approval expired",
}

KIND_TYPES = {
    "slack": "io.kestra.plugin.notifications.slack.SlackIncomingWebhook",
    "teams": "io.kestra.plugin.notifications.teams.TeamsIncomingWebhook",
    "email": "io.kestra.plugin.notifications.mail.MailSend",
}


def message_text(event: str, request: Mapping[str, Any], extra: Mapping[str, Any], link: str | None = None) -> str:
    """The plain text of a notification. Messages asking for a decision carry the request's
    link (``link``, else the ``signoff://request/ID`` form) and the command that opens it."""
    lines = [f"{TITLES[event]}: {request['summary']}",
             f"{request['namespace']}.{request['flow_id']} · request {request['id']}"]
    if extra.get("state"):
        lines.append(f"Outcome: {extra['state']}" + (f" by {extra['by']}" if extra.get("by") else ""))
    if extra.get("reason"):
        lines.append(f"Reason: {extra['reason']}")
    if request.get("due_at") and event != "decided":
        lines.append(f"Due: {request['due_at']}")
    if extra.get("assignment"):
        who = extra["assignment"]
        assigned = [*who.get("users", []), *(f"group {g}" for g in who.get("groups", []))]
        lines.append("Now assigned to: " + ", ".join(assigned))
    if event not in ("decided", "expired"):
        lines.append(f"Decide: {link or request_link(None, request['id'])}")
        lines.append(f"In a terminal: signoff open {request['id']}")
    return "\n".join(lines)


def enqueue(tx: sqlite3.Connection, config: NotificationConfig | None, event: str, request: Mapping[str, Any],
            now: str, extra: Mapping[str, Any] | None = None, *, link: str | None = None) -> int:
    if config is None:
        return 0
    extra = dict(extra or {})
    count = 0
    for target in config.for_event(request["namespace"], event):
        payload = {"kind": target.kind, "setting": target.setting, "title": f"{TITLES[event]}: {request['summary']}",
                   "text": message_text(event, request, extra, link)}
        tx.execute("INSERT INTO outbox(event, request_id, namespace, target, payload, next_at) VALUES (?,?,?,?,?,?)",
                   (event, request["id"], request["namespace"], target.label, jsonutil.dumps(payload), now))
        count += 1
    return count


#: how often, after its changes, a process that queues no notifications itself looks for due ones
IDLE_LOOK_S = 1.0


def deliver_after_change(engine: Engine) -> int:
    """Embedded mode, after a change: a process with a notification configuration may just
    have queued messages, so it sends what is due now. One without queues none itself; it
    sends what others left due (a retry whose backoff ended, a process that stopped before
    sending) but looks at most once a second (performance: a statement per start, and on
    PostgreSQL a round trip). A background tick (server runner, console) looks every time."""
    if engine.notifications is None:
        now = time.monotonic()
        if engine.outbox_looked_at is not None and now - engine.outbox_looked_at < IDLE_LOOK_S:
            return 0
        engine.outbox_looked_at = now
    return deliver_due(engine)


def deliver_due(engine: Engine, limit: int = 100) -> int:
    """Send what is due; returns how many were sent. Safe to call from several processes."""
    now_dt = engine.clock.now()
    now = format_time(now_dt)
    rows = engine.db.query("SELECT id FROM outbox WHERE done_at IS NULL AND next_at<=? AND"
                           " (lease_until IS NULL OR lease_until<=?) ORDER BY id LIMIT ?", (now, now, limit))
    sent = 0
    for (outbox_id,) in rows:
        with engine.db.write() as tx:
            claimed = tx.execute("UPDATE outbox SET lease_until=? WHERE id=? AND done_at IS NULL AND"
                                 " (lease_until IS NULL OR lease_until<=?)",
                                 (format_time(now_dt + LEASE), outbox_id, now)).rowcount
            row = tx.execute("SELECT * FROM outbox WHERE id=?", (outbox_id,)).fetchone() if claimed else None
        if row is None:
            continue
        error = send(engine, dict(row))
        with engine.db.write() as tx:
            attempts = row["attempts"] + 1
            at = format_time(engine.clock.now())
            if error is None:
                tx.execute("UPDATE outbox SET attempts=?, done_at=?, lease_until=NULL, error=NULL WHERE id=?",
                           (attempts, at, outbox_id))
                sent += 1
                continue
            final = attempts >= MAX_ATTEMPTS
            next_at = at if final else format_time(engine.clock.now() + BACKOFF[attempts - 1])
            tx.execute("UPDATE outbox SET attempts=?, next_at=?, lease_until=NULL, error=?, done_at=? WHERE id=?",
                       (attempts, next_at, error, at if final else None, outbox_id))
            request = tx.execute("SELECT flow_id, execution_id FROM requests WHERE id=?",
                                 (row["request_id"],)).fetchone()
            append_event(tx, at=at, actor=SYSTEM.name, action="notification.failed", namespace=row["namespace"],
                         flow_id=request["flow_id"] if request else None,
                         execution_id=request["execution_id"] if request else None, request_id=row["request_id"],
                         data={"event": row["event"], "target": row["target"], "attempt": attempts, "error": error,
                               "final": final})
    return sent


class _PlainContext(SimpleContext):
    """Properties are already final text: no template rendering of request summaries."""

    def render(self, value: Any) -> Any:
        return value


def send(engine: Engine, row: dict[str, Any]) -> str | None:
    """Deliver one message; the error text, or None on success."""
    from signoff.engine.expressions import render_data
    from signoff.engine.runtime.functions import read_secret
    from signoff.engine.tasks.registry import load_handlers

    payload = jsonutil.loads(row["payload"])
    kind = payload["kind"]
    try:
        setting = render_data(payload["setting"], {}, {"secret": read_secret})
    except Exception as exc:  # noqa: BLE001 - a missing secret or a bad template is a delivery failure, audited
        return str(exc)
    if kind == "email":
        props = {"to": setting["to"], "subject": payload["title"], "plainTextContent": payload["text"],
                 **{k: v for k, v in setting.items() if k != "to"}}
    else:
        props = {"url": setting, "payload": json.dumps({"text": payload["text"]}, ensure_ascii=False)}
    task = Task(id=f"notify_{row['event']}", type=KIND_TYPES[kind], props=props)
    ctx = _PlainContext(task=task, execution_id=row["request_id"] or "", namespace=row["namespace"],
                        data_dir=engine.data_dir, idempotency_key=f"notification:{row['id']}")
    try:
        load_handlers()[task.type](ctx)
    except TaskFailed as failure:
        return failure.message
    except Exception as exc:  # noqa: BLE001 - an unexpected failure must not stop other deliveries
        return f"{type(exc).__name__}: {exc}"
    return None
