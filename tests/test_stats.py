"""`signoff stats` (engine.insights.stats) on a generated history, checked against numbers the
test computes itself from what it did (statistics.median_low = the nearest-rank median)."""
from __future__ import annotations

import math
import random
import sqlite3
import statistics
from datetime import timedelta
from pathlib import Path

import pytest

from signoff.engine.clock import FakeClock, parse_time
from signoff.engine.core import Engine
from signoff.engine.errors import UsageError
from signoff.engine.governance.policy_file import parse_policy
from signoff.engine.identity import Identity
from signoff.engine.service import ApprovalService
from signoff.engine.store import copy_sqlite_to
from signoff.engine.store.db import DB_FILENAME
from signoff.engine.store.schema import SCHEMA_VERSION
from tests.support import make_service, write_flows

FLOWS = {
    "pay.yaml": """
        id: pay
        namespace: finance
        tasks:
          - id: approve
            type: io.kestra.plugin.core.flow.Approval
            timeout: PT6H
            expireBehavior: ESCALATE
            escalation:
              assignment:
                users: [carol]
              timeout: PT6H
              expireBehavior: FAIL
        """,
    "deploy.yaml": """
        id: deploy
        namespace: ops.prod
        tasks:
          - id: approve
            type: io.kestra.plugin.core.flow.Approval
        """,
}
POLICY = """fourEyes: false
bindings:
  - role: admin
    subjects: [user:root, user:alice, user:bob, user:carol, user:dave]
    namespaces: ["*"]
  - role: viewer
    subjects: [user:vic]
    namespaces: [ops.prod]
"""
PEOPLE = [Identity(n, ()) for n in ("alice", "bob", "carol", "dave")]
ROOT = Identity("root", ())


def p90(values: list[float]) -> float:
    return sorted(values)[math.ceil(0.9 * len(values)) - 1]


def build_history(svc, clock: FakeClock) -> dict:
    """120 requests over a few days (decided, denied, cancelled, escalated, expired, pending) and
    what the test itself counted of them."""
    rng = random.Random(15)
    # one old request, pending since before the window (it counts in the backlog, not in created)
    old = svc.start_execution(ROOT, "ops.prod", "deploy", {})["requests"][0]["id"]
    clock.advance(timedelta(days=10))
    window_start = clock.now()
    clock.advance(timedelta(minutes=1))
    expected: dict[str, dict] = {f: {"created": 0, "approved": 0, "denied": 0, "expired": 0, "cancelled": 0,
                                     "escalated": 0, "times": [], "pending": []}
                                 for f in ("pay", "deploy")}
    by_actor: dict[str, list[float]] = {}
    days: dict[str, int] = {}
    open_requests: list[tuple[str, str, object]] = []  # (flow, request id, created)
    for _ in range(120):
        flow = "pay" if rng.random() < 0.6 else "deploy"
        namespace = "finance" if flow == "pay" else "ops.prod"
        request = svc.start_execution(ROOT, namespace, flow, {})["requests"][0]["id"]
        expected[flow]["created"] += 1
        open_requests.append((flow, request, clock.now()))
        clock.advance(timedelta(minutes=rng.randint(5, 90), microseconds=rng.randint(0, 999_999)))
        svc.tick()  # timeouts: pay requests escalate after 6 h, then expire
        if rng.random() < 0.7 and open_requests:
            flow, request, created = open_requests.pop(rng.randrange(len(open_requests)))
            state = svc.get_request(ROOT, request)["state"]
            if state != "PENDING":
                continue
            who = rng.choice(PEOPLE) if flow == "deploy" else Identity("carol", ())
            roll = rng.random()
            if roll < 0.15:
                svc.cancel(ROOT, [request], reason="not needed")
                continue
            verdict = "approve" if roll < 0.85 else "deny"
            [outcome] = svc.decide(who, [request], verdict)
            assert outcome.outcome == "decided", outcome
            elapsed = (clock.now() - created).total_seconds()
            expected[flow]["times"].append(elapsed)
            by_actor.setdefault(who.name, []).append(elapsed)
            day = clock.now().date().isoformat()
            days[day] = days.get(day, 0) + 1
    svc.tick()
    # count how every request of the window stands, from the requests themselves
    rows = svc.db.query("SELECT id, flow_id, state, created_at FROM requests WHERE created_at >= ?",
                        (window_start.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),))
    escalated = {e["request_id"] for e in svc.history(ROOT, "action:request.escalated", limit=1000)}
    for row in rows:
        item = expected[row["flow_id"]]
        if row["state"] != "PENDING":
            item[row["state"].lower()] += 1
        item["escalated"] += row["id"] in escalated
    return {"old": old, "window_start": window_start, "expected": expected, "by_actor": by_actor, "days": days,
            "since": window_start.strftime("%Y-%m-%dT%H:%M:%SZ")}


