"""Searching the audit trail: ``signoff history`` and the console's history view.

Query language (words separated by spaces)::

    deploy "disk full"          free text: every word / quoted phrase must occur (any field,
                                reasons, context, form values); ``deplo*`` matches a prefix
    actor:alice                 who acted
    action:request.approved     what happened; ``action:request.*`` any action with that prefix
    ns:prod.payments            namespace; ``ns:prod*`` any namespace with that prefix
    flow:deploy                 flow id
    request:r1234 execution:abc ids
    since:2026-01-05            on or after (ISO date = that day 00:00 UTC, ISO date-time, or an
    until:2026-01-06            age: 7d, 24h, 30m, 90s, 2w, 1h30m, PT1H); ``until:`` a date
                                includes that whole day, a date-time or age is inclusive

A value may be quoted (``actor:"svc deploy"``). Results are newest first and paged with a
sequence-number cursor (``before_seq``: only events older than that one).

Free text uses the FTS5 index ``audit_fts`` (schema version 2; on PostgreSQL the tsvector
table ``audit_words``, schema 17), fed behind the writes (engine.audit.fulltext_feed). Field
filters use the plain indexes on ``audit``. Which index drives a query is decided per query
with cheap, capped probes, so every shape stays fast on millions of events: a selective filter
drives through its index; when every filter matches many events, the newest events are walked
in order and the matches are dense, so the page fills quickly.
"""
from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from dataclasses import replace as _replace
from datetime import UTC, datetime, timedelta
from typing import Any

from signoff.engine import jsonutil
from signoff.engine.clock import format_time
from signoff.engine.durations import parse_duration
from signoff.engine.errors import UsageError
from signoff.engine.store.db import connection_of

FIELDS = ("actor", "action", "ns", "flow", "request", "execution", "since", "until")
_FIELD_HELP = ", ".join(f"{f}:" for f in FIELDS)
_TIME_HELP = ("write an ISO date (2026-01-05), a date and time (2026-01-05T09:00:00Z), or an age such as "
              "7d, 24h, 30m, 1h30m or PT1H")
#: probes count at most this many matches; a driver below it is "selective"
_CAP = 5_000
_MAX_CHAR = "\U0010ffff"
_COLUMNS = "a.seq, a.at, a.actor, a.action, a.namespace, a.flow_id, a.execution_id, a.request_id, a.data, " \
           "a.hash, a.prev_hash"
_AGE = re.compile(r"(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", re.IGNORECASE)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclass(frozen=True)
class AuditQuery:
    """A parsed history query. ``since`` / ``until_before`` are stored-time strings: events with
    ``since <= at < until_before`` match."""

    terms: tuple[str, ...] = ()          # FTS5 phrases, already quoted (``"disk full"``, ``"dep"*``)
    words: tuple[str, ...] = ()          # the free text as typed, for display
    actor: str | None = None
    action: str | None = None
    action_prefix: bool = False
    namespace: str | None = None
    namespace_prefix: bool = False
    flow: str | None = None
    request: str | None = None
    execution: str | None = None
    since: str | None = None
    until_before: str | None = None
    raw: str = field(default="", compare=False)

    @property
    def fts(self) -> str | None:
        return " ".join(self.terms) if self.terms else None

    @property
    def empty(self) -> bool:
        return self == AuditQuery(raw=self.raw)


# -- parsing ------------------------------------------------------------------------------


def _tokens(text: str) -> Iterator[tuple[str | None, str, bool]]:
    """(field or None, value, quoted) for each word of the query."""
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        start = i
        name: str | None = None
        m = re.match(r"([A-Za-z_][A-Za-z0-9_-]*):", text[i:])
        if m and not text[i:].startswith(("http://", "https://")):
            name = m.group(1)
            i += m.end()
        if i < n and text[i] == '"':
            chars: list[str] = []
            j = i + 1
            while True:  # "" inside quotes is one literal quote
                end = text.find('"', j)
                if end < 0:
                    raise UsageError(f"unbalanced quote in history query at `{text[start:]}`: close it with \"")
                chars.append(text[j:end])
                if text[end + 1:end + 2] == '"':
                    chars.append('"')
                    j = end + 2
                    continue
                break
            value, quoted, i = "".join(chars), True, end + 1
            if i < n and not text[i].isspace():
                j = i
                while j < n and not text[j].isspace():
                    j += 1
                if text[i:j] != "*":
                    raise UsageError(f"`{text[start:j]}`: put a space after the closing quote")
                value += "*"
                i = j
        else:
            j = i
            while j < n and not text[j].isspace():
                j += 1
            value, quoted, i = text[i:j], False, j
        yield name, value, quoted


