"""Streaming audit events for auditors: JSON Lines or CSV, oldest first, read in batches.

JSONL: one event a line, canonical JSON (sorted keys) with every stored field, including
``prev_hash``, so a complete export can be re-verified elsewhere. CSV: the columns of
:data:`CSV_HEADER`; ``data`` holds the event's JSON text.
"""
from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from typing import Any

from signoff.engine import jsonutil

FORMATS = ("jsonl", "csv")
CSV_HEADER = ("seq", "at", "actor", "action", "namespace", "flow_id", "execution_id", "request_id", "data", "hash")


def jsonl_lines(events: Iterable[dict[str, Any]]) -> Iterator[str]:
    for event in events:
        yield jsonutil.dumps(event) + "\n"


def csv_lines(events: Iterable[dict[str, Any]], *, chunk: int = 500) -> Iterator[str]:
    """The header, then one CSV record per event (yielded in chunks of records)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    pending = 1
    for event in events:
        writer.writerow(csv_row(event))
        pending += 1
        if pending >= chunk:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
            pending = 0
    if pending or buffer.tell():
        yield buffer.getvalue()


def csv_row(event: dict[str, Any]) -> list[Any]:
    return [("" if event.get(k) is None else event[k]) if k != "data" else jsonutil.dumps(event.get("data", {}))
            for k in CSV_HEADER]


def render(events: Iterable[dict[str, Any]], fmt: str = "jsonl") -> Iterator[str]:
    """Text chunks of ``events`` in ``fmt`` (``jsonl`` or ``csv``)."""
    if fmt == "jsonl":
        return jsonl_lines(events)
    if fmt == "csv":
        return csv_lines(events)
    from signoff.engine.errors import UsageError

    raise UsageError(f"unknown export format `{fmt}`; use one of {', '.join(FORMATS)}")
