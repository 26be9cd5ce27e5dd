"""The ``executions`` row: its columns and its one INSERT.

An execution is stored by the service when it is started (queued for a runner) or, when the
start runs the execution inline to its first pause, by the runner's first commit, already in
the state it reached; both write the row through :func:`insert_execution`.
"""
from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from typing import Any

#: the columns of an executions row, in the schema's order (engine/store/schema.py)
EXECUTION_COLUMNS = ("id", "namespace", "flow_id", "revision", "state", "inputs", "labels", "started_by",
                     "created_at", "updated_at", "ended_at", "error", "original_id", "origin")
#: columns a row may leave out (NULL): a person's start has no original and no trigger origin
OPTIONAL_COLUMNS = ("ended_at", "error", "original_id", "origin")

_INSERT = "INSERT INTO executions({columns}) VALUES ({values}){conflict}".format(
    conflict="{conflict}", columns=", ".join(EXECUTION_COLUMNS), values=", ".join(f":{c}" for c in EXECUTION_COLUMNS))


def insert_execution(tx: sqlite3.Connection, row: Mapping[str, Any], *, if_absent: bool = False) -> None:
    """Store ``row`` (every column of EXECUTION_COLUMNS but the optional ones); ``if_absent``: keep a row that is
    there already (a start whose inline run stored it)."""
    data = dict(row)
    missing = [c for c in EXECUTION_COLUMNS if c not in data and c not in OPTIONAL_COLUMNS]
    if missing:
        raise KeyError(f"an executions row needs {', '.join(missing)}")
    tx.execute(_INSERT.format(conflict=" ON CONFLICT DO NOTHING" if if_absent else ""),
               {c: data.get(c) for c in EXECUTION_COLUMNS})
