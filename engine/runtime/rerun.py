"""Running an ended execution again: restart (same execution) and replay (a new one).

Kestra's semantics, with one rule added for approvals: a decision is never asked again.

* **Restart** continues a FAILED or KILLED execution in place, from its failed tasks. Every
  task run that finished stays as it is (outputs and decisions included); each failed leaf
  task gets its next attempt (its attempt count goes on, so an HTTP task sends a new
  ``Idempotency-Key``: ``execution:task:attempt``); containers and approvals whose failure
  came from a task inside them are reopened so the walk re-enters them; the error handlers
  (``errors`` blocks) run again if it fails again. An approval whose own decision ended the
  execution (denied, expired with FAIL, cancelled) is final: a restart is refused and names
  it; replay from an earlier task asks again, in a new execution.
* A failing branch of a Parallel ends the execution, which cancels the pending approvals of
  the other branches (nobody decided them). Kestra's restart re-runs the failed **and the
  still paused** task runs and keeps the finished ones; so here each such request is pending
  again on restart: the same request (same id, links still valid) with its timers back,
  asked again, while approvals already decided in any branch stay decided and are not asked
  again. The restart's audit event lists them (``reopened_requests``).
* **Replay** starts a new execution (``original_id`` points at the first one) with the same
  inputs and labels, on the same flow revision or ``revision``, copying the original's task
  runs that finished before ``from_task`` started (outputs and decisions included), so only
  ``from_task`` and what follows run again. Without ``from_task`` the replay runs from the
  start. Only ended executions are replayed: a running one would ask its approvals twice.

Both are allowed to the execution's requester (who started it, with ``start`` in the
namespace) or an admin of the namespace, and are audited (``execution.restarted``; the
replay's ``execution.started`` carries ``replay_of``).
"""
from __future__ import annotations

import sqlite3
from typing import Any

from signoff.engine import jsonutil
from signoff.engine.audit import append_event
from signoff.engine.errors import Conflict, NotFound, UsageError
from signoff.engine.flows.task_types import APPROVAL, PAUSE
from signoff.engine.identity import SYSTEM
from signoff.engine.runtime import work
from signoff.engine.runtime.execution_row import insert_execution

RESTARTABLE = ("FAILED", "KILLED")
ENDED = ("SUCCESS", "WARNING", "FAILED", "KILLED", "CANCELLED")
FINISHED_RUNS = ("SUCCESS", "WARNING", "SKIPPED")
#: the runner's message on an approval whose after-decision block failed (runner.after_decision)
BLOCK_FAILED = "a task after `"


def restart_in_tx(tx: sqlite3.Connection, row: sqlite3.Row, flow: Any, *, actor: str, now: str) -> list[str]:
    """Reopen the failed task runs of execution ``row`` (on ``flow``, its revision) and queue
    it; returns the reopened paths."""
    execution_id = row["id"]
    if row["state"] not in RESTARTABLE:
        raise Conflict(f"execution {execution_id} is {row['state']}: only FAILED or KILLED executions can be "
                       "restarted (replay starts a new one from any ended execution)")
    runs = [dict(r) for r in tx.execute("SELECT * FROM task_runs WHERE execution_id=? ORDER BY seq",
                                        (execution_id,))]
    handler_roots = {t.id for t in flow.errors}
    handlers = [r["path"] for r in runs
                if r["path"].split("/", 1)[0] in handler_roots or "/errors/" in r["path"]]
    reopened: list[str] = []
    for run in runs:
        if run["path"] in handlers or run["state"] not in ("FAILED", "KILLED"):
            continue
        if run["type"] in (PAUSE, APPROVAL) and not (run["error"] or "").startswith(BLOCK_FAILED):
            raise Conflict(f"execution {execution_id} ended with the decision on `{run['task_id']}` "
                           f"({run['error'] or run['state']}); a decision is never asked again by a restart - "
                           "replay from an earlier task to ask again")
        # a leaf runs again as attempt n+1 (runner.leaf_task continues the count); a container
        # or an approval is re-entered with its stored choice (branch, values, decision)
        reopened.append(run["path"])
    if not reopened:
        raise Conflict(f"execution {execution_id} has no failed task to restart from")
    paths = {r["path"] for r in runs}
    by_path = {r["path"]: r for r in runs}
    for path in reopened:
        run = by_path[path]
        if run["type"] in (PAUSE, APPROVAL) or any(p.startswith(path + "/") for p in paths):
            tx.execute("UPDATE task_runs SET state='RUNNING', error=NULL, ended_at=NULL WHERE execution_id=?"
                       " AND path=?", (execution_id, path))
        else:  # a leaf: due for its next attempt now (runner.leaf_task counts on from RETRYING)
            tx.execute("UPDATE task_runs SET state='RETRYING', error=NULL, ended_at=NULL, value=? WHERE"
                       " execution_id=? AND path=?", (jsonutil.dumps({"retryAt": now}), execution_id, path))
    tx.executemany("DELETE FROM task_runs WHERE execution_id=? AND path=?", [(execution_id, p) for p in handlers])
    reopened_requests = _reopen_unanswered(tx, execution_id, runs, row["ended_at"])
    tx.execute("UPDATE executions SET state='RESTARTED', updated_at=?, ended_at=NULL, error=NULL WHERE id=?",
               (now, execution_id))
    work.enqueue(tx, execution_id, now)
    append_event(tx, at=now, actor=actor, action="execution.restarted", namespace=row["namespace"],
                 flow_id=row["flow_id"], execution_id=execution_id,
                 data={"previous_state": row["state"], "tasks": reopened, "error": row["error"],
                       "reopened_requests": reopened_requests})
    return reopened


