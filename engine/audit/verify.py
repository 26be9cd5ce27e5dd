"""Checking the audit hash chain.

Every stored event carries ``prev_hash`` (the hash of the event before it, or GENESIS for
event 1) and ``hash`` = SHA-256(prev_hash + canonical content), where the content includes
the event's own sequence number. Walking the rows in sequence order therefore finds:

- a changed event: its recomputed hash differs from the stored one (content or hash edited),
  or - when the editor also recomputed its hash - the next event records a different
  ``prev_hash`` for it;
- a removed event: a gap in the sequence numbers (or, if the rows after it were renumbered,
  a renumbered event whose hash no longer matches);
- reordered events: an event whose content (with its sequence number) no longer matches its
  hash, and whose ``prev_hash`` does not link to the event before it.

Removing events from the *end* leaves a shorter chain that is still consistent: that is only
detectable against a head (seq, hash) kept elsewhere, which :func:`verify_chain` accepts as
``expect_head`` (``signoff audit head`` prints it; ``signoff audit verify --head`` checks it).

The walk streams the table in batches of ``batch`` rows and does nothing per row but one
SHA-256 and a few comparisons, so a million events verify in a few seconds.
"""
from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import asdict, dataclass
from typing import Any

from signoff.engine.audit.log import GENESIS, row_content
from signoff.engine.store.db import connection_of

_COLUMNS = "seq, at, actor, action, namespace, flow_id, execution_id, request_id, data, prev_hash, hash"


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    count: int
    head: str | None
    first_bad_seq: int | None = None
    problem: str | None = None
    #: sequence number of the last event walked (the head's seq when ok)
    head_seq: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def head(db: Any) -> tuple[int, str] | None:
    """(seq, hash) of the latest event, or None when the log is empty."""
    row = connection_of(db).execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    return (row[0], row[1]) if row else None


def describe(row: tuple[Any, ...]) -> str:
    """``request.approved by alice at 2026-...`` for a raw audit row (in _COLUMNS order)."""
    return f"{row[3]} by {row[2]} at {row[1]}"


def verify_chain(db: Any, *, batch: int = 50_000, expect_head: tuple[int, str] | None = None) -> VerifyResult:
    """Walk the whole chain in seq order; the first problem found is named in ``problem``.

    ``db`` is a :class:`engine.store.Database` or a sqlite3 connection. ``expect_head`` is a
    (seq, hash) recorded earlier (e.g. from ``signoff audit head``): the chain must still
    contain that event with that hash, which detects removal of the newest events.
    """
    conn = connection_of(db)
    last = conn.execute("SELECT max(seq) FROM audit").fetchone()[0]
    walked: tuple[int, int | None, str] | VerifyResult = (0, None, GENESIS)
    if last is not None and getattr(conn, "dialect", "sqlite") == "postgresql":
        walked = _walk(conn, _EXACT_SQL, last, batch, fast=False)  # the hashes are computed in Python
    elif last is not None:
        try:
            walked = _walk(conn, _FAST_SQL, last, batch, fast=True)
        except _Fallback:  # a value SQLite's JSON cannot hold (only a hand-edited row has one)
            walked = _walk(conn, _EXACT_SQL, last, batch, fast=False)
    if isinstance(walked, VerifyResult):
        return walked
    count, head_seq, head_hash = walked
    head_hash_or_none = head_hash if head_seq is not None else None
    if expect_head is not None:
        want_seq, want_hash = expect_head
        problem = _check_expected_head(conn, want_seq, want_hash, head_seq)
        if problem is not None:
            return VerifyResult(False, count, head_hash_or_none, want_seq, problem, head_seq)
    return VerifyResult(True, count, head_hash_or_none, None, None, head_seq)


# SQLite's json_array() writes exactly what json.dumps(ensure_ascii=False, separators=(",", ":"))
# writes for text, integers and NULL, so the content of event_content() comes out of SQLite
# ready to hash (~1.5x faster than building it in Python). It is only a fast path: an event
# whose hash does not match is recomputed with event_content() before it is called changed.
_FAST_SQL = ("SELECT seq, json_array(seq, at, actor, action, namespace, flow_id, execution_id, request_id, data),"
             " prev_hash, hash FROM audit WHERE seq <= ? ORDER BY seq")
_EXACT_SQL = f"SELECT {_COLUMNS} FROM audit WHERE seq <= ? ORDER BY seq"


class _Fallback(Exception):
    pass


def _full_row(conn: sqlite3.Connection, seq: int) -> tuple[Any, ...] | None:
    cur = conn.cursor()
    cur.row_factory = None
    row: tuple[Any, ...] | None = cur.execute(f"SELECT {_COLUMNS} FROM audit WHERE seq=?", (seq,)).fetchone()
    return row


