"""Decide, cancel, expiry and the end of the execution racing on ONE request, through three real
`signoff serve` replicas on one PostgreSQL (issue 14).

Each round, one execution of ``contested`` (tests/torture/test_pg_replicas.py) waits on two
parallel gates: ``gate``, the contested request, and ``ender``, its sibling. The racers are
released together by a barrier, each after its own random delay (so that each of them wins
some rounds):

- alice approves ``gate`` through replica A;
- bob cancels ``gate`` through replica B;
- ``gate``'s expiry timer falls due (behaviour RESUME); it fires in whichever replica's
  background runner finds it first;
- in odd rounds, dave denies ``ender`` through replica C: the runner that continues the
  execution kills it, which closes ``gate`` as well (the end of the execution). In even rounds
  ``ender`` was approved beforehand, so the winner on ``gate`` alone decides how it ends.

Every round must end in one consistent state: ``gate`` closed once, by exactly one of them (its
audit trail names that one and no other: one closing event, or none and the execution's end
when that closed it), its decisions table and result agreeing, the execution ended as the
winner implies (approved or expired: SUCCESS and the HTTP task after the gates called once at
the local listener; cancelled or the execution ended: KILLED and no call), every loser answered
409 and no client ever a 5xx. At the end no replica logged a traceback or a deadlock, nor did
PostgreSQL (a deadlock it broke and a retry hid), and `signoff audit verify` passes.

30 rounds in CI (2 cores), 200 with ``--long``.
"""
from __future__ import annotations

import collections
import json
import random
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from signoff.engine.clock import format_time
from signoff.engine.core import Engine
from signoff.engine.identity import SYSTEM, Identity
from signoff.engine.service import ApprovalService
from tests.torture.test_pg_replicas import NS, World, sizes

CLOSING = ("request.approved", "request.denied", "request.auto_approved", "request.cancelled", "request.expired")
ENDED = ("SUCCESS", "WARNING", "FAILED", "KILLED", "CANCELLED")


@pytest.fixture
def world(tmp_path: Path, pg_cluster: Any, http_listener: Any):
    w = World(tmp_path, pg_cluster.new_database("races"), http_listener)
    yield w
    w.stop()


def start_contested(world: World, count: int) -> list[tuple[str, str, str]]:
    """``count`` executions of ``contested``, paused at both gates: (execution, gate, ender) ids."""
    engine = Engine(world.tmp / "starter", [world.flows], database=world.url)
    try:
        svc = ApprovalService(engine)
        out = []
        for _ in range(count):
            execution = svc.start_execution(Identity("carol"), NS, "contested", {})
            by_task = {r["task_id"]: r["id"] for r in execution["requests"]}
            out.append((execution["id"], by_task["gate"], by_task["ender"]))
    finally:
        engine.close()
    return out


