"""/api/v1/events: server-sent events, resuming, and the JSON polling form."""
from __future__ import annotations

import json
import threading

import httpx
import pytest

from tests.server.conftest import both_stores


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(request, server):
    """Every test here runs against the SQLite server and the PostgreSQL one."""
    return both_stores(request, server)


def read_events(lines, until, limit: int = 200) -> list[dict]:
    """Parse SSE frames from the lines of a streaming response until ``until(events)``."""
    events: list[dict] = []
    frame: dict = {}
    for line in lines:
        if line == "":
            if "data" in frame:
                events.append(frame)
                if until(events) or len(events) >= limit:
                    return events
            frame = {}
        elif line.startswith(":"):
            frame.setdefault("comments", []).append(line)
        else:
            key, _, value = line.partition(":")
            frame[key] = value.lstrip(" ")
    return events


def test_a_decision_by_another_client_appears_on_the_stream(server):
    req = server.wait_request(server.start_payment(11))
    with server.client("victor", timeout=httpx.Timeout(15.0)) as watcher:
        with watcher.stream("GET", "/api/v1/events", headers={"Accept": "text/event-stream"}) as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            lines = stream.iter_lines()
            assert next(lines) == "retry: 2000"

            def decide():
                with server.client("alice") as c:
                    assert c.post(f"/api/v1/approvals/{req}/approve",
                                  json={"inputs": {"approved": True}}).status_code == 200

            threading.Thread(target=decide).start()
            events = read_events(lines, lambda evs: any(json.loads(e["data"])["request_id"] == req
                                                         and e["event"] == "request.approved" for e in evs))
    mine = [e for e in events if json.loads(e["data"])["request_id"] == req]
    assert mine, events
    data = json.loads(mine[-1]["data"])
    assert set(data) == {"seq", "action", "request_id", "execution_id", "actor"}
    assert data["actor"] == "alice" and data["action"] == "request.approved"
    assert mine[-1]["id"] == str(data["seq"])


def test_resume_from_after_and_last_event_id_and_json_polling(server):
    with server.client("root-admin") as c:
        start = c.get("/api/v1/events", headers={"Accept": "application/json"}).json()
        assert start["items"] == [] and start["last_seq"] >= 1
        req = server.wait_request(server.start_payment(12))
        page = c.get("/api/v1/events", params={"after": start["last_seq"]},
                     headers={"Accept": "application/json"}).json()
        created = [i for i in page["items"] if i["request_id"] == req and i["action"] == "request.created"]
        assert len(created) == 1 and page["last_seq"] >= created[0]["seq"]
        assert all(i["action"] != "execution.started" for i in page["items"])  # only request-related actions
        # small pages still move forward through the whole log
        after, seqs = 0, []
        while True:
            p = c.get("/api/v1/events", params={"after": after, "limit": 3},
                      headers={"Accept": "application/json"}).json()
            seqs += [i["seq"] for i in p["items"]]
            if p["last_seq"] == after:
                break
            after = p["last_seq"]
        assert created[0]["seq"] in seqs and seqs == sorted(set(seqs))
        # the stream resumes after Last-Event-ID (it wins over ?after)
        with c.stream("GET", "/api/v1/events", params={"after": 0},
                      headers={"Accept": "text/event-stream", "Last-Event-ID": str(created[0]["seq"] - 1)},
                      timeout=10) as stream:
            [first] = read_events(stream.iter_lines(), lambda evs: len(evs) >= 1)
        assert json.loads(first["data"])["seq"] == created[0]["seq"]


def test_viewers_of_other_namespaces_do_not_see_the_events(server):
    with server.client("bob") as c:
        last = c.get("/api/v1/events", headers={"Accept": "application/json"}).json()["last_seq"]
        req = server.wait_request(server.start_payment(13))
        page = c.get("/api/v1/events", params={"after": last}, headers={"Accept": "application/json"}).json()
        assert all(i["request_id"] != req for i in page["items"])
        assert page["last_seq"] > last
