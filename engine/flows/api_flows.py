"""Flows created and changed through the API (``signoff flows push``, ``POST /api/v1/flows``).

How they live with flows from folders (decisions):

* A flow's text is stored as a revision in ``flow_revisions`` (as every revision an execution
  ran is); ``api_flows`` says which revision is current and whether the flow was deleted.
* Flows from folders belong to whoever edits the files: through the API they are read-only
  (changing or deleting one is a 409 naming its file), and a new API flow may not take the
  namespace + id of a folder flow. If a file with the id of an API flow appears later, the file
  wins and the API flow is listed as a problem until one of them is renamed or deleted.
* Saving the text of the current revision again changes nothing (no new revision, no event);
  saving an earlier text again makes that earlier revision current (its number is reused,
  as revisions are identified by the text's SHA-256).
* Deleting marks the flow deleted: it cannot be started, while its executions continue on the
  revision they started with; creating it again continues its revision numbers.
* Every change is audited (``flow.created``, ``flow.updated``, ``flow.deleted``) with the
  revision and the SHA-256 of the YAML text.
"""
from __future__ import annotations

import dataclasses
import sqlite3
from typing import Any

from signoff.engine.audit import append_event
from signoff.engine.errors import Conflict, FlowLoadError, NotFound, UsageError
from signoff.engine.flows.model import Flow

API_PREFIX = "api:"
#: the file name problems of a pushed text are reported against
PUSHED = "flow.yaml"


def api_path(namespace: str, flow_id: str) -> str:
    return f"{API_PREFIX}{namespace}/{flow_id}"


def is_api_flow(flow: Flow) -> bool:
    return flow.path.startswith(API_PREFIX)


def parse_pushed(text: str) -> Flow:
    """The flow in a pushed text; every problem is a FlowLoadError with ``flow.yaml:line:col``."""
    from signoff.engine.flows.loader import load_flow_text

    if not text.strip():
        raise UsageError("the flow text is empty: send the flow's YAML")
    flow = load_flow_text(text, PUSHED)
    return dataclasses.replace(flow, path=api_path(flow.namespace, flow.id))


def problems_of(text: str) -> list[dict[str, Any]]:
    """Every problem of a flow text as ``{line, col, message}`` (empty when it loads)."""
    try:
        parse_pushed(text)
    except FlowLoadError as exc:
        return [{"line": p.location.line, "col": p.location.col, "message": p.message} for p in exc.problems]
    except UsageError as exc:
        return [{"line": 1, "col": 1, "message": exc.message}]
    return []


def save(engine: Any, tx: sqlite3.Connection, flow: Flow, *, mode: str, actor: str, now: str) -> tuple[int, bool]:
    """Store ``flow`` as the current revision. ``mode``: ``create`` (must not exist), ``update``
    (must exist) or ``upsert``. Returns (revision, changed)."""
    folder = engine.flows.folder_flow(flow.namespace, flow.id)
    if folder is not None:
        raise Conflict(f"flow {flow.namespace}.{flow.id} comes from the file {folder.path}: flows from folders are "
                       "read-only through the API; edit the file instead")
    row = tx.execute("SELECT revision, deleted_at FROM api_flows WHERE namespace=? AND flow_id=?",
                     (flow.namespace, flow.id)).fetchone()
    live = row is not None and row["deleted_at"] is None
    if mode == "create" and live:
        raise Conflict(f"flow {flow.namespace}.{flow.id} already exists (revision {row['revision']}); "
                       "PUT /api/v1/flows/{namespace}/{id} (or `signoff flows push`) makes a new revision")
    if mode == "update" and not live:
        raise NotFound(f"no flow `{flow.id}` in namespace `{flow.namespace}` made through the API; "
                       "POST /api/v1/flows creates it")
    revision = engine.flows.ensure_revision(tx, flow)
    if live and row["revision"] == revision:
        return revision, False
    tx.execute("INSERT INTO api_flows(namespace, flow_id, revision, deleted_at, updated_at, updated_by)"
               " VALUES (?,?,?,NULL,?,?) ON CONFLICT(namespace, flow_id) DO UPDATE SET revision=excluded.revision,"
               " deleted_at=NULL, updated_at=excluded.updated_at, updated_by=excluded.updated_by",
               (flow.namespace, flow.id, revision, now, actor))
    append_event(tx, at=now, actor=actor, action="flow.updated" if live else "flow.created",
                 namespace=flow.namespace, flow_id=flow.id,
                 data={"revision": revision, "sha256": flow.sha256, "previous_revision": row["revision"] if live
                       else None})
    return revision, True


def delete(engine: Any, tx: sqlite3.Connection, namespace: str, flow_id: str, *, actor: str, now: str) -> int:
    folder = engine.flows.folder_flow(namespace, flow_id)
    if folder is not None:
        raise Conflict(f"flow {namespace}.{flow_id} comes from the file {folder.path}: flows from folders are "
                       "read-only through the API; remove the file instead")
    row = tx.execute("SELECT a.revision, r.sha256 FROM api_flows a JOIN flow_revisions r ON r.namespace=a.namespace"
                     " AND r.flow_id=a.flow_id AND r.revision=a.revision WHERE a.namespace=? AND a.flow_id=?"
                     " AND a.deleted_at IS NULL", (namespace, flow_id)).fetchone()
    if row is None:
        raise NotFound(f"no flow `{flow_id}` in namespace `{namespace}` made through the API")
    tx.execute("UPDATE api_flows SET deleted_at=?, updated_at=?, updated_by=? WHERE namespace=? AND flow_id=?",
               (now, now, actor, namespace, flow_id))
    append_event(tx, at=now, actor=actor, action="flow.deleted", namespace=namespace, flow_id=flow_id,
                 data={"revision": row["revision"], "sha256": row["sha256"]})
    revision: int = row["revision"]
    return revision


def current_api_flows(db: Any) -> list[tuple[str, str, int, str, str]]:
    """(namespace, flow_id, revision, source, path) of every live API flow."""
    rows = db.query("SELECT a.namespace, a.flow_id, a.revision, r.source, r.path FROM api_flows a"
                    " JOIN flow_revisions r ON r.namespace=a.namespace AND r.flow_id=a.flow_id"
                    " AND r.revision=a.revision WHERE a.deleted_at IS NULL ORDER BY a.namespace, a.flow_id")
    return [(r["namespace"], r["flow_id"], r["revision"], r["source"], r["path"]) for r in rows]


def version(db: Any) -> tuple[Any, ...]:
    """Changes whenever an API flow is saved or deleted (the registry reloads then)."""
    row = db.query_one("SELECT count(*), max(updated_at) FROM api_flows")
    return (row[0], row[1]) if row is not None else (0, None)