def parse_query(text: str | None, *, now: datetime | None = None) -> AuditQuery:
    """Parse a history query (see the module docstring). ``now`` anchors ages (``since:7d``)."""
    text = (text or "").strip()
    values: dict[str, Any] = {}
    terms: list[str] = []
    words: list[str] = []
    seen: set[str] = set()
    for name, value, quoted in _tokens(text):
        if name is None:
            phrase = _fts_phrase(value, quoted)
            if phrase:
                terms.append(phrase)
                words.append(value)
            continue
        key = name.lower()
        token = f"{name}:{value}" if not quoted else f'{name}:"{value}"'
        if key not in FIELDS:
            raise UsageError(f"unknown field `{name}:` in `{token}`; valid fields are {_FIELD_HELP} "
                             f"(to search for the text itself, put it in quotes: \"{token}\")")
        if key in seen:
            raise UsageError(f"field `{key}:` given twice (`{token}`); give each field once")
        seen.add(key)
        if not value or value == "*":
            if key in ("action", "ns") and value == "*":
                continue  # any
            raise UsageError(f"`{token}` needs a value, e.g. {_example(key)}")
        if key in ("since", "until"):
            moment, date_only = _parse_time(value, token, now)
            if key == "since":
                values["since"] = format_time(moment)
            else:
                end = moment + (timedelta(days=1) if date_only else timedelta(microseconds=1))
                values["until_before"] = format_time(end)
        elif key in ("action", "ns"):
            prefix = value.endswith("*")
            bare = value.rstrip("*")
            if "*" in bare:
                raise UsageError(f"`{token}`: `*` may only end the value (a prefix), e.g. {_example(key)}")
            target = "action" if key == "action" else "namespace"
            values[target] = bare
            values[f"{target}_prefix"] = prefix
        else:
            if value.endswith("*"):
                raise UsageError(f"`{token}`: {key}: matches exactly; only action: and ns: take a prefix with *")
            values[{"request": "request", "execution": "execution", "flow": "flow", "actor": "actor"}[key]] = value
    if values.get("since") and values.get("until_before") and values["since"] >= values["until_before"]:
        raise UsageError("`since:` is not before `until:`; nothing can match")
    return AuditQuery(terms=tuple(terms), words=tuple(words), raw=text, **values)


def _example(key: str) -> str:
    return {"actor": "actor:alice", "action": "action:request.approved or action:request.*",
            "ns": "ns:prod.payments or ns:prod*", "flow": "flow:deploy", "request": "request:r0123456789ab",
            "execution": "execution:<id>", "since": "since:7d or since:2026-01-05",
            "until": "until:24h or until:2026-01-06"}[key]


def _fts_phrase(value: str, quoted: bool) -> str | None:
    prefix = value.endswith("*")
    body = value.rstrip("*") if prefix else value
    if not re.search(r"\w", body):
        if quoted and not body.strip():
            return None
        if not body:
            raise UsageError(f"`{value}` is not something to search for: give a word before *")
        return None  # only punctuation: nothing the index can match on, so no constraint
    phrase = '"' + body.replace('"', '""') + '"'
    return phrase + "*" if prefix else phrase


def _parse_time(value: str, token: str, now: datetime | None) -> tuple[datetime, bool]:
    """(moment, is a bare date)."""
    if _DATE.fullmatch(value):
        try:
            return datetime.fromisoformat(value).replace(tzinfo=UTC), True
        except ValueError:
            raise UsageError(f"`{token}` is not a valid date; {_TIME_HELP}") from None
    age: timedelta | None = None
    m = _AGE.fullmatch(value)
    if m and any(m.groups()):
        w, d, h, mi, s = (int(g or 0) for g in m.groups())
        age = timedelta(weeks=w, days=d, hours=h, minutes=mi, seconds=s)
    elif value[:1] in "pP" and len(value) > 1:
        try:
            age = parse_duration(value, allow_negative=False)
        except ValueError as exc:
            raise UsageError(f"`{token}`: {exc}") from None
    if age is not None:
        if now is None:
            raise UsageError(f"`{token}` is relative but no current time was given")
        return now - age, False
    if "T" in value or " " in value:
        try:
            moment = datetime.fromisoformat(value.replace("z", "Z").replace("Z", "+00:00"))
        except ValueError:
            raise UsageError(f"`{token}` is not a time; {_TIME_HELP}") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC), False
    raise UsageError(f"`{token}` is not a time; {_TIME_HELP}")


