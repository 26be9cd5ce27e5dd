"""Appending audit events.

Each event's hash is SHA-256 over the previous event's hash and the event's own canonical
content, so changing, removing or reordering any stored row breaks every hash after it.
Appends happen inside the caller's write transaction: the event commits with the change it
describes, or not at all.
"""
from __future__ import annotations

import sqlite3
from json.encoder import encode_basestring  # the C encoder json.dumps(ensure_ascii=False) uses
from typing import Any

from signoff.engine import jsonutil

GENESIS = "0" * 64


def event_content(seq: int, at: str, actor: str, action: str, namespace: str | None, flow_id: str | None,
                  execution_id: str | None, request_id: str | None, data_json: str) -> str:
    return jsonutil.dumps([seq, at, actor, action, namespace, flow_id, execution_id, request_id, data_json])


def row_content(row: tuple[Any, ...]) -> str:
    """:func:`event_content` of a row's first nine fields, byte-identical, without the JSON
    encoder's per-call overhead (performance: ~1.5 us less an event when chaining a bulk's
    events and when verifying; tests/test_audit.py holds the two to the same text)."""
    seq, at, actor, action, ns, flow, execution, request, data = row[:9]
    try:
        if type(seq) is not int:
            raise TypeError
        fields = (encode_basestring(at), encode_basestring(actor), encode_basestring(action),
                  "null" if ns is None else encode_basestring(ns),
                  "null" if flow is None else encode_basestring(flow),
                  "null" if execution is None else encode_basestring(execution),
                  "null" if request is None else encode_basestring(request),
                  encode_basestring(data))
        return f"[{seq},{','.join(fields)}]"
    except TypeError:  # a non-text value (only a hand-edited row has one): the slow, exact path
        return event_content(*row[:9])


def event_hash(prev_hash: str, content: str) -> str:
    import hashlib  # here, not at the top: the console starts without writing (and OpenSSL loads slowly)

    return hashlib.sha256((prev_hash + content).encode("utf-8")).hexdigest()


def append_event(tx: Any, *, at: str, actor: str, action: str, namespace: str | None = None,
                 flow_id: str | None = None, execution_id: str | None = None, request_id: str | None = None,
                 data: dict[str, Any] | None = None, raw: dict[str, str] | None = None,
                 data_json: str | None = None) -> int | None:
    """Append one event in the caller's transaction ``tx``; its sequence number (SQLite), or
    None where the number is given at COMMIT (PostgreSQL).

    SQLite: numbered and chained now (the write lock is held since BEGIN IMMEDIATE).
    PostgreSQL: staged on the session and written at COMMIT (see ``STAGED_LOCK_SQL`` below),
    under an advisory lock taken last, so the numbers are dense and in commit order however
    many replicas write at once; a savepoint rolled back drops the events staged since.

    ``raw``: members of ``data`` given as canonical JSON text already (a request's stored
    context), written as they are (jsonutil.dumps_with_raw). ``data_json``: instead of
    ``data``, the data as canonical JSON text already (jsonutil)."""
    if data_json is None:
        data_json = jsonutil.dumps_with_raw(data or {}, raw) if raw else jsonutil.dumps(data or {})
    event = (at, actor, action, namespace, flow_id, execution_id, request_id, data_json)
    stage = getattr(tx, "stage_audit", None)
    if stage is not None:
        stage(event)
        return None
    # chained as a write-behind block's staged events are (write_staged_sqlite), one row
    rows, seq = chain_staged_events([event], tx.execute(STAGED_HEAD_SQL).fetchone())
    tx.execute(_SQLITE_INSERT_SQL, rows[0])
    _noted(tx, seq)
    return seq


def _noted(tx: Any, seq: int) -> None:
    """A signoff connection (engine.store.db) wakes this process's event feeds after COMMIT.
    (SQLite's full-text index is fed later, by engine.audit.fulltext_feed.)"""
    if hasattr(tx, "audit_appended"):
        tx.audit_appended = True
        tx.audit_seq = seq


_SQLITE_INSERT_SQL = ("INSERT INTO audit(seq, at, actor, action, namespace, flow_id, execution_id, request_id,"
                      " data, prev_hash, hash) VALUES (?,?,?,?,?,?,?,?,?,?,?)")


def write_staged_sqlite(tx: sqlite3.Connection, events: list[tuple[Any, ...]]) -> None:
    """SQLite: write events staged by a write-behind block (engine.store.behind), chained after
    the stored head, in one statement. The block holds the write lock since BEGIN IMMEDIATE, so
    the head cannot move in between."""
    head = tx.execute(STAGED_HEAD_SQL).fetchone()
    rows, last = chain_staged_events(events, head)
    tx.executemany(_SQLITE_INSERT_SQL, rows)
    _noted(tx, last)


# PostgreSQL: the staged events are written at COMMIT (engine.store.pg.Session._commit_with_audit):
# a few with the lock and CHAINED_APPEND_SQL, a bulk's with these statements, in this order. The
# advisory lock is the last lock the transaction takes and is held only through the COMMIT: the
# next appender reads the head after this transaction is visible, so sequence numbers are dense,
# in commit order, and every event chains to the one committed before it. The full-text words
# are written later (engine.audit.fulltext_feed).
STAGED_LOCK_SQL = "SELECT pg_advisory_xact_lock({lock})"
STAGED_HEAD_SQL = "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1"
#: the same rows as COPY, for many events at once (a bulk decision's)
STAGED_COPY_SQL = ("COPY audit(seq, at, actor, action, namespace, flow_id, execution_id, request_id, data, prev_hash,"
                   " hash) FROM STDIN")
