"""Approval statistics, computed in SQL over the requests and decisions tables.

Definitions (decisions for what the issue leaves open):

* The window is ``[since, now)``. Per flow, the counts are over the requests **created** in
  the window, by how they stand now: approved, denied, expired, cancelled, still pending;
  ``escalated`` counts those of them that were escalated at least once (audit
  ``request.escalated``; counted on the request as it happens, ``requests.escalations``).
* Time to decision: ``decided_at - created_at`` of the requests created in the window that a
  person or a rule approved or denied (expired and cancelled ones have no decision).
  Percentiles are nearest-rank: the median is the value at rank ceil(n/2) (for an even count,
  the lower of the two middle values), the 90th percentile the value at rank ceil(0.9 n), so
  each is a time that really occurred.
* Backlog now: every pending request (whatever its age), with the age of the oldest.
* Per approver: decisions made in the window by people (automatic ones excluded), and the
  median (same rule) of ``decision time - request created``.
* Per day (UTC): decisions made that day by people, requests created that day, and the
  backlog at the end of the day (created before the day ended and not closed by then).

How it stays fast over a long history (schema 15): the durations are stored when a request
closes (``requests.decision_s``) and when a decision is made (``decisions.response_s``), so
nothing is computed per row at query time. The flows, namespaces and approvers are listed by
successive index seeks (a loose index scan), and then every statement names its index's
leading columns (one flow, one approver, a time range, a state): the plans do not depend on
planner statistics, which an installation never gathers (no ANALYZE). Each flow's and each
approver's window is one range of a covering index; each percentile is one ordered read of
that range stopping at its rank (``ORDER BY ... LIMIT 1 OFFSET rank``, from the nearer end),
with the ranks from the counts read in the same snapshot (no window functions: SQLite's cost
several times the sort); the per-day figures are index range counts. The same SQL runs on
PostgreSQL.

Durations are in seconds. Only namespaces the caller may view are counted; ``namespace`` is
an exact namespace or a prefix ending in ``*``.
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from signoff.engine.clock import format_time, parse_time

_SNAPSHOT = {"postgresql": "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"}

#: a request that a person or a rule approved or denied (expired and cancelled ones have no decision)
_DECIDED = "r.state IN ('APPROVED', 'DENIED') AND r.decision_s IS NOT NULL"


def _nearest_rank(n: int, tenths: int) -> int:
    """1-based rank of the nearest-rank percentile ``tenths``/10 of ``n`` values: ceil(tenths * n / 10)."""
    return max(1, (tenths * n + 9) // 10)


def _kth(conn: Any, sql: str, params: tuple[Any, ...], n: int, k: int) -> float | None:
    """The ``k``-th smallest (1-based) of the ``n`` values ``sql`` selects as ``s`` (ending in
    ``ORDER BY s``): one ordered read that stops at the rank. The sort keeps only the rows up
    to the rank, so a rank in the upper half is read from the top (DESC) instead."""
    if n <= 0:
        return None
    if k > n // 2:
        sql, offset = sql + " DESC", n - k
    else:
        offset = k - 1
    row = conn.execute(f"{sql} LIMIT 1 OFFSET ?", (*params, offset)).fetchone()
    return None if row is None else row[0]


def _distinct(conn: Any, table: str, column: str, where: str = "", params: tuple[Any, ...] = ()) -> list[str]:
    """Every value of ``column`` (the leading column of an index, after the equalities of
    ``where``), in order, one index seek each."""
    out: list[str] = []
    extra = f" AND {where}" if where else ""
    row = conn.execute(f"SELECT min({column}) FROM {table} WHERE {column} IS NOT NULL{extra}", params).fetchone()
    while row is not None and row[0] is not None:
        out.append(row[0])
        row = conn.execute(f"SELECT min({column}) FROM {table} WHERE {column} > ?{extra}",
                           (row[0], *params)).fetchone()
    return out


def compute_stats(db: Any, *, since: datetime, now: datetime, namespace: str | None,
                  visible: Callable[[str], bool]) -> dict[str, Any]:
    conn = db.connection()
    start, end = format_time(since), format_time(now)
    snapshot = not conn.in_transaction
    if snapshot:
        # one consistent state of the database for every part: the percentile ranks come from
        # the counts, so both must see the same rows (PostgreSQL's default gives each statement
        # its own snapshot)
        conn.execute(_SNAPSHOT.get(getattr(conn, "dialect", "sqlite"), "BEGIN"))
    try:
        all_namespaces = _distinct(conn, "requests", "namespace")
        chosen = [ns for ns in all_namespaces if visible(ns) and _matches(namespace, ns)]
        scope, scope_params = "", []  # no IN list when every namespace counts
        if len(chosen) != len(all_namespaces):
            scope = f" AND r.namespace IN ({','.join('?' * len(chosen))})" if chosen else " AND 1 = 0"
            scope_params = chosen
        groups = [(ns, flow_id) for ns in chosen
                  for flow_id in _distinct(conn, "requests", "flow_id", "namespace = ?", (ns,))]
        flows = _flows(conn, start, end, groups, set(chosen))
        approvers = _approvers(conn, start, end, scope, scope_params)
        days = _days(conn, start, end, scope, scope_params, groups)
    finally:
        if snapshot and conn.in_transaction:
            conn.execute("COMMIT")
    totals = {key: sum(f[key] for f in flows) for key in
              ("created", "approved", "denied", "expired", "cancelled", "escalated", "pending")}
    ages = [f["oldest_pending_s"] for f in flows if f["oldest_pending_s"] is not None]
    totals["oldest_pending_s"] = max(ages) if ages else None
    totals["decisions"] = sum(a["decisions"] for a in approvers)
    return {"since": start, "until": end, "namespace": namespace, "flows": flows, "approvers": approvers,
            "days": days, "totals": totals}


def _matches(pattern: str | None, namespace: str) -> bool:
    if not pattern:
        return True
    if pattern.endswith("*"):
        return namespace.startswith(pattern.rstrip("*"))
    return namespace == pattern


def _flows(conn: Any, start: str, end: str, groups: list[tuple[str, str]],
           chosen: set[str]) -> list[dict[str, Any]]:
    counts = ("SELECT count(*), "
              + ", ".join(f"sum(CASE WHEN {condition} THEN 1 ELSE 0 END)" for condition in (
                  "r.state = 'APPROVED'", "r.state = 'DENIED'", "r.state = 'EXPIRED'", "r.state = 'CANCELLED'",
                  "r.escalations > 0", _DECIDED))
              + " FROM requests r WHERE r.namespace = ? AND r.flow_id = ? AND r.created_at >= ? AND r.created_at < ?")
    times = ("SELECT r.decision_s AS s FROM requests r WHERE r.namespace = ? AND r.flow_id = ?"
             f" AND r.created_at >= ? AND r.created_at < ? AND {_DECIDED} ORDER BY s")
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for ns, flow_id in groups:
        span = (ns, flow_id, start, end)
        created, *figures = conn.execute(counts, span).fetchone()
        if not created:
            continue
        approved, denied, expired, cancelled, escalated, decided = (int(v or 0) for v in figures)
        out[(ns, flow_id)] = {
            "namespace": ns, "flow_id": flow_id, "created": created, "approved": approved, "denied": denied,
            "expired": expired, "cancelled": cancelled, "escalated": escalated,
            "median_decision_s": _round(_kth(conn, times, span, decided, _nearest_rank(decided, 5))),
            "p90_decision_s": _round(_kth(conn, times, span, decided, _nearest_rank(decided, 9)))}
    # the pending requests by state first (schema 15's requests_pending covers flow and age)
    pending = {(ns, f): (n, oldest) for ns, f, n, oldest in conn.execute(
        "SELECT r.namespace, r.flow_id, count(*), min(r.created_at) FROM requests r"
        " WHERE r.state = 'PENDING' GROUP BY r.namespace, r.flow_id") if ns in chosen}
    now = parse_time(end)
    for key in pending:
        out.setdefault(key, {"namespace": key[0], "flow_id": key[1], "created": 0, "approved": 0, "denied": 0,
                             "expired": 0, "cancelled": 0, "escalated": 0, "median_decision_s": None,
                             "p90_decision_s": None})
    for key, item in out.items():
        count, oldest = pending.get(key, (0, None))
        item.update({"pending": count,
                     "oldest_pending_s": _round((now - parse_time(oldest)).total_seconds()) if oldest else None})
    return sorted(out.values(), key=lambda f: (-f["pending"], f["namespace"], f["flow_id"]))


def _approvers(conn: Any, start: str, end: str, scope: str, params: list[str]) -> list[dict[str, Any]]:
    join = " JOIN requests r ON r.id = dc.request_id" if scope else ""  # only to filter by namespace
    window = f" FROM decisions dc{join} WHERE dc.actor = ? AND dc.automatic = 0 AND dc.at >= ? AND dc.at < ?"
    counts = ("SELECT count(*), sum(CASE WHEN dc.verdict = 'approve' THEN 1 ELSE 0 END), count(dc.response_s)"
              f"{window}{scope}")
    times = f"SELECT dc.response_s AS s{window} AND dc.response_s IS NOT NULL{scope} ORDER BY s"
    out: list[dict[str, Any]] = []
    for actor in _distinct(conn, "decisions", "actor"):
        span = (actor, start, end, *params)
        n, approvals, timed = conn.execute(counts, span).fetchone()
        if not n:
            continue
        out.append({"actor": actor, "decisions": n, "approvals": int(approvals or 0),
                    "denials": n - int(approvals or 0),
                    "median_response_s": _round(_kth(conn, times, span, timed, _nearest_rank(timed, 5)))})
    return sorted(out, key=lambda a: (-a["decisions"], a["actor"]))


def _days(conn: Any, start: str, end: str, scope: str, params: list[str],
          groups: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """Per UTC day of the window, as index range counts (grouping by the day's text would sort
    every row of the window instead): decisions by their time, closings by theirs, requests
    created per flow and day (one range of the flow's index each)."""
    first, last = parse_time(start), parse_time(end)
    bounds: list[tuple[str, str, str]] = []
    day = first.date()
    while day <= last.date():
        midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
        bounds.append((day.isoformat(), format_time(max(first, midnight)),
                       format_time(min(last, midnight + timedelta(days=1)))))
        day += timedelta(days=1)
    days_cte = f"WITH days(day, a, b) AS (VALUES {', '.join(['(?, ?, ?)'] * len(bounds))})"
    day_params = tuple(v for b in bounds for v in b)
    join = " JOIN requests r ON r.id = dc.request_id" if scope else ""  # only to filter by namespace
    rows = conn.execute(
        f"{days_cte} SELECT day,"
        f" (SELECT count(*) FROM decisions dc{join} WHERE dc.at >= days.a AND dc.at < days.b AND dc.automatic = 0"
        f"{scope}),"
        f" (SELECT count(*) FROM requests r WHERE r.decided_at >= days.a AND r.decided_at < days.b{scope})"
        " FROM days ORDER BY day", (*day_params, *params, *params)).fetchall()
    created: dict[str, int] = {}
    if groups:
        for key, count in conn.execute(
                f"{days_cte}, g(ns, f) AS (VALUES {', '.join(['(?, ?)'] * len(groups))})"
                " SELECT day, (SELECT count(*) FROM requests r WHERE r.namespace = g.ns AND r.flow_id = g.f"
                " AND r.created_at >= days.a AND r.created_at < days.b) FROM days, g",
                (*day_params, *(v for g in groups for v in g))):
            created[key] = created.get(key, 0) + int(count)
    # open at the start: created before it and not closed before it, read by closing time (the
    # open ones are the NULLs) with the creation time in the same index
    backlog = conn.execute(
        "SELECT count(*) FROM requests r WHERE r.decided_at IS NULL AND r.created_at < ?"
        f"{scope}", (start, *params)).fetchone()[0]
    backlog += conn.execute(
        f"SELECT count(*) FROM requests r WHERE r.decided_at >= ? AND r.created_at < ?{scope}",
        (start, start, *params)).fetchone()[0]
    out: list[dict[str, Any]] = []
    for key, decisions, closed in rows:
        backlog += created.get(key, 0) - closed
        out.append({"day": key, "decisions": decisions, "created": created.get(key, 0), "backlog": backlog})
    return out


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 3)