def check_stats(svc, clock: FakeClock, history: dict) -> dict:
    """``signoff stats`` against what build_history counted; the result."""
    expected, by_actor, days, window_start = (history[k] for k in ("expected", "by_actor", "days", "window_start"))
    pending = svc.list_pending(ROOT)
    since = history["since"]
    result = svc.stats(ROOT, since=since)
    assert result["since"] == window_start.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    flows = {f["flow_id"]: f for f in result["flows"]}
    for flow, item in expected.items():
        got = flows[flow]
        for key in ("created", "approved", "denied", "expired", "cancelled", "escalated"):
            assert got[key] == item[key], (flow, key, got, item)
        assert item["approved"] + item["denied"] == len(item["times"])
        assert got["median_decision_s"] == pytest.approx(statistics.median_low(item["times"]), abs=0.001)
        assert got["p90_decision_s"] == pytest.approx(p90(item["times"]), abs=0.001)
        waiting = [p for p in pending if p["flow_id"] == flow]
        assert got["pending"] == len(waiting)
        oldest = min(p["created_at"] for p in waiting)
        assert got["oldest_pending_s"] == pytest.approx((clock.now() - parse_time(oldest)).total_seconds(), abs=0.01)
    assert expected["pay"]["escalated"] > 0 and expected["pay"]["expired"] > 0  # the history covers them
    assert expected["deploy"]["denied"] > 0 and expected["deploy"]["cancelled"] > 0
    assert history["old"] in {p["id"] for p in pending}
    approvers = {a["actor"]: a for a in result["approvers"]}
    assert set(approvers) == set(by_actor)
    for actor, times in by_actor.items():
        assert approvers[actor]["decisions"] == len(times)
        assert approvers[actor]["median_response_s"] == pytest.approx(statistics.median_low(times), abs=0.001)
    per_day = {d["day"]: d for d in result["days"]}
    assert {d: v["decisions"] for d, v in per_day.items() if v["decisions"]} == days
    assert sum(d["created"] for d in result["days"]) == sum(item["created"] for item in expected.values())
    # the backlog at the end of the last day is what is pending now
    assert result["days"][-1]["backlog"] == len(pending) == result["totals"]["pending"]

    # a viewer of ops.prod only sees ops.prod; --namespace narrows; bad --since is a usage error
    vic = svc.stats(Identity("vic", ()), since=since)
    assert [f["flow_id"] for f in vic["flows"]] == ["deploy"]
    assert vic["flows"][0] == flows["deploy"]
    assert {a["actor"] for a in vic["approvers"]} <= set(by_actor)
    narrowed = svc.stats(ROOT, since=since, namespace="ops.*")
    assert [f["flow_id"] for f in narrowed["flows"]] == ["deploy"]
    assert svc.stats(ROOT, since=since, namespace="nothing")["flows"] == []
    for bad in ("yesterday", "-3d", "2999-01-01"):
        with pytest.raises(UsageError):
            svc.stats(ROOT, since=bad)
    return result


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_stats_match_an_independent_count(tmp_path: Path, store: str, request: pytest.FixtureRequest) -> None:
    clock = FakeClock("2026-03-01T00:00:00Z")
    database = request.getfixturevalue("pg_url") if store == "postgresql" else None
    engine = Engine(tmp_path / "data", [write_flows(tmp_path / "flows", FLOWS)], clock=clock,
                    policy=parse_policy(POLICY, "p.yaml"), database=database)
    svc = ApprovalService(engine)
    try:
        check_stats(svc, clock, build_history(svc, clock))
    finally:
        engine.close()


#: what schema 15 added, as (table, column) and indexes; the rewind below takes them away
NEW_COLUMNS = [("requests", "decision_s"), ("requests", "escalations"), ("decisions", "response_s")]
NEW_INDEXES = ["requests_by_flow", "requests_by_decided", "requests_pending", "decisions_by_actor"]


def stored_durations(db) -> dict:
    return {"requests": {r[0]: (r[1], r[2]) for r in db.query("SELECT id, decision_s, escalations FROM requests")},
            "decisions": {r[0]: r[1] for r in db.query("SELECT id, response_s FROM decisions")}}


