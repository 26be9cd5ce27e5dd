"""The check after every start and decision (is a checkpoint of the audit chain due?) reads
nothing while the events this process wrote are fewer than ``every`` past the newest
checkpoint it saw, and still signs exactly when one is due: after its own events, after
another process's, on both stores."""
from __future__ import annotations

from pathlib import Path

import pytest

from signoff.engine.audit import append_event
from signoff.engine.core import Engine
from signoff.engine.signing.checkpoints import write_checkpoint

EVERY = 10


def engine_on(tmp_path: Path, name: str, url: str | None) -> Engine:
    return Engine(tmp_path / name, [], database=url)


def append(engine: Engine, n: int) -> None:
    with engine.db.write() as tx:
        for i in range(n):
            append_event(tx, at="2026-01-01T00:00:00.000000Z", actor="ann", action="test.event", data={"i": i})


def checkpoint_seqs(engine: Engine) -> list[int]:
    return [r[0] for r in engine.db.query("SELECT seq FROM audit_checkpoints ORDER BY seq")]


@pytest.fixture(params=["sqlite", "pg"])
def url(request: pytest.FixtureRequest) -> str | None:
    return request.getfixturevalue("pg_url") if request.param == "pg" else None


def test_signed_when_due_after_its_own_events(tmp_path: Path, url: str | None) -> None:
    engine = engine_on(tmp_path, "a", url)
    try:
        append(engine, 3)
        assert write_checkpoint(engine, every=EVERY) is None  # 3 since none: not due (and read)
        assert engine.checkpoint_seen == 0
        for _ in range(6):
            append(engine, 1)
            assert write_checkpoint(engine, every=EVERY) is None  # 4..9: not due
        append(engine, 1)
        made = write_checkpoint(engine, every=EVERY)
        assert made is not None and made["seq"] == 10 and checkpoint_seqs(engine) == [10]
        assert engine.checkpoint_seen == 10
        append(engine, EVERY - 1)
        assert write_checkpoint(engine, every=EVERY) is None
        append(engine, 1)
        assert write_checkpoint(engine, every=EVERY)["seq"] == 20  # type: ignore[index]
        assert checkpoint_seqs(engine) == [10, 20]
    finally:
        engine.db.close()


def test_another_process_s_events_and_checkpoints_count(tmp_path: Path, url: str | None) -> None:
    """Sequence numbers are global: events written by another process (another replica, on
    PostgreSQL) move this one's next event past ``every`` too; a checkpoint signed elsewhere is
    found by the read that follows and nothing is signed twice."""
    engine = engine_on(tmp_path, "a", url)
    # SQLite: another engine on the same file; PostgreSQL: another replica's data directory
    other = engine_on(tmp_path, "a" if url is None else "b", url)
    try:
        append(engine, 1)
        assert write_checkpoint(engine, every=EVERY) is None
        append(other, 12)  # the other one signs nothing (it is not asked)
        append(engine, 1)  # seq 14: 14 - 0 >= 10, so this check reads, and signs
        made = write_checkpoint(engine, every=EVERY)
        assert made is not None and made["seq"] == 14
        append(other, 9)
        other_made = write_checkpoint(other, every=EVERY)  # 23 - 14 < 10: not due
        assert other_made is None and other.checkpoint_seen == 14
        append(other, 1)
        assert write_checkpoint(other, every=EVERY)["seq"] == 24  # type: ignore[index]
        append(engine, 1)  # seq 25: this process last saw 14, so it reads, finds 24, signs nothing
        assert write_checkpoint(engine, every=EVERY) is None and engine.checkpoint_seen == 24
        assert checkpoint_seqs(engine) == [14, 24]
    finally:
        engine.db.close()
        other.db.close()


def test_nothing_is_read_while_none_is_due(tmp_path: Path) -> None:
    engine = engine_on(tmp_path, "a", None)
    try:
        append(engine, 1)
        write_checkpoint(engine, every=EVERY)  # the first check reads
        append(engine, 5)
        statements: list[str] = []
        engine.db.connection().set_trace_callback(statements.append)
        for _ in range(3):
            assert write_checkpoint(engine, every=EVERY) is None
        engine.db.connection().set_trace_callback(None)
        assert statements == []
        append(engine, 4)  # seq 10: due
        engine.db.connection().set_trace_callback(statements.append)
        assert write_checkpoint(engine, every=EVERY) is not None
        engine.db.connection().set_trace_callback(None)
        assert any("audit_checkpoints" in s for s in statements)
    finally:
        engine.db.close()