def wait_settled(world: World, execution_id: str, *, ended: bool, timeout: float = 60) -> str:
    """The execution's state once nothing is queued for it (and, when ``ended``, it ended)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        [(state, queued)] = world.query("SELECT e.state, (SELECT count(*) FROM work w WHERE w.execution_id=e.id)"
                                        " FROM executions e WHERE e.id=%s", (execution_id,))
        if not queued and (state in ENDED or not ended):
            return str(state)
        time.sleep(0.05)
    raise AssertionError(f"execution {execution_id} not settled after {timeout} s: {state}, {queued} queued")


class Racer(threading.Thread):
    """One HTTP call, made ``delay`` seconds after the barrier opens."""

    def __init__(self, client: httpx.Client, path: str, body: dict[str, Any], barrier: threading.Barrier,
                 delay: float) -> None:
        super().__init__(daemon=True)
        self.client, self.path, self.body, self.barrier, self.delay = client, path, body, barrier, delay
        self.answer: httpx.Response | None = None
        self.error: str | None = None

    def run(self) -> None:
        self.barrier.wait(30)
        time.sleep(self.delay)
        try:
            self.answer = self.client.post(self.path, json=self.body)
        except httpx.HTTPError as exc:
            self.error = repr(exc)

    def status(self) -> int:
        assert self.answer is not None, (self.path, self.error)
        assert self.answer.status_code in (200, 409), (self.path, self.answer.status_code, self.answer.text[:500])
        return self.answer.status_code


def closing_events(world: World, request_id: str) -> list[tuple[str, str, str | None]]:
    """(action, actor, state) of the events that closed (or claim to close) the request."""
    rows = world.query("SELECT action, actor, data FROM audit WHERE request_id=%s AND action = ANY(%s) ORDER BY seq",
                       (request_id, list(CLOSING)))
    out = []
    for action, actor, data in rows:
        state = (json.loads(data) if isinstance(data, str) else data or {}).get("state")
        if action in ("request.approved", "request.denied") and state == "PENDING":
            continue  # an approval short of a quorum closes nothing (not the case here)
        out.append((action, actor, state))
    return out


def test_decide_cancel_expiry_and_execution_end_race_on_one_request(world: World, pg_cluster: Any,
                                                                    request: pytest.FixtureRequest) -> None:
    rounds = sizes(request, 30, 200)
    rng = random.Random(14)
    contested = start_contested(world, rounds)
    tokens = {who: world.token(who) for who in ("alice", "bob", "dave")}
    a, b, c = world.start_replicas(3)
    clients = {who: httpx.Client(base_url=s.url, timeout=60, headers={"Authorization": f"Bearer {tokens[who]}"})
               for s, who in ((a, "alice"), (b, "bob"), (c, "dave"))}
    winners: collections.Counter[str] = collections.Counter()
    mark = pg_cluster.log_mark()  # PostgreSQL logs each deadlock it breaks, also one a retry hid
    try:
        for n, (execution_id, gate, ender) in enumerate(contested):
            ends = n % 2 == 1
            if not ends:  # ender approved first: only the racers on `gate` decide this round
                r = clients["dave"].post(f"/api/v1/approvals/{ender}/approve", json={"inputs": {}})
                assert r.status_code == 200, r.text
                assert wait_settled(world, execution_id, ended=False) == "PAUSED"
            barrier = threading.Barrier(4 if ends else 3)
            racers = {
                "decide": Racer(clients["alice"], f"/api/v1/approvals/{gate}/approve", {"inputs": {}}, barrier,
                                rng.uniform(0, 0.25)),
                "cancel": Racer(clients["bob"], f"/api/v1/approvals/{gate}/cancel", {"reason": "race"}, barrier,
                                rng.uniform(0, 0.25)),
            }
            if ends:
                racers["end"] = Racer(clients["dave"], f"/api/v1/approvals/{ender}/deny", {"reason": "end it"},
                                      barrier, rng.uniform(0, 0.05))
            for racer in racers.values():
                racer.start()
            # the expiry: due a moment from now; the replicas' runners (every 0.2 s) fire it
            due = format_time(datetime.now(UTC) + timedelta(seconds=rng.uniform(-0.05, 0.2)))
            world.query("UPDATE timers SET due_at=%s WHERE request_id=%s AND kind='expire' AND done_at IS NULL"
                        " RETURNING id", (due, gate))
            barrier.wait(30)
            for racer in racers.values():
                racer.join(120)
                assert not racer.is_alive()
            statuses = {name: racer.status() for name, racer in racers.items()}  # 200 or 409, never a 5xx
            state = wait_settled(world, execution_id, ended=True)
            winner = check_round(world, execution_id, gate, ender, ends=ends, statuses=statuses, state=state)
            winners[winner] += 1
    finally:
        for client in clients.values():
            client.close()
    print(f"{rounds} rounds, won by: {dict(winners)}")
    # the racers really race: each kind wins some rounds (the delays are drawn so)
    assert len(winners) >= 3, winners
    world.check_logs()
    logged = pg_cluster.log_since(mark)
    assert "deadlock detected" not in logged, logged[-3000:]
    world.verify()


def check_round(world: World, execution_id: str, gate: str, ender: str, *, ends: bool, statuses: dict[str, int],
                state: str) -> str:
    """One round's end state is consistent; returns who won it."""
    [(gate_state, result)] = world.query("SELECT state, result FROM requests WHERE id=%s", (gate,))
    result = json.loads(result) if isinstance(result, str) else result
    decisions = world.query("SELECT actor, verdict FROM decisions WHERE request_id=%s", (gate,))
    closed = closing_events(world, gate)
    ended_events = world.query("SELECT data FROM audit WHERE execution_id=%s AND action='execution.ended'",
                               (execution_id,))
    calls = sum(n for key, n in world.continuations().items() if key.startswith(execution_id + ":"))
    where = (execution_id, gate, gate_state, result, closed, decisions, statuses, state)
    assert len(ended_events) == 1, where
    if gate_state == "APPROVED":
        winner = "decide"
        assert closed == [("request.approved", "alice", "APPROVED")] and decisions == [("alice", "approve")], where
        assert statuses["decide"] == 200 and statuses["cancel"] == 409, where
    elif gate_state == "CANCELLED" and result["by"] == "bob":
        winner = "cancel"
        assert closed == [("request.cancelled", "bob", None)] and decisions == [], where
        assert statuses["cancel"] == 200 and statuses["decide"] == 409, where
    elif gate_state == "EXPIRED":
        winner = "expiry"
        assert [e[0] for e in closed] == ["request.expired"] and decisions == [], where
        assert statuses["decide"] == statuses["cancel"] == 409, where
    else:  # closed by the end of the execution: its `execution.ended` is the closing event
        winner = "end"
        assert ends and gate_state == "CANCELLED" and result["by"] == SYSTEM.name, where
        assert result["reason"] == "execution ended KILLED" and closed == [] and decisions == [], where
        assert statuses["decide"] == statuses["cancel"] == 409, where
    if ends:
        # the deny of `ender` kills the execution, whoever won `gate`, unless a cancel of
        # `gate` killed it first (then `ender` was closed with it and the deny refused)
        assert state == "KILLED" and calls == 0, where
        [(ender_state, ender_result)] = world.query("SELECT state, result FROM requests WHERE id=%s", (ender,))
        ender_result = json.loads(ender_result) if isinstance(ender_result, str) else ender_result
        if statuses["end"] == 200:
            assert ender_state == "DENIED", (ender_state, where)
        else:
            assert winner == "cancel" and ender_state == "CANCELLED" and ender_result["by"] == SYSTEM.name, \
                (ender_state, ender_result, where)
    elif winner == "cancel":
        assert state == "KILLED" and calls == 0, where
    else:  # approved or expired (RESUME): the execution goes on, its HTTP task called once
        assert state == "SUCCESS" and calls == 1, where
    return winner
