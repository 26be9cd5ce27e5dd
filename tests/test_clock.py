"""Stored times: one fixed-width spelling whatever path formats them (engine.clock)."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from signoff.engine.clock import FakeClock, SystemClock, format_time, parse_time


def _strftime(when: datetime) -> str:
    """The spelling stored times have always had."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@pytest.mark.parametrize("when", [
    datetime(2026, 12, 6, 22, 21, 19, 769156, tzinfo=UTC),
    datetime(2026, 1, 5, 9, 0, 0, 0, tzinfo=UTC),           # microsecond 0 is still written
    datetime(2026, 1, 5, 9, 0, 0, 1, tzinfo=UTC),
    datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(1000, 1, 1, tzinfo=UTC),
    datetime(2026, 3, 29, 1, 30, tzinfo=timezone(timedelta(hours=2))),   # converted to UTC
    datetime(2026, 3, 29, 1, 30, tzinfo=timezone(timedelta(hours=-9, minutes=-30))),
])
def test_format_time_is_the_stored_spelling(when: datetime) -> None:
    text = format_time(when)
    assert text == _strftime(when)
    assert text.endswith("Z") and "+" not in text
    assert parse_time(text) == when


def test_a_year_before_1000_keeps_the_old_spelling() -> None:
    """Not a time signoff meets; the fast path leaves it to strftime, which does not pad."""
    when = datetime(999, 1, 1, tzinfo=UTC)
    assert format_time(when) == _strftime(when)


def test_format_time_has_fixed_width_and_sorts_as_time() -> None:
    base = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    moments = [base + timedelta(microseconds=n) for n in (0, 1, 10, 999_999, 1_000_000, 86_400_000_000)]
    texts = [format_time(m) for m in moments]
    assert {len(t) for t in texts} == {27}
    assert sorted(texts) == texts


def test_the_clocks_give_what_format_time_spells_quickly() -> None:
    """The fast path is for aware UTC datetimes: what both clocks return."""
    for clock in (SystemClock(), FakeClock()):
        now = clock.now()
        assert now.tzinfo is UTC
        assert format_time(now) == _strftime(now)
