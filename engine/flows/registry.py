"""The flows an engine knows: the current files, and every revision executions started from.

Each distinct file content of a flow is a revision (numbered 1, 2, ... per namespace+id) kept
in the database, so an execution always continues with the exact flow it started with, even
after the file was edited or removed.
"""
from __future__ import annotations

import builtins
import dataclasses
import sqlite3
import time
from pathlib import Path
from typing import Any

from signoff.engine.clock import Clock, format_time
from signoff.engine.errors import Location, NotFound, Problem, UsageError
from signoff.engine.flows.model import Flow
from signoff.engine.store import Database
from signoff.engine.store.locks import advisory_lock, is_pg

#: how often (seconds) a registry asks whether another process changed an API flow
API_CHECK_S = 1.0


class FlowRegistry:
    def __init__(self, db: Database, dirs: list[Path], clock: Clock) -> None:
        self.db = db
        self.dirs = [Path(d) for d in dirs]
        self.clock = clock
        self._current: dict[tuple[str, str], Flow] | None = None
        self.problems: list[Problem] = []
        self._by_revision: dict[tuple[str, str, int], Flow] = {}
        #: (namespace, flow id, sha256) -> (revision, path) of revisions read from the database:
        #: committed rows, never changed or removed, so a start need not read them again
        self._known_revisions: dict[tuple[str, str, str], tuple[int, str | None]] = {}
        self._triggered: builtins.list[Flow] | None = None
        self._folder: dict[tuple[str, str], Flow] = {}
        self._api_version: tuple[object, ...] = ()
        self._checked_at = 0.0

    def reload(self) -> None:
        """Read the flow folders and the flows made through the API (engine.flows.api_flows);
        a folder flow wins over an API flow with the same namespace + id."""
        from signoff.engine.flows import api_flows
        from signoff.engine.flows.loader import load_flow_dirs, load_flow_text

        self._api_version = api_flows.version(self.db)
        self._checked_at = time.monotonic()
        flow_set = load_flow_dirs([d for d in self.dirs if d.is_dir()])
        self._folder = dict(flow_set.flows)
        current = dict(flow_set.flows)
        problems = list(flow_set.problems)
        for namespace, flow_id, revision, source, path in api_flows.current_api_flows(self.db):
            key = (namespace, flow_id)
            if key in self._folder:
                problems.append(Problem(Location(path, 1, 1), f"flow `{namespace}.{flow_id}` made through the API is "
                                        f"hidden by the file {self._folder[key].path}; rename or delete one of them"))
                continue
            flow = self._by_revision.get((namespace, flow_id, revision))
            if flow is None:
                flow = load_flow_text(source, path)
                flow.revision = revision
                self._by_revision[(namespace, flow_id, revision)] = flow
            current[key] = flow
        self._current = current
        self.problems = problems
        self._triggered = None

    @property
    def current(self) -> dict[tuple[str, str], Flow]:
        if self._current is None or self._api_changed():
            self.reload()
        assert self._current is not None
        return self._current

    def _api_changed(self) -> bool:
        """Another process saved or deleted an API flow (checked at most once a second)."""
        from signoff.engine.flows import api_flows

        now = time.monotonic()
        if now - self._checked_at < API_CHECK_S:
            return False
        self._checked_at = now
        return api_flows.version(self.db) != self._api_version

    def folder_flow(self, namespace: str, flow_id: str) -> Flow | None:
        """The flow of that namespace + id from a folder, if one defines it."""
        self.current  # noqa: B018 - loads on first use
        return self._folder.get((namespace, flow_id))

    def list(self) -> list[Flow]:
        return sorted(self.current.values(), key=lambda f: (f.namespace, f.id))

    def with_triggers(self) -> builtins.list[Flow]:
        """The current flows that have triggers (asked at every execution end: kept)."""
        flows = self.current  # may reload, which clears the list
        if self._triggered is None:
            self._triggered = [f for f in flows.values() if f.triggers]
            self._triggered.sort(key=lambda f: (f.namespace, f.id))
        return self._triggered

    def get(self, namespace: str, flow_id: str) -> Flow:
        flow = self.current.get((namespace, flow_id))
        if flow is None:
            for problem in self.problems:
                # A broken file for this very flow deserves its own message, not "not found".
                if _mentions(problem, namespace, flow_id):
                    raise UsageError(f"flow {namespace}.{flow_id} cannot be loaded:\n{problem}")
            raise NotFound(f"no flow `{flow_id}` in namespace `{namespace}`")
        return flow

    def ensure_revision(self, tx: sqlite3.Connection, flow: Flow) -> int:
        """The revision number of this exact flow text, recording it if it is new.

        A revision recorded earlier is put in :meth:`at_revision`'s cache with ``flow`` (already
        parsed), so the run that follows does not parse the same text again. A new one is not:
        its transaction may still roll back and the number go to another text.
        """
        known = (flow.namespace, flow.id, flow.sha256)
        # performance: one read (a round trip on PostgreSQL) less per start of a known text
        row: Any = self._known_revisions.get(known)
        if row is not None:
            return int(row[0])
        find = "SELECT revision, path FROM flow_revisions WHERE namespace=? AND flow_id=? AND sha256=?"
        row = tx.execute(find, (flow.namespace, flow.id, flow.sha256)).fetchone()
        if row is None and is_pg(tx):
            # replicas recording a new text at once take turns (the lock is held to COMMIT); the
            # second finds the first one's revision instead of numbering its own max+1
            advisory_lock(tx, "flow_revisions", flow.namespace, flow.id)
            row = tx.execute(find, (flow.namespace, flow.id, flow.sha256)).fetchone()
        if row:
            revision: int = row[0]
            self._known_revisions[known] = (revision, row[1])
            if row[1] == flow.path:  # else at_revision loads it with the path it was recorded with
                self._by_revision.setdefault((flow.namespace, flow.id, revision),
                                             dataclasses.replace(flow, revision=revision))
            return revision
        revision = (tx.execute("SELECT max(revision) FROM flow_revisions WHERE namespace=? AND flow_id=?",
                               (flow.namespace, flow.id)).fetchone()[0] or 0) + 1
        tx.execute("INSERT INTO flow_revisions(namespace, flow_id, revision, sha256, source, path, created_at)"
                   " VALUES (?,?,?,?,?,?,?)",
                   (flow.namespace, flow.id, revision, flow.sha256, flow.source, flow.path,
                    format_time(self.clock.now())))
        return revision

    def at_revision(self, namespace: str, flow_id: str, revision: int) -> Flow:
        key = (namespace, flow_id, revision)
        flow = self._by_revision.get(key)
        if flow is None:
            from signoff.engine.flows.loader import load_flow_text

            row = self.db.query_one("SELECT source, path FROM flow_revisions WHERE namespace=? AND flow_id=?"
                                    " AND revision=?", key)
            if row is None:
                raise NotFound(f"flow {namespace}.{flow_id} revision {revision} is not in the database")
            flow = load_flow_text(row["source"], row["path"])
            flow.revision = revision
            self._by_revision[key] = flow
        return flow


def _mentions(problem: Problem, namespace: str, flow_id: str) -> bool:
    stem = Path(problem.location.file).stem
    return stem == flow_id or f"{namespace}.{flow_id}" in problem.message
