"""A bulk decision encodes what its items share once (engine.approvals.decide: the form check's
JSON, the event's members other than context and inputs, the result document) and pauses the
garbage collector (engine.gcpause). What it stores must be what encoding each item on its own
gives: the canonical JSON of the decision row, the request's result and the audit event, for
forms shared by every item and for forms with templates (checked item by item), for approvals,
denials and approvals short of a quorum, on both stores.
"""
from __future__ import annotations

import gc
import threading
from pathlib import Path
from typing import Any

import pytest

from signoff.engine import jsonutil
from signoff.engine.audit.verify import verify_chain
from signoff.engine.gcpause import collection_paused
from signoff.engine.service import ApprovalService
from signoff.engine.store.foreground import BULK_ITEMS
from tests.support import ALICE, BOB, make_service


def _flow(flow_id: str, gate: str) -> str:
    """A flow started with a ticket whose one task, ``gate``, is given as YAML lines."""
    return f"""
        id: {flow_id}
        namespace: ops
        inputs:
          - id: ticket
            type: STRING
        tasks:
          - id: gate{gate}"""


FLOWS = {
    "shared.yaml": _flow("shared", """
            type: io.kestra.plugin.core.flow.Pause
            context:
              summary: "{{ inputs.ticket }}"
              details: 'a "quoted" word, é and \\u2028'
            onResume:
              - id: note
                type: STRING
                required: false
              - id: pin
                type: SECRET
                required: false
        """),
    "templated.yaml": _flow("templated", """
            type: io.kestra.plugin.core.flow.Pause
            context:
              summary: "{{ inputs.ticket }}"
            onResume:
              - id: note
                type: STRING
                defaults: "for {{ inputs.ticket }}"
        """),
    "quorum.yaml": _flow("quorum", """
            type: io.kestra.plugin.core.flow.Approval
            required: 2
        """),
}


@pytest.fixture(params=["sqlite", "pg"])
def svc(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    url = request.getfixturevalue("pg_url") if request.param == "pg" else None
    service = make_service(tmp_path, FLOWS, database=url)
    yield service
    service.engine.close()


def _start(svc: ApprovalService, flow: str, count: int) -> list[str]:
    ids = []
    for i in range(count):
        execution = svc.start_execution(ALICE, "ops", flow, {"ticket": f"CHG-{flow}-{i}"})
        ids.extend(r["id"] for r in execution["requests"])
    return ids


def _stored(svc: ApprovalService, request_id: str) -> dict[str, Any]:
    request = svc.db.query_one("SELECT context, result, decided_at FROM requests WHERE id=?", (request_id,))
    decision = svc.db.query_one("SELECT inputs FROM decisions WHERE request_id=? AND actor=?", (request_id, BOB.name))
    event = svc.db.query_one("SELECT data FROM audit WHERE request_id=? AND actor=? ORDER BY seq DESC LIMIT 1",
                             (request_id, BOB.name))
    return {"context": request[0], "result": request[1], "decided_at": request[2], "inputs": decision[0],
            "event": event[0]}


def _check(stored: dict[str, Any], *, values: dict[str, Any], masked: dict[str, Any], verdict: str, state: str,
           reason: str | None) -> None:
    """Every stored text is the canonical JSON of what it should hold, encoded whole."""
    assert stored["inputs"] == jsonutil.dumps(values)
    event = {"context": jsonutil.loads(stored["context"]), "inputs": masked, "origin": "cli", "reason": reason,
             "state": state, "verdict": verdict}
    assert stored["event"] == jsonutil.dumps(event)
    if state == "PENDING":
        assert stored["result"] is None
    else:
        result = {"state": state, "by": BOB.name, "on": stored["decided_at"], "inputs": values, "reason": reason,
                  "automatic": False}
        assert stored["result"] == jsonutil.dumps(result)


def test_a_bulk_stores_what_encoding_each_item_alone_gives(svc: ApprovalService) -> None:
    shared, templated = _start(svc, "shared", 4), _start(svc, "templated", 3)
    values = {"note": 'ok "then" – go', "pin": "1234"}
    outcomes = svc.approve(BOB, shared, inputs=values, reason="bulk with a form")
    assert [o.state for o in outcomes] == ["APPROVED"] * 4
    for request_id in shared:
        _check(_stored(svc, request_id), values=values, masked={**values, "pin": "***"}, verdict="approve",
               state="APPROVED", reason="bulk with a form")
    # a form with a template is checked per request: each gets its own default
    outcomes = svc.approve(BOB, templated, reason=None)
    assert [o.state for o in outcomes] == ["APPROVED"] * 3
    for i, request_id in enumerate(templated):
        own = {"note": f"for CHG-templated-{i}"}
        _check(_stored(svc, request_id), values=own, masked=own, verdict="approve", state="APPROVED", reason=None)
    assert verify_chain(svc.db).ok


def test_denials_and_approvals_short_of_a_quorum_store_the_same_texts(svc: ApprovalService) -> None:
    denied, quorum = _start(svc, "shared", 2), _start(svc, "quorum", 3)
    assert [o.state for o in svc.deny(BOB, denied, reason="no")] == ["DENIED"] * 2
    for request_id in denied:
        _check(_stored(svc, request_id), values={}, masked={}, verdict="deny", state="DENIED", reason="no")
    assert [o.state for o in svc.approve(BOB, quorum, reason="one of two")] == ["PENDING"] * 3
    for request_id in quorum:
        _check(_stored(svc, request_id), values={}, masked={}, verdict="approve", state="PENDING",
               reason="one of two")
    assert verify_chain(svc.db).ok


def test_the_collector_is_paused_during_a_large_bulk_and_resumes_after(tmp_path: Path) -> None:
    svc = make_service(tmp_path, FLOWS)
    try:
        ids = _start(svc, "quorum", BULK_ITEMS + 1)
        seen: list[bool] = []
        assert gc.isenabled()
        outcomes = svc.approve(BOB, ids, progress=lambda done, total: seen.append(gc.isenabled()) or True)
        assert len(outcomes) == BULK_ITEMS + 1 and seen and not any(seen)
        assert gc.isenabled()
        # a small call leaves it alone
        small = _start(svc, "quorum", 1)
        svc.approve(BOB, small, progress=lambda done, total: seen.append(gc.isenabled()) or True)
        assert seen[-1] is True
    finally:
        svc.engine.close()


def test_overlapping_pauses_resume_the_collector_only_when_the_last_ends() -> None:
    assert gc.isenabled()
    first_in, second_out, release = threading.Event(), threading.Event(), threading.Event()

    def first() -> None:
        with collection_paused():
            first_in.set()
            release.wait(10)

    thread = threading.Thread(target=first)
    thread.start()
    first_in.wait(10)
    with collection_paused():
        assert not gc.isenabled()
    second_out.set()
    assert not gc.isenabled()  # the first is still running
    release.set()
    thread.join(10)
    assert gc.isenabled()


def test_a_collector_switched_off_before_stays_off() -> None:
    gc.disable()
    try:
        with collection_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()