# -- planning -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Driver:
    name: str            # index name, "fts" or "rowid"
    clause: str          # the filter this driver satisfies
    params: tuple[Any, ...]
    ordered: bool        # walking the driver yields seq order (no sort needed)


def _prefix_range(column: str, prefix: str) -> tuple[str, tuple[Any, ...]]:
    return f"{column} >= ? AND {column} < ?", (prefix, prefix + _MAX_CHAR)


def _filters(q: AuditQuery) -> list[_Driver]:
    """One entry per field filter, each with the index that can drive it."""
    out: list[_Driver] = []
    if q.request is not None:
        out.append(_Driver("audit_by_request", "a.request_id = ?", (q.request,), True))
    if q.execution is not None:
        out.append(_Driver("audit_by_execution", "a.execution_id = ?", (q.execution,), True))
    if q.actor is not None:
        out.append(_Driver("audit_by_actor", "a.actor = ?", (q.actor,), True))
    if q.flow is not None:
        out.append(_Driver("audit_by_flow", "a.flow_id = ?", (q.flow,), True))
    if q.action is not None:
        if q.action_prefix:
            out.append(_Driver("audit_by_action", *_prefix_range("a.action", q.action), False))
        else:
            out.append(_Driver("audit_by_action", "a.action = ?", (q.action,), True))
    if q.namespace is not None:
        if q.namespace_prefix:
            out.append(_Driver("audit_by_namespace", *_prefix_range("a.namespace", q.namespace), False))
        else:
            out.append(_Driver("audit_by_namespace", "a.namespace = ?", (q.namespace,), True))
    if q.since is not None or q.until_before is not None:
        parts, params = [], []
        if q.since is not None:
            parts.append("a.at >= ?")
            params.append(q.since)
        if q.until_before is not None:
            parts.append("a.at < ?")
            params.append(q.until_before)
        out.append(_Driver("audit_by_at", " AND ".join(parts), tuple(params), False))
    return out


@dataclass(frozen=True)
class _Plan:
    driver: _Driver | None        # None: walk the table by seq
    fts: str | None
    fts_drives: bool
    fts_small: bool
    others: tuple[_Driver, ...]
    #: exact seq bounds implied by since:/until: (found through the time index)
    lo: int | None = None
    hi: int | None = None
    empty: bool = False


def _probe(conn: sqlite3.Connection, d: _Driver) -> int:
    sql = f"SELECT count(*) FROM (SELECT 1 FROM audit a INDEXED BY {d.name} WHERE {d.clause} LIMIT {_CAP})"
    count: int = conn.execute(sql, d.params).fetchone()[0]
    return count


def _probe_fts(conn: sqlite3.Connection, fts: str) -> int:
    sql = f"SELECT count(*) FROM (SELECT rowid FROM audit_fts WHERE audit_fts MATCH ? LIMIT {_CAP})"
    count: int = conn.execute(sql, (fts,)).fetchone()[0]
    return count


def _plan(conn: sqlite3.Connection, q: AuditQuery) -> _Plan:
    filters = _filters(q)
    fts = q.fts
    if not filters:
        return _Plan(None, fts, fts is not None, False, ())
    if fts is None and len(filters) == 1 and filters[0].ordered:
        return _Plan(filters[0], None, False, False, ())
    counts = [(_probe(conn, d), i) for i, d in enumerate(filters)]
    fts_count = _probe_fts(conn, fts) if fts is not None else None
    best_count, best = min(counts)
    if fts_count is not None and fts_count <= best_count:
        return _Plan(None, fts, True, fts_count < _CAP, tuple(filters))
    driver: _Driver | None
    if best_count < _CAP:
        driver = filters[best]
    else:
        # every filter is broad: walk in seq order along an ordered index if there is one
        # (it visits only its matches), else the table itself (the matches are dense)
        if fts is not None:
            return _Plan(None, fts, True, False, tuple(filters))
        ordered = [d for d in filters if d.ordered]
        driver = ordered[0] if ordered else None
    others = tuple(d for d in filters if d is not driver)
    return _Plan(driver, fts, False, fts_count is not None and fts_count < _CAP, others)


