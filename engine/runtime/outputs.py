"""The outputs tree flows see as ``outputs``: by task id, and inside a ForEach by loop value.

``outputs.check.value`` for a task outside any loop; ``outputs.check["a"]["x"].value`` for a
task run in a ForEach over ``a`` nested in one over ``x``. The runner builds the tree as it
walks (from its loop values) and the service rebuilds it from the stored task runs (from their
paths); both place an entry with :func:`place`, so the shape is defined here once.
"""
from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from signoff.engine import jsonutil

#: task-run states whose outputs are visible to later tasks (KILLED: a denied approval's
#: decision, seen by `finally`, afterExecution and the flow's outputs)
VISIBLE_STATES = ("SUCCESS", "WARNING", "RUNNING", "FAILED", "KILLED")


def place(tree: dict[str, Any], task_id: str, loop_keys: Sequence[str], outputs: Any) -> None:
    """Put one task's ``outputs`` into ``tree`` under its id and loop keys (outermost first)."""
    if not loop_keys:
        tree[task_id] = outputs
        return
    node = tree.setdefault(task_id, {})
    for key in loop_keys[:-1]:
        node = node.setdefault(key, {})
    node[loop_keys[-1]] = outputs


def outputs_tree(runs: Iterable[sqlite3.Row | Mapping[str, Any]]) -> dict[str, Any]:
    """The tree from stored task runs (rows with path, task_id, type, state, outputs, value).
    A run's loop keys come from its path: ``foreach/1/check`` is iteration 1 of ``foreach``,
    whose stored value lists the loop values."""
    runs = list(runs)
    by_path = {r["path"]: r for r in runs}
    tree: dict[str, Any] = {}
    for r in runs:
        if r["state"] not in VISIBLE_STATES:
            continue
        outputs = jsonutil.loads(r["outputs"], {})
        if not outputs and r["state"] == "RUNNING":
            continue
        parts = r["path"].split("/")
        loop_keys: list[str] = []
        for i, part in enumerate(parts):
            parent = by_path.get("/".join(parts[:i]))
            if part.isdigit() and parent is not None and parent["type"].endswith(".ForEach"):
                values = jsonutil.loads(parent["value"], [])
                loop_keys.append(str(values[int(part)]) if int(part) < len(values) else part)
        place(tree, r["task_id"], loop_keys, outputs)
    return tree