#: the wake-up of every replica's event feed (engine.server.head), delivered at COMMIT, with
#: :func:`notify_payload`
STAGED_NOTIFY_SQL = "SELECT pg_notify('signoff_audit', ?)"
#: PostgreSQL refuses a notification payload of 8,000 bytes or more
NOTIFY_MAX_BYTES = 7_900
#: an event's fields take at least this many bytes as JSON (``[1,"a",null,null,null,"x"],``)
_MIN_EVENT_BYTES = 26


#: PostgreSQL, a commit's few events (fewer than engine.store.pg.COPY_MIN_ROWS): numbered,
#: chained, written and announced by the server in one statement, sent after STAGED_LOCK_SQL in
#: the COMMIT's pipeline (performance: reading the head first cost an embedded start a round
#: trip and three statements more). The one parameter is a JSON array of each event's content
#: after its number (:func:`chained_append_param`); the hash is the one :func:`event_hash`
#: gives, SHA-256 of the previous hash and ``[seq,`` + that text, in UTF-8, as hex, and the
#: columns are read back from that same text, so what is stored is what was hashed. Its one
#: row: the events as the feeds follow them (:func:`feed_fields`), as JSON. (Each recursive
#: step joins the events, so this is for a few; a bulk's thousands are chained here and sent
#: as COPY.)
CHAINED_APPEND_SQL = f"""
WITH RECURSIVE ev AS (
  SELECT e.rest, ('[0,' || e.rest)::json AS f, e.i
  FROM json_array_elements_text(?::json) WITH ORDINALITY AS e(rest, i)
), chain(i, seq, hash, prev) AS (
  SELECT 0::bigint, COALESCE(h.seq, 0)::bigint, COALESCE(h.hash, '{GENESIS}') COLLATE "C", NULL::text COLLATE "C"
  FROM (SELECT 1) one LEFT JOIN (SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1) h ON true
  UNION ALL
  SELECT ev.i, c.seq + 1,
         encode(sha256(convert_to(c.hash || '[' || (c.seq + 1)::text || ',' || ev.rest, 'UTF8')), 'hex')
           COLLATE "C",
         c.hash
  FROM chain c JOIN ev ON ev.i = c.i + 1
), ins AS (
  INSERT INTO audit(seq, at, actor, action, namespace, flow_id, execution_id, request_id, data, prev_hash, hash)
  SELECT c.seq, ev.f->>1, ev.f->>2, ev.f->>3, ev.f->>4, ev.f->>5, ev.f->>6, ev.f->>7, ev.f->>8, c.prev, c.hash
  FROM chain c JOIN ev ON ev.i = c.i
  RETURNING seq, action, namespace, request_id, execution_id, actor
), feed AS (
  SELECT json_agg(json_build_array(seq, action, namespace, request_id, execution_id, actor) ORDER BY seq)::text
         AS events, max(seq) AS last
  FROM ins
)
SELECT events, pg_notify('signoff_audit',
                         CASE WHEN octet_length(events) <= {NOTIFY_MAX_BYTES} THEN events ELSE last::text END)
FROM feed"""


def content_after_seq(at: str, actor: str, action: str, namespace: str | None, flow_id: str | None,
                      execution_id: str | None, request_id: str | None, data_json: str) -> str:
    """What follows ``[seq,`` in :func:`event_content` (the canonical JSON is compact, so the
    number is followed by a comma and the other fields as they are). Not used by
    event_content itself: a slice and a concatenation more cost ~0.3 us an event on the bulk
    and verify paths; tests/test_pg_commit_pipeline.py checks both spell the same text."""
    return jsonutil.dumps([at, actor, action, namespace, flow_id, execution_id, request_id, data_json])[1:]


def chained_append_param(events: list[tuple[Any, ...]]) -> str:
    """The parameter of :data:`CHAINED_APPEND_SQL` for staged ``events`` (one JSON text:
    performance, psycopg spent ~0.3 ms of Python on nine text arrays)."""
    return jsonutil.dumps([content_after_seq(*event) for event in events])


def chained_events(events_json: str) -> list[tuple[Any, ...]]:
    """The events :data:`CHAINED_APPEND_SQL` answers with, as :func:`feed_fields` gives them."""
    return [tuple(event) for event in jsonutil.loads(events_json, [])]


def feed_fields(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """What the event feeds follow of a chained row (:func:`chain_staged_events`): seq, action,
    namespace, request_id, execution_id, actor (engine.server.head reads the same columns)."""
    return row[0], row[3], row[4], row[7], row[6], row[2]


def notify_payload(events: list[tuple[Any, ...]]) -> str:
    """The notification of a commit's events (their :func:`feed_fields`): as JSON when it fits,
    so a replica whose head is just before them adds them without reading the table
    (performance: with three replicas every commit cost four reads of the audit table); else
    only the last sequence number, a wake-up after which replicas read."""
    if len(events) * _MIN_EVENT_BYTES <= NOTIFY_MAX_BYTES:  # (a bulk's thousands: not encoded at all)
        text = jsonutil.dumps([list(e) for e in events])
        if len(text.encode("utf-8")) <= NOTIFY_MAX_BYTES:
            return text
    return str(events[-1][0])


def chain_staged_events(events: list[tuple[Any, ...]], head: Any) -> tuple[list[tuple[Any, ...]], int]:
    """The audit rows of the staged ``events`` chained after ``head`` (the newest stored
    ``(seq, hash)``, or None), and the last sequence number."""
    seq, prev = (head[0], head[1]) if head else (0, GENESIS)
    rows: list[tuple[Any, ...]] = []
    for event in events:
        seq += 1
        row = (seq, *event)
        digest = event_hash(prev, row_content(row))
        rows.append((*row, prev, digest))
        prev = digest
    return rows, seq