def _bounded(conn: sqlite3.Connection, plan: _Plan, q: AuditQuery, *, desc: bool) -> _Plan:
    """Add exact seq bounds from the time filter when they cut off many rows of a walk.

    A walk in seq order cannot stop early on a time filter by itself (times need not be
    monotonic in seq). The newest event before ``until:`` and the oldest on/after ``since:``
    are found in O(log n) through the time index; when they show the bound prunes more than
    a page's worth, the exact bound (max/min seq over the matching index range) is computed
    and used, so e.g. ``until:<a year ago>`` does not scan a year of newer events.
    """
    if plan.driver is not None and plan.driver.name == "audit_by_at":
        return plan
    at_index = "audit INDEXED BY audit_by_at"
    if desc and q.until_before is not None:
        row = conn.execute(f"SELECT seq FROM {at_index} WHERE at < ? ORDER BY at DESC LIMIT 1",
                           (q.until_before,)).fetchone()
        if row is None:
            return _replace(plan, empty=True)
        top = conn.execute("SELECT max(seq) FROM audit").fetchone()[0]
        if top - row[0] > _CAP:
            hi = conn.execute(f"SELECT max(seq) FROM {at_index} WHERE at < ?", (q.until_before,)).fetchone()[0]
            return _replace(plan, hi=hi)
    if not desc and q.since is not None:
        row = conn.execute(f"SELECT seq FROM {at_index} WHERE at >= ? ORDER BY at LIMIT 1", (q.since,)).fetchone()
        if row is None:
            return _replace(plan, empty=True)
        if row[0] > _CAP:
            lo = conn.execute(f"SELECT min(seq) FROM {at_index} WHERE at >= ?", (q.since,)).fetchone()[0]
            return _replace(plan, lo=lo)
    return plan


def _seq_bounds(where: list[str], params: list[Any], column: str, plan: _Plan, *, desc: bool,
                cursor: int | None) -> None:
    """The page cursor and the since/until range, on whichever sequence column drives."""
    if cursor is not None:
        where.append(f"{column} < ?" if desc else f"{column} > ?")
        params.append(cursor)
    if plan.hi is not None:
        where.append(f"{column} <= ?")
        params.append(plan.hi)
    if plan.lo is not None:
        where.append(f"{column} >= ?")
        params.append(plan.lo)


def _sql(plan: _Plan, *, desc: bool, cursor: int | None) -> tuple[str, list[Any]]:
    order = "DESC" if desc else "ASC"
    where: list[str] = []
    params: list[Any] = []
    if plan.fts_drives:
        source = "audit_fts f CROSS JOIN audit a"
        where.append("audit_fts MATCH ?")
        params.append(plan.fts)
        where.append("a.seq = f.rowid")
        _seq_bounds(where, params, "f.rowid", plan, desc=desc, cursor=cursor)
        order_by = f"f.rowid {order}"
    else:
        if plan.driver is None:
            source = "audit a NOT INDEXED"
        else:
            source = f"audit a INDEXED BY {plan.driver.name}"
            where.append(plan.driver.clause)
            params.extend(plan.driver.params)
        _seq_bounds(where, params, "a.seq", plan, desc=desc, cursor=cursor)
        if plan.fts is not None:
            if plan.fts_small:
                where.append("a.seq IN (SELECT rowid FROM audit_fts WHERE audit_fts MATCH ?)")
            else:
                where.append("EXISTS (SELECT 1 FROM audit_fts WHERE audit_fts MATCH ? AND rowid = a.seq)")
            params.append(plan.fts)
        order_by = f"a.seq {order}"
    for d in plan.others:
        where.append(d.clause)
        params.extend(d.params)
    sql = f"SELECT {_COLUMNS} FROM {source}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY {order_by} LIMIT ?"
    return sql, params


# -- running ------------------------------------------------------------------------------


def event_dict(row: tuple[Any, ...]) -> dict[str, Any]:
    return {"seq": row[0], "at": row[1], "actor": row[2], "action": row[3], "namespace": row[4],
            "flow_id": row[5], "execution_id": row[6], "request_id": row[7], "data": _data(row[8]),
            "hash": row[9], "prev_hash": row[10]}


def _data(text: Any) -> Any:
    try:
        return jsonutil.loads(text, {})
    except (TypeError, ValueError):
        return text  # a hand-edited row: show what is there