def test_a_schema_14_database_is_filled_in_and_counts_the_same(tmp_path: Path) -> None:
    """The history of a database written before schema 15 gets its durations and escalations
    from the upgrade: the same numbers as when they were stored as they happened."""
    clock = FakeClock("2026-03-01T00:00:00Z")
    svc = make_service(tmp_path, FLOWS, clock=clock, policy=parse_policy(POLICY, "p.yaml"))
    history = build_history(svc, clock)
    before = check_stats(svc, clock, history)
    stored = stored_durations(svc.db)
    assert any(e for _, e in stored["requests"].values()) and all(stored["decisions"].values())
    head = svc.verify_audit(ROOT)
    svc.engine.close()

    conn = sqlite3.connect(tmp_path / "data" / DB_FILENAME)
    for index in NEW_INDEXES:
        conn.execute(f"DROP INDEX {index}")
    for table, column in NEW_COLUMNS:
        conn.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    # schema 10's indexes, as schema 14 had them
    conn.execute("CREATE INDEX requests_by_flow ON requests(namespace, flow_id, created_at, state, decided_at)")
    conn.execute("CREATE INDEX requests_by_decided ON requests(decided_at, namespace)")
    conn.execute("CREATE INDEX requests_pending ON requests(state, due_at, created_at)")  # schema 1
    conn.execute("DROP TABLE audit_fts_through")  # schema 16
    conn.execute("PRAGMA user_version=14")
    conn.commit()
    conn.close()

    engine = Engine(tmp_path / "data", [tmp_path / "flows"], clock=clock, policy=parse_policy(POLICY, "p.yaml"))
    svc = ApprovalService(engine)
    try:
        assert engine.db.schema_version() == SCHEMA_VERSION
        filled = stored_durations(svc.db)
        assert filled["requests"].keys() == stored["requests"].keys()
        for rid, (seconds, escalations) in stored["requests"].items():
            assert filled["requests"][rid][1] == escalations, rid
            assert (filled["requests"][rid][0] is None) == (seconds is None), rid
            if seconds is not None:
                assert filled["requests"][rid][0] == pytest.approx(seconds, abs=1e-6), rid
        assert filled["decisions"] == pytest.approx(stored["decisions"], abs=1e-6)
        after = check_stats(svc, clock, history)
        assert after == before
        verified = svc.verify_audit(ROOT)
        assert verified["ok"] and (verified["head_seq"], verified["head"]) == (head["head_seq"], head["head"])
    finally:
        engine.close()


def test_db_copy_carries_the_durations_to_postgresql(tmp_path: Path, pg_url: str) -> None:
    """`signoff db copy` takes the stored durations along: the same stats on both stores."""
    clock = FakeClock("2026-03-01T00:00:00Z")
    svc = make_service(tmp_path, FLOWS, clock=clock, policy=parse_policy(POLICY, "p.yaml"))
    history = build_history(svc, clock)
    before = check_stats(svc, clock, history)
    stored = stored_durations(svc.db)
    svc.engine.close()
    report = copy_sqlite_to(tmp_path / "data", pg_url)
    assert report.verified, report
    engine = Engine(tmp_path / "pg", [tmp_path / "flows"], clock=clock, policy=parse_policy(POLICY, "p.yaml"),
                    database=pg_url)
    try:
        on_pg = ApprovalService(engine)
        assert stored_durations(on_pg.db) == stored
        assert check_stats(on_pg, clock, history) == before
    finally:
        engine.close()


def test_stats_cli(tmp_path: Path) -> None:
    from tests.test_cli import Cli

    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "deploy.yaml").write_text(FLOWS["deploy.yaml"].replace("\n        ", "\n").lstrip())
    cli = Cli(tmp_path / "data", flows=flows)
    execution, request = cli.start_paused("ops.prod", "deploy")
    assert cli("approve", request).code == 0
    cli.start_paused("ops.prod", "deploy")
    r = cli("stats", "--json")
    assert r.code == 0, r
    [flow] = r.json["flows"]
    assert (flow["created"], flow["approved"], flow["pending"]) == (2, 1, 1)
    r = cli("stats", "--since", "7d")
    assert r.code == 0 and "ops.prod.deploy" in r.out and "2 requests, 1 decisions; backlog 1" in r.out, r
    r = cli("stats", "--since", "soon")
    assert r.code == 2 and "--since soon" in r.err, r
