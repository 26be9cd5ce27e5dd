"""PostgreSQL runners list the free work rows they advance inside the advancing transaction
(engine.runtime.work.free_locked): another replica neither lists nor tries them until it
commits, rows with a live lease are never listed, and the full look (work.claimable) still
finds what is left. Two replicas are two PgDatabase handles on one real database."""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from signoff.engine.clock import FakeClock, format_time
from signoff.engine.runtime import work
from signoff.engine.store.pg import PgDatabase


def test_rows_one_replica_listed_are_skipped_by_the_other_until_it_commits(tmp_path: Path, pg_url: str) -> None:
    a, b = PgDatabase(pg_url, tmp_path / "a"), PgDatabase(pg_url, tmp_path / "b")
    clock = FakeClock()
    try:
        with a.write() as tx:
            for i in range(6):  # ready one second apart, all by now: listed in this order
                work.enqueue(tx, f"e{i}", format_time(clock.now() - timedelta(seconds=10 - i)))
            # a live lease (another advance is running it): never listed as free
            tx.execute("UPDATE work SET lease_owner='elsewhere:1:x', lease_until=? WHERE execution_id='e5'",
                       (format_time(clock.now() + timedelta(minutes=5)),))
        tx_a = a.begin()
        listed_a = work.free_locked(tx_a, clock, 3)
        assert listed_a == ["e0", "e1", "e2"]
        tx_b = b.begin()
        listed_b = work.free_locked(tx_b, clock, 10)
        assert listed_b == ["e3", "e4"]  # A's rows are skipped, the leased one is not free
        b.commit()
        # the full look skips A's locked rows too, and finds the others again
        assert set(work.claimable(b.connection(), clock, 10)) == {"e3", "e4"}
        a.commit()
        assert set(work.claimable(b.connection(), clock, 10)) == {"e0", "e1", "e2", "e3", "e4"}
        clock.advance(timedelta(minutes=6))  # the lease expired: free again
        tx_b = b.begin()
        assert "e5" in work.free_locked(tx_b, clock, 10)
        b.commit()
    finally:
        a.close()
        b.close()