def _rows(conn: sqlite3.Connection, q: AuditQuery, *, desc: bool, cursor: int | None,
          batch: int) -> Iterator[list[tuple[Any, ...]]]:
    """Batches of raw rows in seq order (newest first when desc), from after ``cursor``."""
    if getattr(conn, "dialect", "sqlite") == "postgresql":
        yield from _pg_rows(conn, q, desc=desc, cursor=cursor, batch=batch)
        return
    plan = _bounded(conn, _plan(conn, q), q, desc=desc)
    if plan.empty:
        return
    while True:
        sql, params = _sql(plan, desc=desc, cursor=cursor)
        cur = conn.cursor()
        cur.row_factory = None
        try:
            rows = cur.execute(sql, [*params, batch]).fetchall()
        except sqlite3.OperationalError as exc:
            if "fts5" in str(exc) or "MATCH" in str(exc):
                raise UsageError(f"cannot search for {' '.join(q.words)!r}: {exc}") from None
            raise
        if not rows:
            return
        yield rows
        if len(rows) < batch:
            return
        cursor = rows[-1][0]


def _pg_rows(conn: Any, q: AuditQuery, *, desc: bool, cursor: int | None,
             batch: int) -> Iterator[list[tuple[Any, ...]]]:
    """PostgreSQL: one query with every filter; its planner (with statistics) picks the index.
    Free text matches the events' tsvector in ``audit_words`` (engine.audit.fulltext: the same
    tokens as FTS5)."""
    from signoff.engine.audit.fulltext import tsquery_literal

    where: list[str] = []
    params: list[Any] = []
    for d in _filters(q):
        if d.name in ("audit_by_action", "audit_by_namespace") and not d.ordered:  # a prefix
            column = "a.action" if d.name == "audit_by_action" else "a.namespace"
            where.append(f"starts_with({column}, ?)")
            params.append(d.params[0])
        else:
            where.append(d.clause)
            params.extend(d.params)
    if q.terms:
        tsquery = tsquery_literal(q.terms)
        if tsquery is not None:
            where.append("a.seq IN (SELECT seq FROM audit_words WHERE words @@ CAST(? AS tsquery))")
            params.append(tsquery)
    order = "DESC" if desc else "ASC"
    while True:
        page = list(where)
        page_params = list(params)
        if cursor is not None:
            page.append("a.seq < ?" if desc else "a.seq > ?")
            page_params.append(cursor)
        sql = f"SELECT {_COLUMNS} FROM audit a"
        if page:
            sql += " WHERE " + " AND ".join(page)
        sql += f" ORDER BY a.seq {order} LIMIT ?"
        cur = conn.cursor()
        cur.row_factory = None
        rows = cur.execute(sql, [*page_params, batch]).fetchall()
        if not rows:
            return
        yield rows
        if len(rows) < batch:
            return
        cursor = rows[-1][0]


def _index_first(db: Any, q: AuditQuery) -> None:
    """Free text: index the events appended since the last search first
    (engine.audit.fulltext_feed), so every committed event is found."""
    if q.fts is not None:
        from signoff.engine.audit.fulltext_feed import catch_up

        catch_up(db)


def search(db: Any, query: AuditQuery | str | None, *, limit: int = 50, before_seq: int | None = None,
           now: datetime | None = None, visible: Callable[[str | None], bool] | None = None) -> list[dict[str, Any]]:
    """Events matching ``query``, newest first, at most ``limit``, older than ``before_seq``.

    ``visible(namespace)`` hides events the caller may not see (they do not count to the
    limit). The next page is ``before_seq=result[-1]["seq"]``.
    """
    if limit < 1:
        raise UsageError("limit must be at least 1")
    q = query if isinstance(query, AuditQuery) else parse_query(query, now=now or datetime.now(UTC))
    _index_first(db, q)
    conn = connection_of(db)
    out: list[dict[str, Any]] = []
    batch = limit if visible is None else max(limit, 200)
    for rows in _rows(conn, q, desc=True, cursor=before_seq, batch=batch):
        for row in rows:
            if visible is None or visible(row[4]):
                out.append(event_dict(row))
                if len(out) >= limit:
                    return out
        if visible is None:
            break
    return out


def iter_events(db: Any, query: AuditQuery | str | None, *, now: datetime | None = None,
                visible: Callable[[str | None], bool] | None = None, batch: int = 1000,
                after_seq: int | None = None) -> Iterator[dict[str, Any]]:
    """Every event matching ``query``, oldest first, read in batches (for export)."""
    q = query if isinstance(query, AuditQuery) else parse_query(query, now=now or datetime.now(UTC))
    _index_first(db, q)
    conn = connection_of(db)
    for rows in _rows(conn, q, desc=False, cursor=after_seq, batch=batch):
        for row in rows:
            if visible is None or visible(row[4]):
                yield event_dict(row)


__all__ = ["AuditQuery", "FIELDS", "parse_query", "search", "iter_events", "event_dict"]


#: a moment as history queries and `signoff stats --since` write it (date, date-time or an age)
parse_moment = _parse_time
