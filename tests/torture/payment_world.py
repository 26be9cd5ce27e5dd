"""A payments world for the decide-while-running races (issue 10): the real sample flow
``payment_approval`` with a few hundred executions waiting for finance, single and dual
control mixed, and the checks every race test makes afterwards.

The mix: every third payment needs two approvers (dual control). Half of those already carry
one approval by erik, so the approver under test completes them; the other half only reach
1/2 and stay waiting. Everything else needs one approver. The payments API is a real local
listener (tests/fakes/http_listener.py) or a bound socket that refuses connections.
"""
from __future__ import annotations

import collections
import json
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from signoff.console.settings import sample_flows_dir
from signoff.engine.core import Engine
from signoff.engine.identity import Identity
from signoff.engine.policy import load_policy
from signoff.engine.service import ApprovalService

DANA = Identity("dana", source="demo")
OLIVIA = Identity("olivia", source="os")
ERIK = Identity("erik", source="os")

POLICY = """\
fourEyes: true
groups:
  finance: [olivia, erik]
bindings:
  - role: admin
    subjects: [user:olivia]
    namespaces: ['*']
  - role: approver
    subjects: [group:finance]
    namespaces: [company.finance]
  - role: requester
    subjects: [user:dana]
    namespaces: ['*']
"""

PAYEES = [("Acme Industrial GmbH", "DE89370400440532013000"), ("Globex Logistics Ltd", "GB29NWBK60161331926819"),
          ("Initech Software BV", "NL91ABNA0417164300")]


@dataclass
class PaymentWorld:
    data_dir: Path
    policy_path: Path
    service: ApprovalService
    #: request id -> execution id, for every request the approver under test decides
    requests: dict[str, str] = field(default_factory=dict)
    #: executions that end after the approver's decision (single, and dual already at 1/2)
    completing: set[str] = field(default_factory=set)
    #: dual-control executions that only reach 1/2 and keep waiting
    waiting: set[str] = field(default_factory=set)


def write_policy(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "policy.yaml"
    path.write_text(POLICY)
    return path


def build(tmp_path: Path, count: int, payments_api: str, database: str | None = None) -> PaymentWorld:
    """``count`` payment executions waiting for olivia (started by dana, some pre-approved by erik);
    ``database``: on that PostgreSQL database instead of the data directory's SQLite file."""
    policy_path = write_policy(tmp_path / "config")
    engine = Engine(tmp_path / "data", [sample_flows_dir()], policy=load_policy(policy_path), database=database)
    service = ApprovalService(engine)
    service.kv_set(OLIVIA, "company.finance", "PAYMENTS_API", payments_api)
    world = PaymentWorld(tmp_path / "data", policy_path, service)
    first_of_dual: list[str] = []
    for i in range(count):
        payee, iban = PAYEES[i % len(PAYEES)]
        dual = i % 3 == 0
        execution = service.start_execution(DANA, "company.finance", "payment_approval", {
            "amount": 20_000 + i if dual else 150 + i, "currency": "EUR", "payee": payee, "iban": iban,
            "reference": f"INV-{10_000 + i}"})
        [request] = execution["requests"]
        world.requests[request["id"]] = execution["id"]
        if dual and i % 2 == 0:
            first_of_dual.append(request["id"])
            world.completing.add(execution["id"])
        elif dual:
            world.waiting.add(execution["id"])
        else:
            world.completing.add(execution["id"])
    service.run_inline = False  # erik's first approvals leave their executions waiting anyway
    outcomes = service.approve(ERIK, first_of_dual)
    service.run_inline = True
    assert all(o.ok and o.state == "PENDING" for o in outcomes), outcomes
    return world


@contextmanager
def refusing_port() -> Iterator[str]:
    """A loopback address whose port is bound but not listening: every connect is refused."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


def settled(engine: Engine) -> bool:
    """No work queued or leased, and no execution between two steps."""
    db = engine.db
    return (db.query_one("SELECT count(*) FROM work")[0] == 0 and
            db.query_one("SELECT count(*) FROM executions WHERE state IN ('CREATED', 'RUNNING')")[0] == 0)


def check_outcome(world: PaymentWorld, *, answered: bool, listener: Any = None) -> None:
    """What every race test asserts once everything settled.

    ``answered``: the payments API answered 201 (every completed payment is SUCCESS and was
    sent exactly once), else it refused connections (every one FAILED with that error)."""
    service = world.service
    db = service.engine.db
    states = {r["id"]: r for r in db.query("SELECT id, state, error FROM executions")}
    for execution_id in world.waiting:
        assert states[execution_id]["state"] == "PAUSED", states[execution_id]
    wrong = []
    for execution_id in world.completing:
        row = states[execution_id]
        if answered:
            if row["state"] != "SUCCESS":
                wrong.append((execution_id, row["state"], row["error"]))
        elif row["state"] != "FAILED" or not (row["error"] or "").startswith("Cannot connect to http://127.0.0.1:"):
            wrong.append((execution_id, row["state"], row["error"]))
    assert not wrong, f"{len(wrong)} of {len(world.completing)} executions ended wrong, e.g. {wrong[:3]}"
    assert not [r for r in states.values() if "is not defined" in (r["error"] or "")]

    # each completed execution ended once, and its approval's outputs are all there
    ended = collections.Counter(r["execution_id"] for r in db.query(
        "SELECT execution_id FROM audit WHERE action='execution.ended'"))
    assert set(ended) == world.completing and set(ended.values()) == {1}
    for execution_id in world.completing:
        runs = {r["path"]: r for r in db.query("SELECT path, state, attempt, outputs FROM task_runs"
                                               " WHERE execution_id=?", (execution_id,))}
        approval = runs.get("route_by_amount/single_approval") or runs["route_by_amount/dual_approval"]
        assert approval["state"] == "SUCCESS"
        outputs = json.loads(approval["outputs"])
        assert outputs["decision"] == "APPROVED"
        approvers = [d["by"] for d in outputs["decisions"]]
        assert approvers in (["olivia"], ["erik", "olivia"]), approvers
        submit = runs["submit_payment"]
        assert submit["attempt"] == 1
        assert submit["state"] == ("SUCCESS" if answered else "FAILED")

    if listener is not None:
        sent = listener.requests_to("/payments")
        keys = collections.Counter(r.headers.get("Idempotency-Key") for r in sent)
        assert {k: n for k, n in keys.items() if n != 1} == {}, "a payment was sent twice"
        assert set(keys) == {f"{e}:submit_payment:1" for e in world.completing}
        for r in sent:
            execution_id = r.json["execution"]
            approvers = [d["by"] for d in r.json["approved_by"]]
            assert approvers == (["erik", "olivia"] if r.json["amount"] >= 10_000 else ["olivia"]), r.json
            assert execution_id in world.completing