class _PagedCursor:
    """PostgreSQL: the rows up to ``last`` in pages by seq (a client-side result is held in
    memory whole, so one query for a million events is not an option)."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.row_factory = None
        self.after = 0
        self.last = 0

    def execute(self, _sql: str, params: tuple[int]) -> None:
        self.last = params[0]

    def fetchmany(self, size: int) -> list[tuple[Any, ...]]:
        cur = self.conn.cursor()
        cur.row_factory = None
        rows: list[tuple[Any, ...]] = cur.execute(
            f"SELECT {_COLUMNS} FROM audit WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?",
            (self.after, self.last, size)).fetchall()
        if rows:
            self.after = rows[-1][0]
        return rows

    def close(self) -> None:
        pass


def _walk(conn: sqlite3.Connection, sql: str, last: int, batch: int, *,
          fast: bool) -> tuple[int, int | None, str] | VerifyResult:
    """(count, head seq, head hash) of an intact chain, or the VerifyResult naming the problem."""
    sha256 = hashlib.sha256
    prev_hash = GENESIS
    prev_seq: int | None = None
    count = 0
    expected_seq = 1
    cur: Any = _PagedCursor(conn) if getattr(conn, "dialect", "sqlite") == "postgresql" else conn.cursor()
    cur.row_factory = None  # plain tuples: sqlite3.Row costs as much as the hash
    try:
        try:
            cur.execute(sql, (last,))
        except sqlite3.OperationalError as exc:
            if fast:
                raise _Fallback() from exc
            raise
        while True:
            try:
                rows = cur.fetchmany(batch)
            except sqlite3.OperationalError as exc:
                if fast:
                    raise _Fallback() from exc
                raise
            if not rows:
                break
            for row in rows:
                seq = row[0]
                if fast:
                    stored_prev, stored_hash = row[2], row[3]
                    content = row[1]
                else:
                    stored_prev, stored_hash = row[9], row[10]
                    content = row_content(row)
                computed = sha256((stored_prev + content).encode("utf-8")).hexdigest() \
                    if isinstance(stored_prev, str) else None
                if seq != expected_seq or stored_prev != prev_hash or computed != stored_hash:
                    full = _full_row(conn, seq) if fast else row
                    if fast and computed != stored_hash and full is not None and isinstance(full[9], str):
                        computed = sha256((full[9] + row_content(full)).encode("utf-8")).hexdigest()
                    if seq == expected_seq and stored_prev == prev_hash and computed == stored_hash:
                        pass  # only the fast path's spelling differed: the event is intact
                    else:
                        prev_row = _full_row(conn, prev_seq) if prev_seq is not None else None
                        if full is None:  # gone between the two reads: removed meanwhile
                            problem, bad = f"event {seq} was removed while the chain was verified", seq
                        else:
                            problem, bad = _diagnose(full, computed, prev_row, prev_hash, expected_seq)
                        return VerifyResult(False, count, prev_hash if count else None, bad, problem, prev_seq)
                prev_hash = stored_hash
                prev_seq = seq
                expected_seq = seq + 1
                count += 1
    finally:
        cur.close()
    return count, prev_seq, prev_hash


def _diagnose(row: tuple[Any, ...], computed: str | None, prev_row: tuple[Any, ...] | None, prev_hash: str,
              expected_seq: int) -> tuple[str, int]:
    """The message naming the first bad event, and that event's seq."""
    seq = row[0]
    if seq != expected_seq:
        before = f"event {expected_seq - 1}" if prev_row is not None else "the start of the log"
        if seq == expected_seq + 1:
            return f"event {expected_seq} is missing: event {seq} follows {before}", expected_seq
        return (f"events {expected_seq} to {seq - 1} are missing: event {seq} follows {before}",
                expected_seq)
    own_ok = computed == row[10]
    linked = row[9] == prev_hash
    if not own_ok and linked:
        return (f"event {seq} ({describe(row)}) was changed: its hash does not match its content", seq)
    if not own_ok:
        return (f"event {seq} ({describe(row)}) was changed, moved or replaced: its hash does not match its "
                f"content and it does not follow the chain of event {seq - 1}" if seq > 1 else
                f"event {seq} ({describe(row)}) was changed, moved or replaced: its hash does not match its "
                f"content and it does not start the chain", seq)
    # The event is intact but does not link to the one before: the one before was rewritten
    # (content changed and hash recomputed), or events in between were removed and renumbered
    # (which would have broken this event's own hash), so the earlier event is the bad one.
    if prev_row is None:
        return f"event {seq} ({describe(row)}) does not start the chain: events before it were removed", seq
    return (f"event {prev_row[0]} ({describe(prev_row)}) was changed: event {seq} records a different hash "
            f"for it", prev_row[0])


def _check_expected_head(conn: sqlite3.Connection, seq: int, digest: str, head_seq: int | None) -> str | None:
    row = conn.execute("SELECT hash FROM audit WHERE seq=?", (seq,)).fetchone()
    if row is None:
        ends = f"the log ends at event {head_seq}" if head_seq is not None else "the log is empty"
        return f"event {seq} is missing: {ends}, but the head kept elsewhere is event {seq} ({digest[:12]}…)"
    if row[0] != digest:
        return (f"event {seq} was changed: its hash {row[0][:12]}… is not the head kept elsewhere "
                f"({digest[:12]}…)")
    return None
