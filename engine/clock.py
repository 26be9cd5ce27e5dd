"""Time as the engine sees it: always UTC, always injectable so tests and snapshots are fixed."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FakeClock:
    """A clock that only moves when told to; used by tests of timers and by snapshots."""

    def __init__(self, start: datetime | str = "2026-01-05T09:00:00Z") -> None:
        self._now = parse_time(start) if isinstance(start, str) else start

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> None:
        self._now += delta


def format_time(when: datetime) -> str:
    """Fixed-width UTC ISO text, so stored times sort as strings."""
    if when.tzinfo is UTC and when.year >= 1000:
        # performance: what the clocks give (aware UTC) spelled by isoformat, ~1.3 us less than
        # strftime (a start formats six times); the same text: ``+00:00`` becomes ``Z``.
        # (strftime writes a year before 1000 without padding; that path keeps doing so.)
        return when.isoformat(timespec="microseconds")[:-6] + "Z"
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def seconds_between(start: str, end: str) -> float:
    """Seconds from one stored time to another (the durations `signoff stats` sorts)."""
    return (parse_time(end) - parse_time(start)).total_seconds()


@lru_cache(maxsize=256)
def parse_time(text: str) -> datetime:
    """Stored time text -> aware UTC datetime. Cached (datetimes are immutable): a bulk decision
    measures 10,000 durations to the same ``now``."""
    return _parse_time(text)


def _parse_time(text: str) -> datetime:
    value = datetime.fromisoformat(text)  # (Python 3.11 reads the "Z" the stored times end with)
    if value.tzinfo is UTC:  # (what the stored times give: the conversion below is a copy)
        return value
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)
