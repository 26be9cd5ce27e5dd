"""Advancing one execution: walk the flow's task tree, replaying what is recorded.

Design (the reason it is crash-safe): every task run is a row keyed by its path in the tree
("approve", "branches/left", "loop/2/notify"). Advancing an execution walks the tree from the
top; a task with a finished row is skipped (its stored outputs are put back in scope), a
waiting Pause/Approval looks at its request's state, and anything else runs now. Control
tasks store the choice they made (If branch, Switch case, ForEach values) so a replay takes
the same path. Progress is committed:
- in one transaction for everything that has no effect outside the database (Log, If,
  OutputValues, creating a request...), and
- around each task with an outside effect (HTTP, mail, shell): the state before it is committed
  first, the effect runs outside any transaction, and its result is committed after.
Every transaction first re-checks this advance's lease on the execution (a lease belongs to one
advance, not to a process: see engine.runtime.work), so two advances never both walk one
execution, not even two threads of one process. A process killed between an outside effect and
its commit re-runs that one task as the same attempt, which is why HTTP tasks carry an
Idempotency-Key made from execution, task and attempt. Replaying a finished task puts back its
outputs and those of every task inside it, so the task after it sees what the first walk saw.
"""
from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from signoff.engine import jsonutil
from signoff.engine.approvals.close import close_request
from signoff.engine.approvals.decide import DecisionRequest, decide_in_tx
from signoff.engine.audit import append_event
from signoff.engine.clock import format_time, parse_time
from signoff.engine.errors import ExpressionError
from signoff.engine.expressions import evaluate, render_data, truthy
from signoff.engine.flows.model import Flow, Task
from signoff.engine.flows.task_types import APPROVAL, PAUSE
from signoff.engine.identity import SYSTEM
from signoff.engine.runtime import heartbeat, work
from signoff.engine.runtime.execution_row import insert_execution
from signoff.engine.runtime.functions import kv_lookup_from, make_functions
from signoff.engine.runtime.outputs import outputs_tree, place
from signoff.engine.runtime.retry import RetryPolicy
from signoff.engine.store.locks import for_update
from signoff.engine.tasks.base import SimpleContext, TaskFailed

if TYPE_CHECKING:
    from signoff.engine.core import Engine

DONE, WAITING, FAILED = "DONE", "WAITING", "FAILED"
LOG_ORDER = {"TRACE": 0, "DEBUG": 1, "INFO": 2, "WARN": 3, "WARNING": 3, "ERROR": 4}
FINISHED_RUN_STATES = {"SUCCESS", "WARNING", "SKIPPED"}
TERMINAL_EXECUTION_STATES = {"SUCCESS", "WARNING", "FAILED", "KILLED", "CANCELLED"}

#: leaf tasks with an effect outside the database: committed around, run outside a transaction
EXTERNAL_TYPES = {
    "io.kestra.plugin.core.http.Request",
    "io.kestra.plugin.notifications.slack.SlackIncomingWebhook",
    "io.kestra.plugin.notifications.teams.TeamsIncomingWebhook",
    "io.kestra.plugin.notifications.mail.MailSend",
    "io.kestra.plugin.scripts.shell.Commands",
}


class LeftToRunner(Exception):
    """A run that may not cause outside effects (``ExecutionRun(effects=False)``: a server's
    start) reached one. The run is undone; the execution is queued for the runner, which
    takes it from the start."""


@dataclass(frozen=True)
class Ending:
    """How a Pause/Approval task ends after its after-decision block: a deny with
    ``denyBehavior: WARN|FAIL`` or an expiry with ``expireBehavior: WARN`` (stored as
    ``task_runs.ends_as`` and ``error`` while the block runs)."""

    state: str  # "WARNING" or "FAILED"
    message: str


class Stop(Exception):
    """Ends the execution now with a final state (deny, cancel), skipping error handlers."""

    def __init__(self, state: str, message: str) -> None:
        super().__init__(message)
        self.state = state
        self.message = message


@dataclass
class Scope:
    loop_values: tuple[Any, ...] = ()
    iteration: int | None = None
    parents: list[dict[str, Any]] = field(default_factory=list)

    def iterate(self, index: int, value: Any) -> Scope:
        """The scope of one ForEach iteration inside this one."""
        return Scope(loop_values=(*self.loop_values, value), iteration=index,
                     parents=[*self.parents, {"taskrun": {"value": value, "iteration": index}}])


