"""The approval service: the one facade everything a person can do goes through.

The CLI, the console (through LocalBackend) and the HTTP server call these methods and
nothing below them. Every call takes the acting identity; permission checks happen here.
Results are plain JSON-able dicts whose keys are the documented, stable `--json` / HTTP
shapes (README, "JSON output").
"""
from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Mapping
from contextlib import nullcontext
from functools import partial
from typing import TYPE_CHECKING, Any

from signoff.engine import jsonutil
from signoff.engine.approvals import outcome as oc
from signoff.engine.approvals.close import close_request
from signoff.engine.approvals.outcome import APPROVE, DENY, Outcome
from signoff.engine.approvals.rows import PENDING_ORDER_SQL
from signoff.engine.approvals.rows import PENDING_ROW_FIELDS as PENDING_ROW_FIELDS
from signoff.engine.audit import append_event
from signoff.engine.audit.service_mixin import AuditMixin
from signoff.engine.core import Engine
from signoff.engine.errors import InvalidInputs, NotFound, Refused, UsageError
from signoff.engine.identity import SYSTEM, Identity
from signoff.engine.nul import input_errors, refuse_nul
from signoff.engine.runtime import work
from signoff.engine.runtime.execution_row import EXECUTION_COLUMNS, insert_execution
from signoff.engine.runtime.outputs import outputs_tree
from signoff.engine.signing.service_mixin import SigningMixin
from signoff.engine.store.foreground import BULK_ITEMS
from signoff.engine.store.locks import (
    RetryableStorageError,
    defer_writes,
    lock_requests,
    lock_work_of,
    retrying,
    write_behind,
)

if TYPE_CHECKING:
    from signoff.engine.approvals.decide import DecisionRequest
    from signoff.engine.flows.model import Flow
    from signoff.engine.inputs.uploads import FileContent

# The runner, decisions, timers, notifications, flows and input specs are imported where
# they are used: the console paints its first screen before any of them is needed (start-up
# time matters there).

#: how many bulk items share one durable commit (each item still has its own savepoint), by
#: store. SQLite: 2,000. Its one writer commits chunk after chunk, and every commit writes the
#: hot pages again (index leaves, the audit tail): a 10,000-item bulk took ~1.45 s in chunks of
#: 500 and ~1.18 s in chunks of 2,000 (10,000: no faster), holding the write lock ~0.25 s at a
#: time. PostgreSQL: 500, two chunks in flight (engine.approvals.chunks). Progress is told, and
#: a stop takes effect, between chunks.
BULK_CHUNK = {"sqlite": 2000, "postgresql": 500}

#: the approvals a request (``requests r``) has so far, as a column expression
APPROVALS_SQL = "(SELECT count(*) FROM decisions d WHERE d.request_id=r.id AND d.verdict='approve')"


