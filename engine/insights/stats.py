"""Approval statistics, computed in SQL over the requests and decisions tables.

Definitions (decisions for what the issue leaves open):

* The window is ``[since, now)``. Per flow, the counts are over the requests **created** in
  the window, by how they stand now: approved, denied, expired, cancelled, still pending;
  ``escalated`` counts those of them that were escalated at least once (audit
  ``request.escalated``).
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

Durations are in seconds. Only namespaces the caller may view are counted; ``namespace`` is
an exact namespace or a prefix ending in ``*``.
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from signoff.engine.clock import format_time, parse_time


#: seconds from column a to column b (the one SQLite-specific spelling here; a PostgreSQL
#: store writes EXTRACT(EPOCH FROM b::timestamptz - a::timestamptz))
def seconds_between(a: str, b: str) -> str:
    return f"((julianday({b}) - julianday({a})) * 86400.0)"


def _percentiles(partition: str, value: str) -> str:
    """Columns ``n``, ``median`` and ``p90`` (nearest rank) of ``value`` per ``partition``, over
    the rows of ``d``; only the two ranked rows per partition reach the final grouping."""
    return (f"SELECT {partition}, n, max(CASE WHEN i = (n + 1) / 2 THEN s END) AS median,"
            " max(CASE WHEN i = (9 * n + 9) / 10 THEN s END) AS p90 FROM"
            f" (SELECT {partition}, s, row_number() OVER (PARTITION BY {partition} ORDER BY s) AS i,"
            f" count(*) OVER (PARTITION BY {partition}) AS n FROM (SELECT {partition}, {value} AS s FROM d) x) y"
            f" WHERE i = (n + 1) / 2 OR i = (9 * n + 9) / 10 GROUP BY {partition}")


def compute_stats(db: Any, *, since: datetime, now: datetime, namespace: str | None,
                  visible: Callable[[str], bool]) -> dict[str, Any]:
    conn = db.connection()
    start, end = format_time(since), format_time(now)
    all_namespaces = [r[0] for r in conn.execute("SELECT DISTINCT namespace FROM requests")]
    chosen = [ns for ns in all_namespaces if visible(ns) and _matches(namespace, ns)]
    scope, scope_params = "", []  # no IN list when every namespace counts
    if len(chosen) != len(all_namespaces):
        scope = f" AND r.namespace IN ({','.join('?' * len(chosen))})" if chosen else " AND 0"
        scope_params = chosen
    snapshot = not conn.in_transaction
    if snapshot:
        conn.execute("BEGIN")  # one consistent state of the database for every part
    try:
        flows = _flows(conn, start, end, scope, scope_params)
        approvers = _approvers(conn, start, end, scope, scope_params)
        days = _days(conn, since, now, scope, scope_params)
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


def _flows(conn: Any, start: str, end: str, scope: str, params: list[str]) -> list[dict[str, Any]]:
    counts = conn.execute(
        "SELECT r.namespace, r.flow_id, count(*),"
        " sum(CASE WHEN r.state='APPROVED' THEN 1 ELSE 0 END), sum(CASE WHEN r.state='DENIED' THEN 1 ELSE 0 END),"
        " sum(CASE WHEN r.state='EXPIRED' THEN 1 ELSE 0 END), sum(CASE WHEN r.state='CANCELLED' THEN 1 ELSE 0 END)"
        f" FROM requests r WHERE r.created_at >= ? AND r.created_at < ?{scope} GROUP BY r.namespace, r.flow_id",
        (start, end, *params)).fetchall()
    escalated = dict(((ns, f), n) for ns, f, n in conn.execute(
        "SELECT r.namespace, r.flow_id, count(DISTINCT a.request_id) FROM audit a JOIN requests r ON r.id=a.request_id"
        f" WHERE a.action='request.escalated' AND r.created_at >= ? AND r.created_at < ?{scope}"
        " GROUP BY r.namespace, r.flow_id", (start, end, *params)))
    timing = {(row[0], row[1]): (row[3], row[4]) for row in conn.execute(
        "WITH d AS (SELECT r.namespace, r.flow_id, r.created_at, r.decided_at FROM requests r"
        " WHERE r.created_at >= ? AND r.created_at < ? AND r.state IN ('APPROVED', 'DENIED')"
        f" AND r.decided_at IS NOT NULL{scope}) "
        + _percentiles("namespace, flow_id", seconds_between("created_at", "decided_at")),
        (start, end, *params))}
    pending = {(ns, f): (n, oldest) for ns, f, n, oldest in conn.execute(
        "SELECT r.namespace, r.flow_id, count(*), min(r.created_at) FROM requests r"
        f" WHERE r.state='PENDING'{scope} GROUP BY r.namespace, r.flow_id", params)}
    now = parse_time(end)
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for ns, flow_id, created, approved, denied, expired, cancelled in counts:
        out[(ns, flow_id)] = {"namespace": ns, "flow_id": flow_id, "created": created, "approved": approved or 0,
                              "denied": denied or 0, "expired": expired or 0, "cancelled": cancelled or 0}
    for key in pending:
        out.setdefault(key, {"namespace": key[0], "flow_id": key[1], "created": 0, "approved": 0, "denied": 0,
                             "expired": 0, "cancelled": 0})
    for key, item in out.items():
        median, p90 = timing.get(key, (None, None))
        count, oldest = pending.get(key, (0, None))
        item.update({"escalated": escalated.get(key, 0), "median_decision_s": _round(median),
                     "p90_decision_s": _round(p90), "pending": count,
                     "oldest_pending_s": _round((now - parse_time(oldest)).total_seconds()) if oldest else None})
    return sorted(out.values(), key=lambda f: (-f["pending"], f["namespace"], f["flow_id"]))


def _approvers(conn: Any, start: str, end: str, scope: str, params: list[str]) -> list[dict[str, Any]]:
    rows = conn.execute(
        "WITH d AS (SELECT dc.actor, dc.verdict, " + seconds_between("r.created_at", "dc.at") + " AS s"
        " FROM decisions dc JOIN requests r ON r.id = dc.request_id"
        f" WHERE dc.at >= ? AND dc.at < ? AND dc.automatic = 0{scope}),"
        " y AS (SELECT actor, s, row_number() OVER (PARTITION BY actor ORDER BY s) AS i,"
        " count(*) OVER (PARTITION BY actor) AS n,"
        " sum(CASE WHEN verdict = 'approve' THEN 1 ELSE 0 END) OVER (PARTITION BY actor) AS a FROM d)"
        " SELECT actor, n, a, s FROM y WHERE i = (n + 1) / 2", (start, end, *params)).fetchall()
    out = [{"actor": actor, "decisions": n, "approvals": approvals, "denials": n - approvals,
            "median_response_s": _round(median)} for actor, n, approvals, median in rows]
    return sorted(out, key=lambda a: (-a["decisions"], a["actor"]))


def _days(conn: Any, since: datetime, now: datetime, scope: str, params: list[str]) -> list[dict[str, Any]]:
    start, end = format_time(since), format_time(now)
    join = " JOIN requests r ON r.id = dc.request_id" if scope else ""  # only to filter by namespace
    decisions = dict(conn.execute(
        f"SELECT substr(dc.at, 1, 10), count(*) FROM decisions dc{join}"
        f" WHERE dc.at >= ? AND dc.at < ? AND dc.automatic = 0{scope} GROUP BY substr(dc.at, 1, 10)",
        (start, end, *params)).fetchall())
    created = dict(conn.execute(
        f"SELECT substr(r.created_at, 1, 10), count(*) FROM requests r WHERE r.created_at >= ? AND r.created_at < ?"
        f"{scope} GROUP BY substr(r.created_at, 1, 10)", (start, end, *params)).fetchall())
    closed = dict(conn.execute(
        f"SELECT substr(r.decided_at, 1, 10), count(*) FROM requests r WHERE r.decided_at >= ? AND r.decided_at < ?"
        f"{scope} GROUP BY substr(r.decided_at, 1, 10)", (start, end, *params)).fetchall())
    backlog = conn.execute(
        "SELECT count(*) FROM requests r WHERE r.created_at < ? AND (r.decided_at IS NULL OR r.decided_at >= ?)"
        f"{scope}", (start, start, *params)).fetchone()[0]
    out: list[dict[str, Any]] = []
    day = since.date()
    while day <= now.date():
        key = day.isoformat()
        backlog += created.get(key, 0) - closed.get(key, 0)
        out.append({"day": key, "decisions": decisions.get(key, 0), "created": created.get(key, 0),
                    "backlog": backlog})
        day += timedelta(days=1)
    return out


def _round(value: float | None) -> float | None:
    return None if value is None else round(float(value), 3)