class ExecutionRun:
    """One advance of one execution by the runner holding its lease.

    ``shared=True`` (used by :func:`engine.runtime.driver.drive`, performance): the run works
    inside a write transaction its caller already opened, within a SAVEPOINT of its own, so
    many executions share one durable commit instead of one fsync each. A failure undoes only
    this run's savepoint. Before an outside effect the whole transaction is still committed
    durably (``commit(durable=True)``), exactly as in the unshared mode."""

    def __init__(self, engine: Engine, execution_id: str, owner: str, gen: int, *, shared: bool = False,
                 row: Mapping[str, Any] | None = None, queued: bool = True, insert_row: bool = False,
                 claimed_in_tx: bool = False, effects: bool = True) -> None:
        """``row`` and ``queued=False`` (performance, for the first advance of an execution
        started in the same transaction): its ``executions`` row as just inserted (it has no
        task runs yet), and it has no work row - nobody else can see it before the commit, so
        there is no lease to take, renew or drop. A work row (leased to this runner) is
        written only if a step must be committed durably before an outside effect.
        ``insert_row``: ``row`` is not stored yet; the first write of this run inserts it with
        the state it has by then (a start stores its execution once, already PAUSED), and
        :attr:`row_pending` stays True if that never happened (the run failed).
        ``claimed_in_tx``: the lease was taken in the transaction this run's first step joins
        (engine.runtime.driver), so that step need not renew it.
        ``effects=False``: the run stops with :class:`LeftToRunner` before a task with an outside
        effect (an HTTP call, mail, a shell command): a server's start runs its first steps in the
        request that made it, but never someone's shell command or webhook (those take as long as
        they take, and belong to the runner's lease and retries)."""
        self.engine = engine
        self.shared = shared
        self._savepoint = False
        self.db = engine.db
        # this process now holds a lease: it beats, so another host can tell when it died
        heartbeat.ensure(engine.db)
        self.execution_id = execution_id
        self.owner = owner
        self.gen = gen
        self.queued = queued
        self._lease_fresh = claimed_in_tx
        self.effects = effects
        #: never queued: the ids this thread enqueued while advancing (see :meth:`advance`)
        self._enqueued: set[str] = set()
        fresh = row is not None
        if row is None:
            stored = self.db.query_one("SELECT * FROM executions WHERE id=?", (execution_id,))
            assert stored is not None
            row = dict(stored)
        self.row = dict(row)
        self.flow: Flow = engine.flows.at_revision(row["namespace"], row["flow_id"], row["revision"])
        self.inputs = jsonutil.loads(row["inputs"], {})
        self.labels = jsonutil.loads(row["labels"], {})
        #: ``trigger.*`` variables: what a trigger recorded when it started this execution
        origin = jsonutil.loads(self.row.get("origin"), None) or {}
        self.trigger: dict[str, Any] | None = origin.get("variables") if origin.get("kind") == "trigger" else None
        self.runs: dict[str, dict[str, Any]] = {} if fresh else {
            r["path"]: dict(r) for r in self.db.query("SELECT * FROM task_runs WHERE execution_id=?", (execution_id,))}
        self.seq = max((r["seq"] for r in self.runs.values()), default=0)
        self.outputs: dict[str, Any] = {}
        self.functions = make_functions(
            clock=engine.clock, namespace=self.flow.namespace, kv_lookup=kv_lookup_from(self.db),
            app_link=lambda app_id: engine.app_link(execution_id, app_id))
        self._tx: sqlite3.Connection | None = None
        # performance: task-run rows, logs and the execution's state are written once per
        # step, when it commits (a task's RUNNING -> SUCCESS in one step is one row write; an
        # execution goes PAUSED -> SUCCESS without an intermediate RUNNING row). Nothing in
        # the step reads them back from the database; every commit writes them first.
        self._dirty_runs: dict[str, dict[str, Any]] = {}
        self._new_logs: list[tuple[str, str, str, str, str]] = []
        self._state_at: str | None = None  # set when the state changed and is not written yet
        self.row_pending = insert_row and fresh
        #: times of the next attempt of tasks waiting for a retry (the work row is put at the first)
        self.retry_due: list[str] = []
        #: a Pause/Approval is waiting for a decision (the execution is PAUSED, not RUNNING)
        self.waiting_on_request = False
        #: executions of this flow started because this one ended (concurrency QUEUE)
        self.dequeued: list[str] = []
        #: the FILE inputs are present on this replica (ensure_input_files)
        self._files_ready = False

    # -- transactions -------------------------------------------------------------------
    @property
    def tx(self) -> sqlite3.Connection:
        """This step's open transaction (between :meth:`begin` and its commit or undo)."""
        if self._tx is None:
            raise RuntimeError(f"execution {self.execution_id}: no transaction is open")
        return self._tx

    def begin(self) -> None:
        if self.shared:
            conn = self.db.connection()
            if not conn.in_transaction:  # after a durable commit (outside effect)
                self.db.begin()
            conn.execute("SAVEPOINT execution_run")
            self._savepoint = True
            self._tx = conn
        else:
            self._tx = self.db.begin()
        try:
            # (performance: a lease taken in this same open transaction is ours and new)
            if self.queued and not self._lease_fresh:
                work.renew(self.tx, self.execution_id, self.owner, self.engine.clock, self.engine.lease)
            self._lease_fresh = False
        except BaseException:
            self.undo()
            raise

    def flush(self) -> None:
        """Write the task runs, logs and state change this step holds back (inside its tx)."""
        if self._dirty_runs:
            self.tx.executemany(
                "INSERT INTO task_runs(execution_id, path, task_id, type, state, attempt, outputs,"
                " value, started_at, ended_at, error, seq, ends_as) VALUES (:execution_id, :path, :task_id,"
                " :type, :state, :attempt, :outputs, :value, :started_at, :ended_at, :error, :seq, :ends_as)"
                " ON CONFLICT(execution_id, path) DO UPDATE SET task_id=excluded.task_id, type=excluded.type,"
                " state=excluded.state, attempt=excluded.attempt, outputs=excluded.outputs, value=excluded.value,"
                " started_at=excluded.started_at, ended_at=excluded.ended_at, error=excluded.error,"
                " seq=excluded.seq, ends_as=excluded.ends_as",
                list(self._dirty_runs.values()))
            self._dirty_runs.clear()
        if self._new_logs:
            self.tx.executemany("INSERT INTO logs(execution_id, path, level, message, at) VALUES (?,?,?,?,?)",
                                self._new_logs)
            self._new_logs.clear()
        if self.row_pending:
            if self._state_at is not None:
                self.row["updated_at"] = self._state_at
            insert_execution(self.tx, self.row)
            self.row_pending = False
            self._state_at = None
        elif self._state_at is not None:
            self.tx.execute("UPDATE executions SET state=?, updated_at=? WHERE id=?",
                            (self.row["state"], self._state_at, self.execution_id))
            self._state_at = None

    def commit(self, durable: bool = False) -> None:
        """End this step. ``durable``: it must be on disk now (before an outside effect, or
        before sleeping); otherwise a shared run leaves the commit to its caller."""
        self.flush()
        if durable and not self.queued:  # resumable by whoever finds the lease lapsed
            work.claim_new(self.tx, self.execution_id, self.owner, self.engine.clock, self.engine.lease)
            self.queued, self.gen = True, 0
        if self.shared:
            if self._savepoint:
                self.tx.execute("RELEASE execution_run")
                self._savepoint = False
            if durable:
                self.db.commit()
        else:
            self.db.commit()
        self._tx = None

    def undo(self) -> None:
        """Roll back this run's uncommitted step (only its own savepoint when shared)."""
        self._dirty_runs.clear()
        self._new_logs.clear()
        self._state_at = None
        if self.shared:
            conn = self.db.connection()
            if self._savepoint and conn.in_transaction:
                conn.execute("ROLLBACK TO execution_run")
                conn.execute("RELEASE execution_run")
            self._savepoint = False
        else:
            self.db.rollback()
        self._tx = None

    def now(self) -> str:
        return format_time(self.engine.clock.now())

    # -- entry point --------------------------------------------------------------------
    def advance(self) -> bool:
        """Walk as far as possible. Returns True when more work was queued meanwhile.

        Order as in Kestra: ``tasks``; on failure ``errors``; then ``finally`` whatever
        happened (also after a deny or a cancel, while the execution is still RUNNING; a
        failing ``finally`` task fails an execution that would have succeeded); then the
        final state is written, flow ``outputs`` rendered, and ``afterExecution`` runs with
        ``execution.state`` set (its failures never change that state)."""
        if self.queued:
            return self._advance()
        # never queued (started in this transaction): nobody else can see it, so only this
        # thread can queue it again; what it queues is noted (work.noting_enqueues) rather than
        # looked for in the work table (performance: a statement, on PostgreSQL a round trip,
        # per start)
        with work.noting_enqueues() as self._enqueued:
            return self._advance()

    def _advance(self) -> bool:
        self.begin()
        try:
            if self.row["state"] in TERMINAL_EXECUTION_STATES:
                if self.flow.after_execution:  # a retry or a crash left some of it to do
                    self.outputs = outputs_tree(sorted(self.runs.values(), key=lambda r: r["seq"]))
                    self.walk_list(self.flow.after_execution, "", Scope())
                more = self.release()
                self.schedule_retry()
                self.commit()  # (this path used to leave its transaction open)
                return more
            if self.row["state"] == "QUEUED":  # waits for a concurrency slot (runtime.concurrency)
                more = self.release()
                self.commit()
                return more
            self.set_state("RUNNING")
            stop: Stop | None = None
            status = DONE
            try:
                status = self.walk_list(self.flow.tasks, "", Scope())
                if status == FAILED and self.flow.errors:
                    error_status = self.walk_list(self.flow.errors, "", Scope())
                    status = WAITING if error_status == WAITING else FAILED
            except Stop as raised:
                stop = raised
            if stop is None and status == WAITING:
                return self.wait()
            if self.flow.finally_tasks:
                if stop is not None:
                    self.close_pending(stop.state)
                final_status = self.walk_list(self.flow.finally_tasks, "", Scope())
                if final_status == WAITING:  # a retry inside `finally`
                    return self.wait()
                if final_status == FAILED and stop is None:
                    status = FAILED
            if stop is not None:
                return self.finish(stop.state, stop.message)
            if status == FAILED:
                return self.finish("FAILED", self.first_error())
            return self.finish("WARNING" if self.warned() else "SUCCESS", None)
        except work.LeaseLost:
            self.undo()
            return False
        except BaseException:
            self.undo()
            raise

    def warned(self) -> bool:
        """A task ended WARNING and does not say `allowWarning: true` (Kestra: then the
        execution ends SUCCESS)."""
        tasks = {t.id: t for t in self.flow.all_tasks()}
        for r in self.runs.values():
            if r["state"] == "WARNING":
                task = tasks.get(r["task_id"])
                if task is None or task.props.get("allowWarning") is not True:
                    return True
        return False

    def wait(self) -> bool:
        """Stop here for now: PAUSED while a decision is awaited, else RUNNING (a task waits
        for its next attempt). Returns True when more work was queued meanwhile."""
        self.set_state("PAUSED" if self.waiting_on_request else "RUNNING")
        more = self.release()
        self.schedule_retry()
        self.commit()
        return more

    def schedule_retry(self) -> None:
        """Put the work row at the first pending retry time (a durable due row, not a sleep)."""
        if self.retry_due:
            work.enqueue(self.tx, self.execution_id, min(self.retry_due))

    def close_pending(self, state: str) -> None:
        now = self.now()
        # locked (PostgreSQL), so a decision racing the end of the execution either commits first
        # (and the request is no longer pending here) or finds it cancelled. This runner holds the
        # execution's work row already; deciders lock that row before the request too
        # (store.locks.lock_work_of), so the two never wait for each other in a circle
        pending = self.tx.execute("SELECT id FROM requests WHERE execution_id=? AND state='PENDING' ORDER BY id"
                                  + for_update(self.tx), (self.execution_id,)).fetchall()
        for (request_id,) in pending:
            close_request(self.tx, request_id, "CANCELLED", by=SYSTEM.name, now=now,
                          reason=f"execution ended {state}")

    def finish(self, state: str, error: str | None) -> bool:
        if self.row_pending:
            self.flush()
        state, error, flow_outputs = self.flow_outputs(state, error)
        now = self.now()
        self.close_pending(state)
        self.tx.execute("UPDATE executions SET state=?, updated_at=?, ended_at=?, error=?, outputs=? WHERE id=?",
                        (state, now, now, error, flow_outputs, self.execution_id))
        self.row["state"] = state
        self._state_at = None  # written just now
        append_event(self.tx, at=now, actor=SYSTEM.name, action="execution.ended", namespace=self.flow.namespace,
                     flow_id=self.flow.id, execution_id=self.execution_id, data={"state": state, "error": error})
        if self.flow.concurrency is not None:
            from signoff.engine.runtime.concurrency import start_queued

            self.dequeued += start_queued(self.tx, self.flow, now)
        if self.flow.after_execution:
            self.walk_list(self.flow.after_execution, "", Scope())
        from signoff.engine.triggers.flow_trigger import on_execution_ended

        on_execution_ended(self.engine, self.tx, self.row, now)  # Flow triggers start with this commit
        self.release()
        self.schedule_retry()
        self.commit()
        return False

    def flow_outputs(self, state: str, error: str | None) -> tuple[str, str | None, str | None]:
        """(state, error, outputs JSON) once the flow's ``outputs`` are rendered (see
        engine.runtime.flow_outputs for the rules)."""
        if not self.flow.outputs:
            return state, error, None
        from signoff.engine.runtime.flow_outputs import render_outputs

        variables = self.flow_variables()
        variables["execution"]["state"] = state
        values, problems = render_outputs(self.flow.outputs, variables, self.functions)
        now = self.now()
        failing = state in ("SUCCESS", "WARNING") and bool(problems)
        for message in problems:
            self._new_logs.append((self.execution_id, "outputs", "ERROR" if failing else "WARN", message, now))
        if failing:
            state, error = "FAILED", "; ".join(problems)
        return state, error, jsonutil.dumps(values)

    def release(self) -> bool:
        """Drop this run's work row (see work.release); True when more work is queued."""
        if self.queued:
            return work.release(self.tx, self.execution_id, self.owner, self.gen)
        # never queued: only this thread can have made a row since (see advance)
        return self.execution_id in self._enqueued

    def set_state(self, state: str) -> None:
        if self.row["state"] != state:  # written by flush(), when the step commits
            self._state_at = self.now()
            self.row["state"] = state

    def first_error(self) -> str | None:
        failed = [r for r in self.runs.values() if r["state"] == "FAILED" and r["error"]]
        failed.sort(key=lambda r: r["seq"])
        return failed[0]["error"] if failed else None

    # -- variables ----------------------------------------------------------------------
    def flow_variables(self) -> dict[str, Any]:
        """What every expression of this execution sees, outside any task."""
        return {
            "inputs": self.inputs,
            "outputs": self.outputs,
            "flow": {"id": self.flow.id, "namespace": self.flow.namespace, "revision": self.flow.revision,
                     "description": self.flow.description},
            "execution": {"id": self.execution_id, "startDate": self.row["created_at"],
                          "originalId": self.row.get("original_id") or self.execution_id,
                          "state": self.row["state"]},
            "trigger": self.trigger,
            "labels": self.labels,
            "vars": self.flow.variables,
        }

    def variables(self, task: Task, path: str, scope: Scope, attempt: int = 1) -> dict[str, Any]:
        return {
            **self.flow_variables(),
            "task": {"id": task.id, "type": task.type},
            "taskrun": {"id": path, "startDate": self.now(), "attemptsCount": attempt,
                        "value": scope.loop_values[-1] if scope.loop_values else None,
                        "iteration": scope.iteration},
            "parents": scope.parents,
            "parent": scope.parents[-1] if scope.parents else None,
        }

    def evaluate(self, task: Task, path: str, scope: Scope, expr: Any) -> Any:
        if not isinstance(expr, str):
            return expr
        try:
            return evaluate(expr, self.variables(task, path, scope), self.functions)
        except ExpressionError as exc:
            raise TaskFailed(f"task `{task.id}`: {exc}") from None

    def render(self, task: Task, path: str, scope: Scope, value: Any) -> Any:
        try:
            return render_data(value, self.variables(task, path, scope), self.functions)
        except ExpressionError as exc:
            raise TaskFailed(f"task `{task.id}`: {exc}") from None

    def record_outputs(self, task: Task, scope: Scope, outputs: dict[str, Any]) -> None:
        place(self.outputs, task.id, [str(value) for value in scope.loop_values], outputs)

    # -- task runs ----------------------------------------------------------------------
    def save_run(self, path: str, task: Task, state: str, *, outputs: dict[str, Any] | None = None,
                 value: Any = None, error: str | None = None, attempt: int = 1,
                 logs: list[tuple[str, str]] | None = None, ending: Ending | None = None) -> None:
        """Note a task run's new state (written when the step commits). ``ending``: a task in
        its after-decision block that will end as WARNING or FAILED, stored explicitly
        (``ends_as`` and the message in ``error``) so a resumed run ends it the same way."""
        if ending is not None:
            error = ending.message
        now = self.now()
        existing = self.runs.get(path)
        if existing is None:
            self.seq += 1
            seq = self.seq
            started = now
        else:
            seq, started = existing["seq"], existing["started_at"]
            if value is None:
                value = existing["value"]
        ended = now if state in FINISHED_RUN_STATES | {"FAILED", "KILLED"} else None
        record = {"execution_id": self.execution_id, "path": path, "task_id": task.id, "type": task.type,
                  "state": state, "attempt": attempt, "outputs": jsonutil.dumps(outputs or {}), "value": value,
                  "started_at": started, "ended_at": ended, "error": error, "seq": seq,
                  "ends_as": ending.state if ending is not None else None}
        self._dirty_runs[path] = record  # written by flush(), when the step commits
        floor = LOG_ORDER.get(str(task.props.get("logLevel") or "TRACE").upper(), 0)  # Kestra's `logLevel`
        for level, message in logs or ():
            if LOG_ORDER.get(str(level).upper(), len(LOG_ORDER)) >= floor:
                self._new_logs.append((self.execution_id, path, level, message, now))
        self.runs[path] = record

    # -- walking ------------------------------------------------------------------------
    def walk_list(self, tasks: list[Task], prefix: str, scope: Scope) -> str:
        for task in tasks:
            status = self.walk_task(task, prefix, scope)
            if status != DONE:
                return status
        return DONE

    def walk_task(self, task: Task, prefix: str, scope: Scope) -> str:
        path = prefix + task.id
        run = self.runs.get(path)
        if run is not None and run["state"] in FINISHED_RUN_STATES:
            self.restore_outputs(task, path, scope, run)
            return DONE
        if run is not None and run["state"] in ("FAILED", "KILLED"):
            if run["state"] == "KILLED" and task.type in (PAUSE, APPROVAL):
                # a deny or cancel seen again (a retry in `finally` came back): the same Stop
                return self.pause_task(task, path, scope, run)
            self.restore_inner_outputs(task, path, scope, run)
            return FAILED
        try:
            if run is None and self.skipped(task, path, scope):
                self.save_run(path, task, "SKIPPED")
                return DONE
            short = task.short_type
            if task.type in (PAUSE, APPROVAL):
                return self.pause_task(task, path, scope, run)
            if short == "If":
                return self.branch_task(task, path, scope, run, self.choose_if)
            if short == "Switch":
                return self.branch_task(task, path, scope, run, self.choose_case)
            if short == "Sequential":
                children = self.walk_list(task.blocks.get("tasks", []), path + "/", scope)
                return self.container(task, path, scope, children)
            if short == "Parallel":
                return self.parallel_task(task, path, scope)
            if short == "ForEach":
                return self.foreach_task(task, path, scope, run)
            if short == "Resume":
                return self.resume_task(task, path, scope)
            return self.leaf_task(task, path, scope)
        except TaskFailed as failure:
            return self.fail(task, path, failure)

    def restore_outputs(self, task: Task, path: str, scope: Scope, run: dict[str, Any]) -> None:
        """Put a finished task's outputs back in scope on replay, with those of every finished
        task inside it: a later task may name any of them by id (``outputs.single_approval``
        after the If that ran it), so a replay that stops at the container would run the next
        task with another context than the first walk had."""
        self.record_outputs(task, scope, jsonutil.loads(run["outputs"], {}))
        self.restore_inner_outputs(task, path, scope, run)

    def restore_inner_outputs(self, task: Task, path: str, scope: Scope, run: dict[str, Any]) -> None:
        for prefix, children, inner in self.child_blocks(task, path, scope, run):
            for child in children:
                child_run = self.runs.get(prefix + child.id)
                if child_run is None:
                    continue
                if child_run["state"] in FINISHED_RUN_STATES:
                    self.restore_outputs(child, prefix + child.id, inner, child_run)
                else:
                    self.restore_inner_outputs(child, prefix + child.id, inner, child_run)

    def child_blocks(self, task: Task, path: str, scope: Scope,
                     run: dict[str, Any]) -> list[tuple[str, list[Task], Scope]]:
        """The blocks a task walked, each as (path prefix, tasks, scope), as the walk names them."""
        if not task.blocks:
            return []
        if task.type in (PAUSE, APPROVAL):
            return [(f"{path}/{name}/", children, scope) for name, children in task.blocks.items()]
        short = task.short_type
        if short in ("If", "Switch"):
            block = run["value"]
            return [(path + "/", task.blocks[block], scope)] if block in task.blocks else []
        if short == "ForEach":
            values = jsonutil.loads(run["value"], [])
            return [(f"{path}/{index}/", task.blocks.get("tasks", []), scope.iterate(index, value))
                    for index, value in enumerate(values if isinstance(values, list) else [])]
        return [(path + "/", children, scope) for children in task.blocks.values()]

    def fail(self, task: Task, path: str, failure: TaskFailed) -> str:
        allowed = bool(task.props.get("allowFailure"))
        state = "WARNING" if failure.warning or allowed else "FAILED"
        existing = self.runs.get(path)
        self.save_run(path, task, state, error=failure.message,
                      attempt=existing["attempt"] if existing else 1,
                      logs=[("ERROR" if state == "FAILED" else "WARN", failure.message)])
        return DONE if state == "WARNING" else FAILED

    def skipped(self, task: Task, path: str, scope: Scope) -> bool:
        if task.props.get("disabled") is True:
            return True
        if "runIf" in task.props:
            return not truthy(self.evaluate(task, path, scope, task.props["runIf"]))
        return False

    def container(self, task: Task, path: str, scope: Scope, status: str) -> str:
        if status == DONE:
            self.save_run(path, task, "SUCCESS")
        elif status == FAILED:
            self.save_run(path, task, "FAILED", error=f"a task inside `{task.id}` failed")
        elif path not in self.runs:
            self.save_run(path, task, "RUNNING")
        return status

    def choose_if(self, task: Task, path: str, scope: Scope) -> str:
        return "then" if truthy(self.evaluate(task, path, scope, task.props.get("condition"))) else "else"

    def choose_case(self, task: Task, path: str, scope: Scope) -> str:
        value = self.evaluate(task, path, scope, task.props.get("value"))
        key = json.dumps(value) if isinstance(value, (dict, list)) else ("" if value is None else str(value))
        if isinstance(value, bool):
            key = "true" if value else "false"
        return f"cases.{key}" if f"cases.{key}" in task.blocks else "defaults"

    def branch_task(self, task: Task, path: str, scope: Scope, run: dict[str, Any] | None,
                    choose: Callable[[Task, str, Scope], str]) -> str:
        if run is None:
            block = choose(task, path, scope)
            self.save_run(path, task, "RUNNING", value=block)
        else:
            block = run["value"]
        status = self.walk_list(task.blocks.get(block, []), path + "/", scope)
        return self.container(task, path, scope, status)

    def parallel_task(self, task: Task, path: str, scope: Scope) -> str:
        statuses = [self.walk_task(child, path + "/", scope) for child in task.blocks.get("tasks", [])]
        status = FAILED if FAILED in statuses else WAITING if WAITING in statuses else DONE
        return self.container(task, path, scope, status)

    def foreach_task(self, task: Task, path: str, scope: Scope, run: dict[str, Any] | None) -> str:
        if run is None:
            values = self.render(task, path, scope, task.props.get("values"))
            if isinstance(values, str):
                try:
                    values = json.loads(values)
                except json.JSONDecodeError:
                    raise TaskFailed(f"task `{task.id}`: values must be a list or a JSON array, "
                                     f"got `{values[:80]}`") from None
            if not isinstance(values, list):
                raise TaskFailed(f"task `{task.id}`: values must be a list, got {type(values).__name__}")
            self.save_run(path, task, "RUNNING", value=jsonutil.dumps(values))
        else:
            values = jsonutil.loads(self.runs[path]["value"], [])
        for index, value in enumerate(values):
            status = self.walk_list(task.blocks.get("tasks", []), f"{path}/{index}/", scope.iterate(index, value))
            if status != DONE:
                return self.container(task, path, scope, status)
        return self.container(task, path, scope, DONE)

    # -- leaf tasks ---------------------------------------------------------------------
    def leaf_task(self, task: Task, path: str, scope: Scope) -> str:
        from signoff.engine.tasks.registry import load_handlers

        handler = load_handlers().get(task.type)
        if handler is None:  # the loader refuses unknown types; this guards old revisions
            raise TaskFailed(f"task `{task.id}`: no handler for type {task.type}")
        policy = self.retry_policy(task, path, scope)
        external = task.type in EXTERNAL_TYPES
        if external and not self.effects:
            raise LeftToRunner(f"task `{task.id}` has an outside effect")
        previous = self.runs.get(path)
        if previous is not None and previous["state"] == "RETRYING":
            due = jsonutil.loads(previous["value"], {}).get("retryAt")
            if due and due > self.now():
                self.retry_due.append(due)
                return WAITING
            attempt = previous["attempt"] + 1
        elif previous is not None:  # cut off between its effect and its commit: the same attempt again
            attempt = previous["attempt"]
        else:
            attempt = 1
        first_started = previous["started_at"] if previous is not None else self.now()
        self.ensure_input_files()
        ctx = SimpleContext(task, self.variables(task, path, scope, attempt), execution_id=self.execution_id,
                            namespace=self.flow.namespace, flow_id=self.flow.id, attempt=attempt,
                            data_dir=self.engine.data_dir,
                            idempotency_key=f"{self.execution_id}:{path}:{attempt}", functions=self.functions)
        if external:
            # make the state before the effect durable, then run it outside a transaction
            self.save_run(path, task, "RUNNING", attempt=attempt)
            self.commit(durable=True)
        try:
            try:
                outputs = self.run_handler(handler, ctx, external)
            except ExpressionError as exc:
                raise TaskFailed(f"task `{task.id}`: {exc}") from None
        except TaskFailed as failure:
            if external:
                self.begin()
            if policy is not None and not failure.warning:
                at = policy.next_attempt_at(attempt, parse_time(first_started), self.engine.clock.now())
                if at is not None:
                    due = format_time(at)
                    self.save_run(path, task, "RETRYING", attempt=attempt, value=jsonutil.dumps({"retryAt": due}),
                                  error=failure.message,
                                  logs=[*ctx.logs, ("WARN", f"attempt {attempt} failed: {failure.message}; "
                                                            f"attempt {attempt + 1} at {due}")])
                    self.retry_due.append(due)
                    return WAITING
            self.save_run(path, task, "RUNNING", attempt=attempt, logs=ctx.logs)
            return self.fail(task, path, failure)
        if external:
            self.begin()
        retried = attempt > 1 and policy is not None and policy.warning_on_retry
        self.save_run(path, task, "WARNING" if retried else "SUCCESS", outputs=outputs, attempt=attempt,
                      logs=ctx.logs, error=f"succeeded on attempt {attempt}" if retried else None)
        self.record_outputs(task, scope, outputs)
        return DONE

    def ensure_input_files(self) -> None:
        """Before the first task of this run: the FILE inputs as local files on this replica
        (written from the database when the execution was started through another one)."""
        if self._files_ready:
            return
        self._files_ready = True
        if any(spec.type == "FILE" for spec in self.flow.inputs):
            from signoff.engine.inputs.files import ensure_local

            moved = ensure_local(self.db, self.engine.data_dir, _strings(self.inputs))
            if moved:
                self.inputs = _replaced(self.inputs, moved)

    def retry_policy(self, task: Task, path: str, scope: Scope) -> RetryPolicy | None:
        raw = task.props.get("retry")
        if not raw:
            return None
        rendered = self.render(task, path, scope, raw)
        try:
            return RetryPolicy.from_props(rendered if isinstance(rendered, dict) else {})
        except ValueError as err:
            raise TaskFailed(f"task `{task.id}`: {err}") from None

    def run_handler(self, handler: Any, ctx: SimpleContext, external: bool) -> dict[str, Any]:
        """Run a leaf task's handler; an outside effect (run outside any transaction) keeps
        this advance's lease renewed while it runs, however long it takes."""
        if not external:
            return handler(ctx) or {}
        with work.kept_alive(self.db, self.execution_id, self.owner, self.engine.clock, self.engine.lease):
            return handler(ctx) or {}

    # -- Resume: decide another execution's pause ------------------------------------------
    def resume_task(self, task: Task, path: str, scope: Scope) -> str:
        props = self.render(task, path, scope, task.props)
        target = props.get("executionId")
        if not target:
            raise TaskFailed(f"task `{task.id}`: executionId is required to resume another execution")
        request = self.tx.execute("SELECT id FROM requests WHERE execution_id=? AND state='PENDING'"
                                  " ORDER BY created_at LIMIT 1", (target,)).fetchone()
        if request is None:
            raise TaskFailed(f"task `{task.id}`: execution {target} has no pending pause to resume")
        actor = SYSTEM.__class__(name=f"flow:{self.flow.namespace}.{self.flow.id}", source="system")
        outcome = decide_in_tx(self.tx, now=self.now(), actor=actor, request_id=request[0],
                               decision=DecisionRequest("approve", props.get("inputs") or {}, None,
                                                        f"resume task {self.execution_id}/{task.id}",
                                                        automatic=True, auto_expression="Resume task"),
                               policy=self.engine.policy,
                               enqueue=lambda tx, eid: work.enqueue(tx, eid, self.now()),
                               notifications=self.engine.notifications, functions=self.form_functions)
        if not outcome.ok:
            raise TaskFailed(f"task `{task.id}`: could not resume {target}: {outcome.message}")
        outputs = {"executionId": target, "requestId": request[0]}
        self.save_run(path, task, "SUCCESS", outputs=outputs)
        self.record_outputs(task, scope, outputs)
        return DONE

    # -- Pause and Approval -----------------------------------------------------------------
    def pause_task(self, task: Task, path: str, scope: Scope, run: dict[str, Any] | None) -> str:
        from signoff.engine.approvals.requests import create_request

        if run is None:
            request_id = create_request(self, task, path, scope)
            self.save_run(path, task, "PAUSED", value=request_id)
            auto = task.props.get("autoApprove") if task.type == APPROVAL else task.props.get("when")
            state: str | None = "PENDING"
            if auto is not None:
                value = self.evaluate(task, path, scope, auto)
                if truthy(value):
                    state = decide_in_tx(self.tx, now=self.now(), actor=SYSTEM, request_id=request_id,
                                         decision=DecisionRequest("approve", {}, None, "auto", automatic=True,
                                                                  auto_expression=value),
                                         policy=self.engine.policy, enqueue=lambda tx, eid: None,
                                         notifications=self.engine.notifications,
                                         functions=self.form_functions).state
            if state == "PENDING":
                hook = "onPause" if task.type == PAUSE else "onWait"
                hook_tasks = task.blocks.get(hook, [])
                if not hook_tasks:
                    # performance: made just now and nothing ran since: it is pending, no need to
                    # read it back (one statement of every start)
                    self.waiting_on_request = True
                    return WAITING
                status = self.walk_list(hook_tasks, f"{path}/{hook}/", scope)
                if status == FAILED:
                    return FAILED
        run = self.runs[path]
        if run["state"] == "RUNNING":  # decided earlier; now in its after-decision block
            ending = Ending(run["ends_as"], run["error"] or "") if run["ends_as"] else None
            return self.after_decision(task, path, scope, jsonutil.loads(run["outputs"], {}), ending)
        request = self.tx.execute("SELECT * FROM requests WHERE id=?", (run["value"],)).fetchone()
        state = request["state"]
        if state == "PENDING":
            self.waiting_on_request = True
            return WAITING
        result = jsonutil.loads(request["result"], {})
        decisions = [dict(d) for d in self.tx.execute(
            "SELECT actor AS by, verdict, reason, at AS on_, automatic FROM decisions WHERE request_id=? ORDER BY id",
            (request["id"],))]
        for d in decisions:
            d["on"] = d.pop("on_")
            d["automatic"] = bool(d["automatic"])
        rules = jsonutil.loads(request["rules"], {})
        if state == "CANCELLED":
            raise Stop("KILLED", f"approval request {request['id']} cancelled by {result.get('by')}: "
                                 f"{result.get('reason') or 'no reason given'}")
        if state == "EXPIRED":
            return self.expired(task, path, scope, request, rules, decisions)
        verdict = "APPROVED" if state == "APPROVED" else "DENIED"
        outputs = self.decision_outputs(task, request, result, decisions, verdict, result.get("inputs") or {})
        if verdict == "DENIED":
            return self.denied(task, path, scope, outputs, result)
        self.save_run(path, task, "RUNNING", outputs=outputs)
        return self.after_decision(task, path, scope, outputs, None)

    def decision_outputs(self, task: Task, request: sqlite3.Row, result: dict[str, Any],
                         decisions: list[dict[str, Any]], verdict: str, values: dict[str, Any]) -> dict[str, Any]:
        if task.type == PAUSE:
            return {"onResume": values,
                    "resumed": {"by": result.get("by"), "on": result.get("on"), "to": "RUNNING"},
                    "decision": verdict, "decisions": decisions}
        return {"decision": verdict, "auto": bool(result.get("automatic")), "by": result.get("by"),
                "on": result.get("on"), "comment": result.get("reason"), "inputs": values,
                "due": request["due_at"], "decisions": decisions}

    def after_decision(self, task: Task, path: str, scope: Scope, outputs: dict[str, Any],
                       ending: Ending | None) -> str:
        """Run the block that follows a decision (Pause `tasks`, Approval onApprove/onDeny);
        ``ending``: the task ends as WARNING or FAILED (a deny or an expiry that says so) once
        that block has run."""
        self.record_outputs(task, scope, outputs)
        denied = outputs.get("decision") == "DENIED"
        block = "tasks" if task.type == PAUSE else ("onDeny" if denied else "onApprove")
        status = self.walk_list(task.blocks.get(block, []), f"{path}/{block}/", scope)
        if status == FAILED and task.blocks.get("errors"):
            status = self.walk_list(task.blocks["errors"], f"{path}/errors/", scope)
            status = WAITING if status == WAITING else FAILED
        if status == WAITING:
            return WAITING
        if status == FAILED:
            self.save_run(path, task, "FAILED", outputs=outputs, error=f"a task after `{task.id}` failed")
            return FAILED
        if ending is not None:
            self.save_run(path, task, ending.state, outputs=outputs, error=ending.message)
            return DONE if ending.state == "WARNING" else FAILED
        self.save_run(path, task, "SUCCESS", outputs=outputs)
        return DONE

    def denied(self, task: Task, path: str, scope: Scope, outputs: dict[str, Any], result: dict[str, Any]) -> str:
        who = result.get("by")
        reason = result.get("reason") or "no reason given"
        behavior = (task.props.get("denyBehavior") or "").upper() if task.type == APPROVAL else ""
        message = f"denied by {who}: {reason}"
        if behavior == "CONTINUE":
            self.save_run(path, task, "RUNNING", outputs=outputs)
            return self.after_decision(task, path, scope, outputs, None)
        if behavior in ("WARN", "FAIL"):
            ending = Ending("WARNING" if behavior == "WARN" else "FAILED", message)
            self.save_run(path, task, "RUNNING", outputs=outputs, ending=ending)
            return self.after_decision(task, path, scope, outputs, ending)
        self.save_run(path, task, "KILLED", outputs=outputs, error=message)
        self.record_outputs(task, scope, outputs)  # `finally`, afterExecution and flow outputs see it
        if task.type == APPROVAL and task.blocks.get("onDeny"):
            self.walk_list(task.blocks["onDeny"], f"{path}/onDeny/", scope)
        raise Stop("CANCELLED" if behavior == "CANCEL" else "KILLED", message)

    def expired(self, task: Task, path: str, scope: Scope, request: sqlite3.Row, rules: dict[str, Any],
                decisions: list[dict[str, Any]]) -> str:
        behavior = (rules.get("expireBehavior") or "FAIL").upper()
        due = request["due_at"]
        message = f"no decision on `{task.id}` before {due}"
        result = {"by": SYSTEM.name, "on": request["decided_at"], "reason": "timeout", "automatic": True}
        if behavior in ("RESUME", "APPROVE", "WARN"):
            values = self.default_values(request)
            outputs = self.decision_outputs(task, request, result, decisions, "APPROVED", values)
            if task.type == APPROVAL:
                outputs["decision"] = "APPROVED" if behavior != "WARN" else "EXPIRED"
            warn = Ending("WARNING", message) if behavior == "WARN" else None
            self.save_run(path, task, "RUNNING", outputs=outputs, ending=warn)
            return self.after_decision(task, path, scope, outputs, warn)
        if behavior == "DENY":
            outputs = self.decision_outputs(task, request, result, decisions, "DENIED", {})
            return self.denied(task, path, scope, outputs, {**result, "reason": message})
        outputs = self.decision_outputs(task, request, result, decisions, "EXPIRED", {})
        if behavior == "CANCEL":
            self.save_run(path, task, "KILLED", outputs=outputs, error=message)
            raise Stop("CANCELLED", message)
        self.save_run(path, task, "FAILED", outputs=outputs, error=message, logs=[("ERROR", message)])
        return FAILED

    def default_values(self, request: sqlite3.Row) -> dict[str, Any]:
        from signoff.engine.approvals.decide import validate_form

        return validate_form(request, {}, functions=self.form_functions(request)).values

    def form_functions(self, request: sqlite3.Row) -> dict[str, Any]:
        """Expression functions for a request's form defaults (its own execution's)."""
        return self.engine.functions(request["namespace"], request["flow_id"], request["execution_id"])


def _strings(value: Any) -> list[str]:
    """Every string inside a JSON-like value (the FILE input URIs among the inputs)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def _replaced(value: Any, strings: Mapping[str, str]) -> Any:
    """``value`` (JSON-like) with each string found in ``strings`` replaced by its mapping."""
    if isinstance(value, str):
        return strings.get(value, value)
    if isinstance(value, dict):
        return {k: _replaced(v, strings) for k, v in value.items()}
    if isinstance(value, list):
        return [_replaced(v, strings) for v in value]
    return value