def _reopen_unanswered(tx: sqlite3.Connection, execution_id: str, runs: list[dict[str, Any]],
                       ended_at: str | None) -> list[str]:
    """Requests nobody answered that were closed only because the execution ended (another
    branch failed): pending again, with their timers, so the restart waits for them."""
    out: list[str] = []
    for run in runs:
        if run["type"] not in (PAUSE, APPROVAL) or run["state"] != "PAUSED" or not run["value"]:
            continue
        request = tx.execute("SELECT state, result, decided_at FROM requests WHERE id=?", (run["value"],)).fetchone()
        if request is None or request["state"] != "CANCELLED":
            continue
        result = jsonutil.loads(request["result"], {})
        if result.get("by") != SYSTEM.name or not str(result.get("reason") or "").startswith("execution ended"):
            continue
        tx.execute("UPDATE requests SET state='PENDING', decided_at=NULL, decision_s=NULL, result=NULL WHERE id=?",
                   (run["value"],))
        tx.execute("UPDATE timers SET done_at=NULL WHERE request_id=? AND done_at=?",
                   (run["value"], request["decided_at"]))
        out.append(run["value"])
    return out


def replay_in_tx(tx: sqlite3.Connection, original: sqlite3.Row, *, new_id: str, actor: str, now: str,
                 flow: Any, from_task: str | None) -> dict[str, Any]:
    """Insert the replay of ``original`` (on ``flow``, a loaded revision) and queue it."""
    if original["state"] not in ENDED:
        raise Conflict(f"execution {original['id']} is {original['state']}: only ended executions are replayed "
                       "(one still running would ask its approvals twice)")
    copied: list[dict[str, Any]] = []
    if from_task:
        if flow.find_task(from_task) is None:
            known = ", ".join(t.id for t in flow.all_tasks())
            raise UsageError(f"flow {flow.namespace}.{flow.id} revision {flow.revision} has no task `{from_task}`"
                             f" (tasks: {known})")
        runs = [dict(r) for r in tx.execute("SELECT * FROM task_runs WHERE execution_id=? ORDER BY seq",
                                            (original["id"],))]
        targets = [r for r in runs if r["task_id"] == from_task]
        if not targets:
            raise UsageError(f"task `{from_task}` never ran in execution {original['id']}; replay from a task "
                             f"that ran: {', '.join(dict.fromkeys(r['task_id'] for r in runs)) or 'none'}")
        target = targets[0]
        for run in runs:
            if run["seq"] >= target["seq"]:
                break
            if target["path"].startswith(run["path"] + "/"):  # an enclosing task: re-entered
                copied.append({**run, "state": "RUNNING", "ended_at": None,
                               "error": run["error"] if run["ends_as"] else None})
            elif run["state"] in FINISHED_RUNS:
                copied.append(run)
    origin = {"kind": "replay", "execution_id": original["id"], "from": from_task}
    original_id = original["original_id"] or original["id"]
    insert_execution(tx, {"id": new_id, "namespace": original["namespace"], "flow_id": original["flow_id"],
                          "revision": flow.revision, "state": "CREATED", "inputs": original["inputs"],
                          "labels": original["labels"], "started_by": actor, "created_at": now, "updated_at": now,
                          "original_id": original_id, "origin": jsonutil.dumps(origin)})
    for run in copied:
        tx.execute("INSERT INTO task_runs(execution_id, path, task_id, type, state, attempt, outputs, value,"
                   " started_at, ended_at, error, seq, ends_as) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                   (new_id, run["path"], run["task_id"], run["type"], run["state"], run["attempt"], run["outputs"],
                    run["value"], run["started_at"], run["ended_at"], run["error"], run["seq"], run["ends_as"]))
    if copied:
        marks = ",".join("?" * len(copied))
        tx.execute(f"INSERT INTO logs(execution_id, path, level, message, at) SELECT ?, path, level, message, at"
                   f" FROM logs WHERE execution_id=? AND path IN ({marks}) ORDER BY id",
                   (new_id, original["id"], *[r["path"] for r in copied]))
    work.enqueue(tx, new_id, now)
    append_event(tx, at=now, actor=actor, action="execution.started", namespace=original["namespace"],
                 flow_id=original["flow_id"], execution_id=new_id,
                 data={"revision": flow.revision, "replay_of": original["id"], "from": from_task,
                       "copied": [r["path"] for r in copied]})
    return {"id": new_id, "copied": [r["path"] for r in copied]}


def execution_row(tx: sqlite3.Connection, execution_id: str) -> sqlite3.Row:
    row: sqlite3.Row | None = tx.execute("SELECT * FROM executions WHERE id=?", (execution_id,)).fetchone()
    if row is None:
        raise NotFound(f"no execution `{execution_id}`")
    return row