class ApprovalService(AuditMixin, SigningMixin):
    def __init__(self, engine: Engine, *, run_inline: bool = True, local_files: bool = True,
                 start_inline: bool = True) -> None:
        self.engine = engine
        self.db = engine.db
        #: may a FILE input name a file on this host? Yes for the embedded engine (it runs as the
        #: person at the keyboard); never for a server, whose callers could otherwise read the
        #: server's own files (engine.inputs.uploads): they upload the content instead
        self.local_files = local_files
        #: advance touched executions before returning (embedded mode); the server sets False
        #: and lets its background runner do it
        self.run_inline = run_inline
        #: a start runs its first steps in its own transaction, to its first pause: with
        #: ``run_inline`` all of them, outside effects included; without (a server) up to the
        #: first task with an outside effect, which is left to the runner (runner.LeftToRunner).
        #: Decision, performance: a server's start left wholly to the runner cost two more
        #: transactions (the runner's claim and advance; on PostgreSQL ~1.4 ms and 9-11 round
        #: trips per execution), and the caller learns its request id at once.
        #: False: the whole start is queued for the runner (tests of that path).
        self.start_inline = start_inline

    # -- housekeeping -------------------------------------------------------------------
    def tick(self, *, schedules: bool = False) -> int:
        """Apply due timers and continue any work left behind (by a killed process too).

        ``schedules``: also fire due Schedule triggers - what `signoff worker` and `signoff
        serve` do; a one-off command does not (it would load every flow file to look)."""
        from signoff.engine.notify import outbox
        from signoff.engine.runtime.driver import drive
        from signoff.engine.runtime.timers import process_due_timers
        from signoff.engine.signing.checkpoints import write_checkpoint
        from signoff.engine.triggers.schedule import process_due_schedules

        handled = process_due_timers(self.engine)
        if schedules:
            handled += process_due_schedules(self.engine)
        handled += drive(self.engine)
        # what triggers started in this tick is queued work, which drive() takes (this round or
        # the next tick): nothing here advances it by id, so its ids are dropped, not kept for
        # the life of a server or worker
        self.engine.take_triggered()
        handled += outbox.deliver_due(self.engine)
        write_checkpoint(self.engine)  # only when enough events were added since the last one
        return handled

    def _after_change(self, execution_ids: list[str]) -> bool:
        """Embedded mode: continue touched executions and send their notifications now.
        Returns whether any execution went on."""
        from signoff.engine.notify import outbox
        from signoff.engine.runtime.driver import drive
        from signoff.engine.signing.checkpoints import write_checkpoint

        write_checkpoint(self.engine)  # only when enough events were added since the last one
        if not self.run_inline:
            self.engine.take_triggered()  # queued work, for the runner (see tick)
            return False
        execution_ids = execution_ids + self.engine.take_triggered()
        if execution_ids:
            drive(self.engine, execution_ids)
        outbox.deliver_after_change(self.engine)
        return bool(execution_ids)

    def view_filter(self, actor: Identity) -> Callable[[str], bool]:
        """namespace -> may ``actor`` view it (the server's event feed filters with it)."""
        return self._view_filter(actor)

    def _view_filter(self, actor: Identity) -> Callable[[str], bool]:
        """namespace -> may ``actor`` view it; the policy is asked once per namespace."""
        return self._permission_filter(actor, "view")

    def decide_filter(self, actor: Identity) -> Callable[[str], bool]:
        """namespace -> may ``actor`` decide there at all (its role); a request's own rules
        (assignment, four-eyes, signatures) are still checked when it is decided. For lists
        that should not offer to decide what the person may only view."""
        return self._permission_filter(actor, "decide")

    def _permission_filter(self, actor: Identity, action: str) -> Callable[[str], bool]:
        """namespace -> may ``actor`` do ``action`` there; the policy is asked once per namespace."""
        policy = self.engine.policy
        verdicts: dict[str, bool] = {}

        def allowed(namespace: str) -> bool:
            ok = verdicts.get(namespace)
            if ok is None:
                ok = verdicts[namespace] = bool(policy.allows(actor, action, namespace))
            return ok

        return allowed

    def _check(self, actor: Identity, action: str, namespace: str, what: str) -> None:
        if not self.engine.policy.allows(actor, action, namespace):
            with self.db.write() as tx:
                append_event(tx, at=self.engine.now(), actor=actor.name, action="policy.denied", namespace=namespace,
                             data={"operation": action, "target": what})
            raise Refused(f"{actor.name} may not {action.replace('_', ' ')} in namespace {namespace} ({what})")

    # -- flows --------------------------------------------------------------------------
    def list_flows(self, actor: Identity) -> list[dict[str, Any]]:
        visible = self._view_filter(actor)
        return [flow_info(f) for f in self.engine.flows.list() if visible(f.namespace)]

    def flow_problems(self) -> list[str]:
        self.engine.flows.current  # noqa: B018 - loads on first use
        return [str(p) for p in self.engine.flows.problems]

    def _flow(self, actor: Identity, namespace: str, flow_id: str, action: str) -> Flow:
        """The flow, after the permission check (so a refusal reveals nothing about the flows);
        a miss names the flows the actor may see."""
        self._check(actor, action, namespace, f"flow {namespace}.{flow_id}")
        try:
            return self.engine.flows.get(namespace, flow_id)
        except NotFound as exc:
            visible = self._view_filter(actor)
            known = ", ".join(f"{f.namespace}.{f.id}" for f in self.engine.flows.list()
                              if visible(f.namespace)) or "none"
            raise NotFound(f"{exc} (known flows: {known})") from None

    def get_flow(self, actor: Identity, namespace: str, flow_id: str, *, revision: int | None = None) -> dict[str, Any]:
        """The current flow (or one of its revisions) with its YAML text."""
        if revision is None:
            flow = self._flow(actor, namespace, flow_id, "view")
            current = flow.revision or self._recorded_revision(flow)
            return {**flow_info(flow), "source": flow.source, "revision": current}
        self._check(actor, "view", namespace, f"flow {namespace}.{flow_id}")
        flow = self.engine.flows.at_revision(namespace, flow_id, revision)
        return {**flow_info(flow), "source": flow.source, "revision": revision}

    def _recorded_revision(self, flow: Flow) -> int | None:
        row = self.db.query_one("SELECT revision FROM flow_revisions WHERE namespace=? AND flow_id=? AND sha256=?",
                                (flow.namespace, flow.id, flow.sha256))
        return row[0] if row else None

    def save_flow(self, actor: Identity, text: str, *, mode: str = "upsert",
                  target: tuple[str, str] | None = None) -> dict[str, Any]:
        """Create or change a flow from its YAML text (engine.flows.api_flows); ``editor`` or
        ``admin`` of its namespace. ``target``: the namespace and id the URL names (PUT)."""
        from signoff.engine.flows import api_flows

        flow = api_flows.parse_pushed(text)
        if target is not None and target != (flow.namespace, flow.id):
            raise UsageError(f"the text defines {flow.namespace}.{flow.id}, not {target[0]}.{target[1]}: the "
                             "namespace and id of a flow cannot change (create a new flow instead)")
        self._check(actor, "edit", flow.namespace, f"flow {flow.namespace}.{flow.id}")
        with self.db.foreground(), self.db.write() as tx:
            revision, changed = api_flows.save(self.engine, tx, flow, mode=mode, actor=actor.name,
                                               now=self.engine.now())
        self.engine.flows.reload()
        return {**flow_info(self.engine.flows.get(flow.namespace, flow.id)), "source": flow.source,
                "revision": revision, "changed": changed}

    def delete_flow(self, actor: Identity, namespace: str, flow_id: str) -> dict[str, Any]:
        from signoff.engine.flows import api_flows

        self._check(actor, "edit", namespace, f"flow {namespace}.{flow_id}")
        with self.db.foreground(), self.db.write() as tx:
            revision = api_flows.delete(self.engine, tx, namespace, flow_id, actor=actor.name, now=self.engine.now())
        self.engine.flows.reload()
        return {"namespace": namespace, "id": flow_id, "revision": revision, "deleted": True}

    def flow_revisions(self, actor: Identity, namespace: str, flow_id: str) -> list[dict[str, Any]]:
        """Every recorded revision, oldest first, and which one is current."""
        self._check(actor, "view", namespace, f"flow {namespace}.{flow_id}")
        rows = self.db.query("SELECT revision, sha256, path, created_at FROM flow_revisions WHERE namespace=?"
                             " AND flow_id=? ORDER BY revision", (namespace, flow_id))
        if not rows:
            raise NotFound(f"no flow `{flow_id}` in namespace `{namespace}` has a recorded revision")
        current = self.engine.flows.current.get((namespace, flow_id))
        current_revision = (current.revision or self._recorded_revision(current)) if current else None
        return [{"revision": r["revision"], "sha256": r["sha256"], "created_at": r["created_at"],
                 "origin": "api" if r["path"].startswith("api:") else "file",
                 "current": r["revision"] == current_revision} for r in rows]

    def check_flow_text(self, text: str) -> list[dict[str, Any]]:
        """Every problem of a flow's YAML text with its line and column (nothing is stored)."""
        from signoff.engine.flows import api_flows

        return api_flows.problems_of(text)

    # -- executions ---------------------------------------------------------------------
    def start_execution(self, actor: Identity, namespace: str, flow_id: str, inputs: Mapping[str, Any],
                        *, labels: Mapping[str, Any] | None = None) -> dict[str, Any]:
        from signoff.engine.inputs.spec import mask
        from signoff.engine.runtime.concurrency import admission
        from signoff.engine.runtime.runner import ExecutionRun, LeftToRunner

        flow = self._flow(actor, namespace, flow_id, "start")
        if flow.disabled:
            raise UsageError(f"flow {namespace}.{flow_id} is disabled (`disabled: true` in {flow.path}); "
                             "set it to false to start executions")
        refuse_nul(labels=dict(labels or {}))
        values = self.validate_flow_inputs(flow, inputs)
        execution_id = self.engine.ids.execution_id()
        now = self.engine.now()
        all_labels = {**flow.labels, **dict(labels or {})}
        queued_whole = False  # left wholly to the runner (start_inline False)
        with self.db.foreground(), self.db.write() as tx:
            revision = self.engine.flows.ensure_revision(tx, flow)
            row = {"id": execution_id, "namespace": namespace, "flow_id": flow_id, "revision": revision,
                   "state": "CREATED", "inputs": jsonutil.dumps(values), "labels": jsonutil.dumps(all_labels),
                   "started_by": actor.name, "created_at": now, "updated_at": now, "ended_at": None, "error": None}
            append_event(tx, at=now, actor=actor.name, action="execution.started", namespace=namespace,
                         flow_id=flow_id, execution_id=execution_id,
                         data={"revision": revision, "inputs": mask(flow.inputs, values)})
            again: list[str] = []
            inline_error: Exception | None = None
            held = admission(tx, flow)
            if held is not None:  # beyond the flow's concurrency limit: queued, cancelled or failed
                state, why = held
                row.update(state=state, ended_at=None if state == "QUEUED" else now,
                           error=None if state == "QUEUED" else why)
                insert_execution(tx, row)
                append_event(tx, at=now, actor=SYSTEM.name,
                             action="execution.queued" if state == "QUEUED" else "execution.ended",
                             namespace=namespace, flow_id=flow_id, execution_id=execution_id,
                             data={"state": state, "error": why})
            elif self.start_inline:
                # performance: run to the first pause in this same transaction, so a start
                # costs one durable commit instead of three (create, claim, advance); the run
                # stores the execution row once, in the state it reaches, and writes no work
                # row unless it needs one (see ExecutionRun row/queued/insert_row).
                # A run that fails undoes only its own savepoint: the execution stays created
                # and queued, as when it was committed first. So does a server's run that
                # reaches an outside effect (LeftToRunner): the runner starts it afresh.
                run: ExecutionRun | None = None
                left = False
                defer_writes(tx)  # performance: the run's writes go out with the COMMIT (PostgreSQL)
                try:
                    with work.lease_holder() as owner:
                        run = ExecutionRun(self.engine, execution_id, owner, 0, shared=True, row=row,
                                           queued=False, insert_row=True, effects=self.run_inline)
                        if run.advance():
                            again.append(execution_id)
                        again.extend(run.dequeued)
                except LeftToRunner:
                    left = True
                except Exception as exc:  # noqa: BLE001 - re-raised after the commit below
                    inline_error = exc
                if not tx.in_transaction:  # an outside effect committed and the run stopped
                    self.db.begin()
                if left or inline_error is not None or run is None or run.row_pending:
                    insert_execution(tx, row, if_absent=True)
                    work.enqueue(tx, execution_id, now)
            else:
                defer_writes(tx)  # performance: sent with the COMMIT, one round trip for all
                insert_execution(tx, row)
                work.enqueue(tx, execution_id, now)
                queued_whole = True
            # performance: what the start returns is read as it commits (on PostgreSQL in the
            # COMMIT's round trip), not after it
            answer = None if queued_whole else self.db.queries_at_commit(_execution_reads(execution_id))
        if inline_error is not None:
            raise inline_error
        went_on = self._after_change(again)
        if answer is None:
            # performance: a start left to the runner is answered from the row it stored: no
            # task run, log or request of it exists before the runner takes it, so the four
            # reads of get_execution (a round trip and ~0.3 ms on PostgreSQL) would find none
            self._check(actor, "view", namespace, f"execution {execution_id}")
            return just_queued(row)
        if went_on:  # this execution, or one it started, went on after the commit: read what it did
            return self.get_execution(actor, execution_id)
        return self._execution_answer(actor, execution_id, answer.result())

    def _check_rerun(self, actor: Identity, row: Any, operation: str) -> None:
        """Restart and replay: the execution's requester (with ``start``) or an admin."""
        namespace = row["namespace"]
        policy = self.engine.policy
        own = row["started_by"] == actor.name and policy.allows(actor, "start", namespace)
        if own or policy.allows(actor, "admin", namespace):
            return
        with self.db.write() as tx:
            append_event(tx, at=self.engine.now(), actor=actor.name, action="policy.denied", namespace=namespace,
                         flow_id=row["flow_id"], execution_id=row["id"], data={"operation": operation})
        raise Refused(f"{actor.name} may not {operation} execution {row['id']}: only its requester "
                      f"({row['started_by']}) or an admin of {namespace} may")

    def restart_execution(self, actor: Identity, execution_id: str) -> dict[str, Any]:
        """Continue a FAILED or KILLED execution from its failed tasks (engine.runtime.rerun)."""
        from signoff.engine.runtime.rerun import execution_row, restart_in_tx

        row = execution_row(self.db.connection(), execution_id)
        self._check(actor, "view", row["namespace"], f"execution {execution_id}")
        self._check_rerun(actor, row, "restart")
        flow = self.engine.flows.at_revision(row["namespace"], row["flow_id"], row["revision"])
        with self.db.foreground(), self.db.write() as tx:
            restart_in_tx(tx, execution_row(tx, execution_id), flow, actor=actor.name, now=self.engine.now())
        self._after_change([execution_id])
        return self.get_execution(actor, execution_id)

    def replay_execution(self, actor: Identity, execution_id: str, *, from_task: str | None = None,
                         revision: int | None = None) -> dict[str, Any]:
        """A new execution copying ``execution_id`` up to ``from_task`` (engine.runtime.rerun)."""
        from signoff.engine.runtime.rerun import execution_row, replay_in_tx

        row = execution_row(self.db.connection(), execution_id)
        self._check(actor, "view", row["namespace"], f"execution {execution_id}")
        self._check_rerun(actor, row, "replay")
        if revision is not None and revision < 1:
            raise UsageError(f"--revision must be 1 or more, not {revision}")
        flow = self.engine.flows.at_revision(row["namespace"], row["flow_id"],
                                             row["revision"] if revision is None else revision)
        new_id = self.engine.ids.execution_id()
        with self.db.foreground(), self.db.write() as tx:
            replay_in_tx(tx, execution_row(tx, execution_id), new_id=new_id, actor=actor.name,
                         now=self.engine.now(), flow=flow, from_task=from_task)
        self._after_change([new_id])
        return self.get_execution(actor, new_id)

    def check_flow_inputs(self, actor: Identity, namespace: str, flow_id: str,
                          inputs: Mapping[str, Any]) -> dict[str, str]:
        """Per-field messages for a start form (empty when valid); nothing is stored."""
        flow = self._flow(actor, namespace, flow_id, "view")
        return self._start_inputs(flow, inputs, store_file=lambda file: file.name)[1]

    def validate_flow_inputs(self, flow: Flow, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """The typed values of a start's inputs, or InvalidInputs. FILE inputs are stored only
        once every input is valid, so a refused start leaves no file behind."""
        from signoff.engine.inputs.files import DeferredFiles

        files = DeferredFiles()
        values, errors = self._start_inputs(flow, inputs, store_file=files.take)
        if errors:
            raise InvalidInputs(errors)
        return files.store_all(values, self._store_file)

    def _start_inputs(self, flow: Flow, inputs: Mapping[str, Any],
                      store_file: Callable[[FileContent], str]) -> tuple[dict[str, Any], dict[str, str]]:
        """(values, errors) of a start's inputs. NUL is refused in what was given (before a
        FILE input is read) and in what parsing made of it (a JSON, YAML or ARRAY text may spell
        NUL as an escape): engine.nul. A server takes FILE inputs only as uploaded content
        (``local_files``, engine.inputs.uploads)."""
        from signoff.engine.inputs import validate_inputs

        refused = input_errors(inputs)
        if refused:
            return {}, refused
        result = validate_inputs(flow.inputs, dict(inputs), variables={}, store_file=store_file,
                                 local_paths=self.local_files, functions=self.engine.functions(flow.namespace, flow.id))
        return result.values, {**result.errors, **input_errors(result.values)}

    def _store_file(self, file: FileContent) -> str:
        """A FILE input: into the database (every replica reads it) and this replica's cache."""
        from signoff.engine.inputs.files import store_file

        return store_file(self.db, self.engine.data_dir, file, self.engine.clock.now())

    def list_executions(self, actor: Identity, *, state: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        sql = "SELECT * FROM executions"
        params: list[Any] = []
        if state:
            sql += " WHERE state=?"
            params.append(state.upper())
        sql += " ORDER BY created_at DESC LIMIT ?"
        params.append(limit)
        visible = self._view_filter(actor)
        return [execution_summary(r) for r in self.db.query(sql, params) if visible(r["namespace"])]

    def get_execution(self, actor: Identity, execution_id: str) -> dict[str, Any]:
        # performance: the four reads in one round trip on PostgreSQL
        return self._execution_answer(actor, execution_id, self.db.queries(_execution_reads(execution_id)))

    def _execution_answer(self, actor: Identity, execution_id: str, results: list[list[Any]]) -> dict[str, Any]:
        """An execution as get_execution gives it, from the rows of :func:`_execution_reads`."""
        found, runs, logs, requests = results
        row = found[0] if found else None
        if row is None:
            raise NotFound(f"no execution `{execution_id}`")
        self._check(actor, "view", row["namespace"], f"execution {execution_id}")
        return {
            **execution_summary(row),
            "task_runs": [{"path": r["path"], "task_id": r["task_id"], "type": r["type"], "state": r["state"],
                           "attempt": r["attempt"], "outputs": jsonutil.loads(r["outputs"], {}),
                           "started_at": r["started_at"], "ended_at": r["ended_at"], "error": r["error"]}
                          for r in runs],
            "outputs": outputs_tree(runs),
            "flow_outputs": jsonutil.loads(row["outputs"], None),
            "logs": [dict(log) for log in logs],
            "requests": [request_summary(r, r["approvals"]) for r in requests],
        }

    # -- requests -----------------------------------------------------------------------
    def list_pending(self, actor: Identity, *, namespace: str | None = None, flow: str | None = None,
                     q: str | None = None) -> list[dict[str, Any]]:
        """Pending requests the actor may see, in due-time order (no due time last; see
        engine.approvals.rows)."""
        sql = f"SELECT r.*, {APPROVALS_SQL} AS approvals FROM requests r WHERE r.state='PENDING'"
        params: list[Any] = []
        if namespace:
            if namespace.endswith("*"):
                sql += " AND r.namespace LIKE ? ESCAPE '\\'"
                prefix = namespace.rstrip("*")
                params.append(prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%")
            else:
                sql += " AND r.namespace=?"
                params.append(namespace)
        if flow:
            sql += " AND r.flow_id=?"
            params.append(flow)
        if q:
            sql += " AND (r.summary LIKE ? OR r.flow_id LIKE ? OR r.namespace LIKE ? OR r.requested_by LIKE ?)"
            params.extend([f"%{q}%"] * 4)
        sql += f" ORDER BY {PENDING_ORDER_SQL}"
        visible = self._view_filter(actor)
        return [request_summary(r, r["approvals"]) for r in self.db.query(sql, params) if visible(r["namespace"])]

    def pending_rows(self, actor: Identity, *, limit: int | None = None,
                     convert: Callable[[list[tuple[Any, ...]]], list[Any]] | None = None) -> list[Any]:
        """The pending list as compact tuples (fields: :data:`PENDING_ROW_FIELDS`), in the
        order of :meth:`list_pending`, for the console's large lists: the rows come in index
        order (requests with a due time, then those without), so the first ``limit`` rows cost
        no sort of the whole table; no per-row dicts or JSON parsing in Python; visibility is
        checked once per namespace. ``convert`` maps each batch of tuples (e.g. to the
        console's row objects), so a long list never exists twice in memory."""
        import sqlite3

        visible = self._view_filter(actor)
        sqlite = self.db.dialect == "sqlite"
        required = ("CAST(coalesce(nullif(nullif(json_extract(r.rules, '$.required'), 0), ''), 1) AS INTEGER)"
                    if sqlite else
                    "CAST(coalesce(nullif(nullif(CAST(r.rules AS jsonb)->>'required', '0'), ''), '1') AS BIGINT)")
        select = ("SELECT r.id, r.execution_id, r.namespace, r.flow_id, r.task_id, r.summary, r.requested_by,"
                  f" r.created_at, r.due_at, {APPROVALS_SQL}, {required}"
                  " FROM requests r WHERE r.state='PENDING'")
        parts = (select + " AND r.due_at IS NOT NULL ORDER BY r.due_at, r.created_at, r.id",
                 select + " AND r.due_at IS NULL ORDER BY r.created_at, r.id")
        out: list[tuple[Any, ...]] = []
        conn = self.db.connection()
        # the rows are read once, in order: a small page cache keeps this connection from
        # holding on to the whole table (tens of MB) after a full read
        cache_size = conn.execute("PRAGMA cache_size").fetchone()[0] if limit is None and sqlite else None
        if cache_size is not None:
            conn.execute("PRAGMA cache_size=-2048")
        snapshot = not conn.in_transaction  # both parts read the same state of the database
        try:
            if snapshot:
                conn.execute("BEGIN" if sqlite else "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            for sql in parts:
                cursor = conn.cursor()
                cursor.row_factory = None  # plain tuples
                try:
                    cursor.execute(sql)
                    while True:
                        want = 2000 if limit is None else min(2000, limit - len(out))
                        if want <= 0:
                            break
                        batch = cursor.fetchmany(want)
                        if not batch:
                            break
                        if not all(visible(ns) for ns in {r[2] for r in batch}):
                            batch = [r for r in batch if visible(r[2])]
                        out += convert(batch) if convert is not None else batch
                finally:
                    cursor.close()
                if limit is not None and len(out) >= limit:
                    break
        except sqlite3.DatabaseError:
            self.db.query(select + " LIMIT 0")  # raises the storage error, as every other query does
            raise
        finally:
            if snapshot and conn.in_transaction:
                conn.execute("COMMIT")
            if cache_size is not None:
                conn.execute(f"PRAGMA cache_size={int(cache_size)}")
        return out

    def request_summaries(self, actor: Identity, request_ids: Iterable[str]) -> list[dict[str, Any]]:
        """Summaries of these requests (any state), in the given order; unknown ids are skipped."""
        wanted = list(dict.fromkeys(request_ids))
        found: dict[str, dict[str, Any]] = {}
        visible = self._view_filter(actor)
        for start in range(0, len(wanted), 500):
            chunk = wanted[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for r in self.db.query(f"SELECT r.*, {APPROVALS_SQL} AS approvals FROM requests r"
                                   f" WHERE r.id IN ({marks})", chunk):
                if visible(r["namespace"]):
                    found[r["id"]] = request_summary(r, r["approvals"])
        return [found[i] for i in wanted if i in found]

    def last_change(self) -> int:
        """The latest audit sequence number: a cheap "did anything happen?" for live views."""
        row = self.db.query_one("SELECT max(seq) FROM audit")
        return row[0] or 0 if row else 0

    def changes(self, actor: Identity, after: int, *, limit: int = 1000,
                actions: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """Audit events after ``after`` (only ids and actions), oldest first, for live updates."""
        sql = "SELECT seq, action, namespace, request_id, execution_id, actor FROM audit WHERE seq>?"
        params: list[Any] = [after]
        if actions:
            acts = list(actions)
            sql += f" AND action IN ({','.join('?' * len(acts))})"
            params += acts
        sql += " ORDER BY seq LIMIT ?"
        out: list[dict[str, Any]] = []
        cursor = after
        visible = self._view_filter(actor)  # events without a namespace are shown to everyone here
        while len(out) < limit:  # visibility is filtered here, so read on until enough are visible
            rows = self.db.query(sql, [cursor, *params[1:], limit])
            if not rows:
                break
            cursor = rows[-1]["seq"]
            out += [dict(r) for r in rows if r["namespace"] is None or visible(r["namespace"])]
        return out[:limit]

    def _request_row(self, actor: Identity, request_id: str) -> sqlite3.Row:
        """The request's row, after the view check."""
        row = self.db.query_one("SELECT * FROM requests WHERE id=?", (request_id,))
        if row is None:
            raise NotFound(f"no approval request `{request_id}`")
        self._check(actor, "view", row["namespace"], f"request {request_id}")
        return row

    def get_request(self, actor: Identity, request_id: str) -> dict[str, Any]:
        from signoff.engine.inputs.spec import mask

        row = self._request_row(actor, request_id)
        decisions = self.db.query("SELECT d.actor, d.verdict, d.inputs, d.reason, d.at, d.origin, d.automatic,"
                                  " d.key_fingerprint, coalesce(d.signature, b.signature) AS signature FROM decisions d"
                                  " LEFT JOIN signed_batches b ON b.sha256=d.batch_sha256 WHERE d.request_id=?"
                                  " ORDER BY d.id", (request_id,))
        form = jsonutil.loads(row["form"], [])
        return {
            **request_summary(row, sum(1 for d in decisions if d["verdict"] == APPROVE)),
            "context": jsonutil.loads(row["context"], {}),
            "form": form,
            "rules": jsonutil.loads(row["rules"], {}),
            "result": jsonutil.loads(row["result"], None),
            "decisions": [{"by": d["actor"], "verdict": d["verdict"], "reason": d["reason"], "at": d["at"],
                           "origin": d["origin"], "automatic": bool(d["automatic"]),
                           "inputs": mask(form, jsonutil.loads(d["inputs"], {})),
                           "signature": signature_summary(d["key_fingerprint"], d["signature"])}
                          for d in decisions],
            "signatures": self.signature_mode(actor, row["namespace"]),
        }

    def decision_limits(self, actor: Identity, request_id: str) -> dict[str, Any]:
        """What stops ``actor`` from deciding this request, asked before showing a form (the
        web page shows a viewer no form): ``refusal`` (no role, not assigned; None when they may
        decide) and ``four_eyes`` (they started the execution and may deny but not approve).
        Nothing is audited here: the decision itself is checked and audited as always."""
        from signoff.engine.approvals.decide import eligibility_refusal, self_approval_allowed

        row = self._request_row(actor, request_id)
        rules = jsonutil.loads(row["rules"], {})
        started = self.db.query_one("SELECT started_by FROM executions WHERE id=?", (row["execution_id"],))
        four_eyes = bool(started is not None and started[0] == actor.name
                         and not self_approval_allowed(rules, self.engine.policy))
        return {"refusal": eligibility_refusal(actor, row, rules, self.engine.policy), "four_eyes": four_eyes}

    def validate(self, actor: Identity, request_id: str, inputs: Mapping[str, Any]) -> dict[str, str]:
        """Per-field messages for these form values (empty when valid); the console's live check."""
        from signoff.engine.approvals.decide import validate_form

        row = self._request_row(actor, request_id)
        return validate_form(row, inputs, functions=self.form_functions(row)).errors

    def form_functions(self, row: Any) -> dict[str, Any]:
        """The expression functions a request's form defaults see (now(), kv(), ...)."""
        return self.engine.functions(row["namespace"], row["flow_id"], row["execution_id"])

    # -- decisions ----------------------------------------------------------------------
    def approve(self, actor: Identity, request_ids: Iterable[str], inputs: Mapping[str, Any] | None = None,
                reason: str | None = None, **kw: Any) -> list[Outcome]:
        return self.decide(actor, request_ids, APPROVE, inputs=inputs, reason=reason, **kw)

    def deny(self, actor: Identity, request_ids: Iterable[str], reason: str | None = None, **kw: Any) -> list[Outcome]:
        return self.decide(actor, request_ids, DENY, reason=reason, **kw)

    def decide(self, actor: Identity, request_ids: Iterable[str], verdict: str, *,
               inputs: Mapping[str, Any] | None = None, reason: str | None = None,
               idempotency_key: str | None = None, origin: str = "cli",
               progress: Callable[[int, int], bool] | None = None,
               signatures: Mapping[str, Any] | None = None) -> list[Outcome]:
        """Decide one or many requests. Each item is atomic and independent; the result has
        one outcome per id, in order. ``progress(done, total)`` may return False to stop
        between chunks (the rest are reported as not decided). ``signatures``: request id ->
        {statement, signature} made by the client (engine.signing), checked before commit."""
        from signoff.engine.approvals.chunks import run_chunks
        from signoff.engine.approvals.decide import DecisionRequest, decide_in_tx, prefetch
        from signoff.engine.gcpause import collection_paused

        if verdict not in (APPROVE, DENY):
            raise UsageError(f"verdict must be `approve` or `deny`, not `{verdict}`")
        id_list = list(dict.fromkeys(request_ids))
        # what is the same for every item is refused once, before anything is written; form
        # values are checked per request after parsing (engine.approvals.decide.validate_form)
        refuse_nul(reason=reason, idempotency_key=idempotency_key, ids=id_list)
        if verdict == APPROVE and (refused := input_errors(inputs)):
            raise InvalidInputs(refused)
        decision = DecisionRequest(verdict, dict(inputs or {}), reason, origin,
                                   signatures=self._signature_check(signatures))

        def decide_chunk(tx: Any, chunk: list[str]) -> list[Outcome]:
            # performance: the chunk's rows are locked and read in a few statements, and its
            # writes are sent batched (engine.store.behind): to PostgreSQL in one pipeline (a
            # round trip per statement made a 10,000-item bulk ~10x slower than on SQLite), to
            # SQLite as one executemany per statement
            now = self.engine.now()
            found = prefetch(tx, chunk)
            remembered = self._remembered(tx, actor, idempotency_key, chunk)
            with write_behind(tx) as writes:
                # what is the same for every item, bound once (performance: per item, the keyword
                # arguments and a lambda cost ~2 us of a bulk decision's ~70)
                decide_one = partial(decide_in_tx, writes, now=now, actor=actor, decision=decision,
                                     policy=self.engine.policy, enqueue=partial(work.enqueue, now=now),
                                     notifications=self.engine.notifications, functions=self.form_functions,
                                     prefetched=found)
                return [self._decide_item(writes, now, actor, request_id, decision, idempotency_key,
                                          remembered, decide_one) for request_id in chunk]

        size = BULK_CHUNK[self.db.dialect]
        chunks = [id_list[start:start + size] for start in range(0, len(id_list), size)]
        # two chunks at a time on PostgreSQL (engine.approvals.chunks); one by one on SQLite (one
        # writer), for signed decisions (a batch statement is stored by the first chunk using it)
        # and with a progress callback (a stop must leave every later chunk undecided)
        parallel = 2 if (self.db.dialect == "postgresql" and not decision.signatures.signatures
                         and progress is None) else 1
        # before the background runner's transactions; a large bulk before every replica's
        # (engine.store.foreground)
        bulk = len(id_list) > BULK_ITEMS
        with self.db.foreground(bulk=bulk), collection_paused() if bulk else nullcontext():
            outcomes = run_chunks(chunks, lambda chunk: retrying(self.db, lambda tx: decide_chunk(tx, chunk)),
                                  progress=progress, parallel=parallel)
        touched = [o.execution_id for o in outcomes
                   if o.outcome == oc.DECIDED and o.state != "PENDING" and o.execution_id]
        self._after_change(touched)
        return outcomes

    @staticmethod
    def _remembered(tx: sqlite3.Connection, actor: Identity, idempotency_key: str | None,
                    request_ids: list[str]) -> dict[str, str]:
        """request id -> the outcome stored under ``idempotency_key`` for these requests."""
        found: dict[str, str] = {}
        if not idempotency_key:
            return found
        for start in range(0, len(request_ids), 1000):
            part = request_ids[start:start + 1000]
            marks = ",".join("?" * len(part))
            for request_id, outcome in tx.execute(
                    f"SELECT request_id, outcome FROM idempotency WHERE actor=? AND key=? AND request_id IN ({marks})",
                    (actor.name, idempotency_key, *part)):
                found[request_id] = outcome
        return found

    @staticmethod
    def _decide_item(tx: sqlite3.Connection, now: str, actor: Identity, request_id: str,
                     decision: DecisionRequest, idempotency_key: str | None, remembered: dict[str, str],
                     decide_one: Callable[..., Outcome]) -> Outcome:
        """One item of :meth:`decide` under its own savepoint; ``decide_one``: decide_in_tx with
        the call's arguments bound."""
        if request_id in remembered:
            return Outcome.from_dict(jsonutil.loads(remembered[request_id]))
        tx.execute("SAVEPOINT item")
        try:
            result = decide_one(request_id=request_id)
            if idempotency_key and result.ok:  # only what changed state is remembered
                tx.execute("INSERT INTO idempotency(actor, key, request_id, outcome, created_at) VALUES (?,?,?,?,?)"
                           " ON CONFLICT DO NOTHING",
                           (actor.name, idempotency_key, request_id, jsonutil.dumps(result.to_dict()), now))
            tx.execute("RELEASE item")
            return result
        except RetryableStorageError:
            raise  # the database aborted the whole transaction: the chunk runs again
        except Exception as exc:  # noqa: BLE001 - one bad item never rolls back the others
            if decision.signatures is not None:
                decision.signatures.stored.clear()  # a batch statement stored by this item is undone too
            tx.execute("ROLLBACK TO item")
            tx.execute("RELEASE item")
            return Outcome(request_id, "error", f"could not decide {request_id}: {exc}")

    def cancel(self, actor: Identity, request_ids: Iterable[str], reason: str | None = None,
               origin: str = "cli", signatures: Mapping[str, Any] | None = None) -> list[Outcome]:
        """Cancel pending requests (the requester or an admin); their executions are killed.
        ``signatures``: as for :meth:`decide` (a statement with verdict ``cancel``)."""
        from signoff.engine.notify import outbox
        from signoff.engine.signing.check import signature_mode

        ids = list(dict.fromkeys(request_ids))
        refuse_nul(reason=reason, ids=ids)
        checker = self._signature_check(signatures)

        def cancel_all(tx: Any) -> tuple[list[Outcome], list[str]]:
            outcomes: list[Outcome] = []
            touched: list[str] = []
            checker.stored.clear()  # a retried transaction stores its batch statements again
            now = self.engine.now()
            lock_work_of(tx, ids)  # the work rows first, as a runner takes them (store.locks)
            lock_requests(tx, ids)
            for request_id in ids:
                row = tx.execute("SELECT r.*, e.started_by FROM requests r JOIN executions e ON e.id=r.execution_id"
                                 " WHERE r.id=?", (request_id,)).fetchone()
                if row is None:
                    outcomes.append(Outcome(request_id, oc.NOT_FOUND, f"no approval request `{request_id}`"))
                    continue
                base = dict(id=request_id, execution_id=row["execution_id"])
                if row["state"] != "PENDING":
                    outcomes.append(Outcome(**base, outcome=oc.ALREADY_DECIDED, state=row["state"],
                                            message=f"request {request_id} is already {row['state'].lower()}"))
                    continue
                own = row["started_by"] == actor.name
                policy = self.engine.policy
                if not (policy.allows(actor, "cancel_any", row["namespace"]) or
                        (own and policy.allows(actor, "cancel_own", row["namespace"]))):
                    append_event(tx, at=now, actor=actor.name, action="policy.denied", namespace=row["namespace"],
                                 flow_id=row["flow_id"], execution_id=row["execution_id"], request_id=request_id,
                                 data={"operation": "cancel"})
                    outcomes.append(Outcome(**base, outcome=oc.NOT_ELIGIBLE, state="PENDING",
                                            message=f"{actor.name} may not cancel request {request_id}: only the "
                                                    f"requester ({row['started_by']}) or an admin may"))
                    continue
                refused, message, signature = checker.check(
                    tx, now=now, actor=actor.name, mode=signature_mode(policy, actor, row["namespace"]), row=row,
                    verdict="cancel", reason=reason, values={}, form=[])
                if refused:
                    append_event(tx, at=now, actor=actor.name, action="policy.denied", namespace=row["namespace"],
                                 flow_id=row["flow_id"], execution_id=row["execution_id"], request_id=request_id,
                                 data={"operation": "cancel", "reason": refused, "message": message})
                    outcomes.append(Outcome(**base, outcome=refused, state="PENDING", message=message))
                    continue
                close_request(tx, request_id, "CANCELLED", by=actor.name, now=now, reason=reason)
                data: dict[str, Any] = {"reason": reason, "origin": origin}
                if signature is not None:
                    data["signature"] = signature
                append_event(tx, at=now, actor=actor.name, action="request.cancelled", namespace=row["namespace"],
                             flow_id=row["flow_id"], execution_id=row["execution_id"], request_id=request_id,
                             data=data, raw={"context": row["context"]} if signature is not None else None)
                work.enqueue(tx, row["execution_id"], now)
                outbox.enqueue(tx, self.engine.notifications, "decided", dict(row), now,
                               {"state": "CANCELLED", "by": actor.name, "reason": reason})
                touched.append(row["execution_id"])
                outcomes.append(Outcome(**base, outcome=oc.CANCELLED, state="CANCELLED",
                                        message=f"request {request_id} cancelled",
                                        signature={"fingerprint": signature["fingerprint"],
                                                   "key_type": signature["key_type"]} if signature else None))
            return outcomes, touched

        with self.db.foreground():
            outcomes, touched = retrying(self.db, cancel_all)
        self._after_change(touched)
        return outcomes

    # -- triggers -----------------------------------------------------------------------
    def list_triggers(self, actor: Identity) -> list[dict[str, Any]]:
        """Every trigger of the flows the actor may see: type, state, next due time, last firing."""
        from signoff.engine.triggers.listing import trigger_rows

        visible = self._view_filter(actor)
        return [t for t in trigger_rows(self.engine) if visible(t["namespace"])]

    def set_trigger_enabled(self, actor: Identity, namespace: str, flow_id: str, trigger_id: str,
                            enabled: bool) -> dict[str, Any]:
        """The operator's switch (an admin of the namespace), audited; see engine.triggers.listing."""
        from signoff.engine.triggers.listing import set_enabled

        flow = self._flow(actor, namespace, flow_id, "admin")
        set_enabled(self.engine, flow, trigger_id, enabled, actor=actor.name)
        return next(t for t in self.list_triggers(actor)
                    if (t["namespace"], t["flow_id"], t["trigger_id"]) == (namespace, flow_id, trigger_id))

    def webhook(self, namespace: str, flow_id: str, key: str, variables: dict[str, Any]) -> dict[str, Any]:
        """Start ``flow_id`` from its Webhook trigger whose ``key`` is ``key`` (no identity: the
        key is the secret). Unknown flow, no such key or a disabled trigger: NotFound."""
        from signoff.engine.triggers.webhook import fire_webhook

        execution_id = fire_webhook(self.engine, namespace, flow_id, key, variables)
        self._after_change([])
        row = self.db.query_one("SELECT * FROM executions WHERE id=?", (execution_id,))
        assert row is not None  # just inserted
        return execution_summary(row)

    # -- insights -----------------------------------------------------------------------
    def stats(self, actor: Identity, *, since: str = "30d", namespace: str | None = None) -> dict[str, Any]:
        """Approval statistics over the namespaces the actor may view (engine.insights.stats).
        ``since``: an age (``30d``, ``24h``, ``PT1H``), a date or a date-time."""
        from signoff.engine.audit.search import parse_moment
        from signoff.engine.insights.stats import compute_stats

        now = self.engine.clock.now()
        moment, _ = parse_moment(since.strip(), f"--since {since}", now)
        if moment >= now:
            raise UsageError(f"--since {since} is not in the past")
        return compute_stats(self.db, since=moment, now=now, namespace=namespace, visible=self._view_filter(actor))

    # -- key-value store ----------------------------------------------------------------
    def kv_set(self, actor: Identity, namespace: str, key: str, value: Any) -> None:
        refuse_nul(namespace=namespace, key=key, value=value)
        self._check(actor, "admin", namespace, f"kv {key}")
        with self.db.write() as tx:
            tx.execute("INSERT INTO kv(namespace, key, value, updated_at) VALUES (?,?,?,?) ON CONFLICT(namespace, key)"
                       " DO UPDATE SET value=excluded.value, updated_at=excluded.updated_at",
                       (namespace, key, jsonutil.dumps(value), self.engine.now()))
            append_event(tx, at=self.engine.now(), actor=actor.name, action="kv.set", namespace=namespace,
                         data={"key": key})


def flow_info(flow: Flow) -> dict[str, Any]:
    return {"namespace": flow.namespace, "id": flow.id, "description": flow.description, "labels": flow.labels,
            "inputs": [s.to_dict() for s in flow.inputs], "path": flow.path, "sha256": flow.sha256,
            "tasks": [t.id for t in flow.tasks], "origin": "api" if flow.path.startswith("api:") else "file"}


def _execution_reads(execution_id: str) -> list[tuple[str, Any]]:
    """The four reads an execution is answered from (ApprovalService._execution_answer)."""
    return [
        ("SELECT * FROM executions WHERE id=?", (execution_id,)),
        ("SELECT * FROM task_runs WHERE execution_id=? ORDER BY seq", (execution_id,)),
        ("SELECT path, level, message, at FROM logs WHERE execution_id=? ORDER BY id", (execution_id,)),
        (f"SELECT r.*, {APPROVALS_SQL} AS approvals FROM requests r WHERE r.execution_id=?"
         " ORDER BY r.created_at", (execution_id,))]


def just_queued(row: Mapping[str, Any]) -> dict[str, Any]:
    """What get_execution answers for an execution just stored and queued for the runner."""
    summary = execution_summary({**dict.fromkeys(EXECUTION_COLUMNS), **row})
    return {**summary, "task_runs": [], "outputs": {}, "flow_outputs": None, "logs": [], "requests": []}


def execution_summary(row: sqlite3.Row | Mapping[str, Any]) -> dict[str, Any]:
    return {"id": row["id"], "namespace": row["namespace"], "flow_id": row["flow_id"], "revision": row["revision"],
            "state": row["state"], "inputs": jsonutil.loads(row["inputs"], {}),
            "labels": jsonutil.loads(row["labels"], {}), "started_by": row["started_by"],
            "created_at": row["created_at"], "updated_at": row["updated_at"], "ended_at": row["ended_at"],
            "error": row["error"], "original_id": row["original_id"],
            "origin": jsonutil.loads(row["origin"], None)}


def signature_summary(fingerprint: str | None, signature: str | None) -> dict[str, Any] | None:
    """A decision's signature as shown to people: {fingerprint, key_type}, or None when unsigned."""
    if not fingerprint or not signature:
        return None
    from signoff.engine.signing.sshsig import SignatureError, parse_signature

    try:
        key_type = parse_signature(signature).public_key.key_type
    except SignatureError:
        key_type = "?"
    return {"fingerprint": fingerprint, "key_type": key_type}


def request_summary(row: sqlite3.Row, approvals: int) -> dict[str, Any]:
    rules = jsonutil.loads(row["rules"], {})
    return {"id": row["id"], "execution_id": row["execution_id"], "namespace": row["namespace"],
            "flow_id": row["flow_id"], "task_id": row["task_id"], "kind": row["kind"], "state": row["state"],
            "summary": row["summary"], "requested_by": row["requested_by"], "created_at": row["created_at"],
            "due_at": row["due_at"], "decided_at": row["decided_at"], "approvals": approvals,
            "required": int(rules.get("required") or 1)}
