"""Cron arithmetic for Schedule triggers, in the trigger's time zone (croniter does the parsing).

Stored times are UTC (engine.clock.format_time); a schedule is computed in its ``timezone``
(default UTC) so ``0 9 * * *`` in Europe/Paris stays at 09:00 local across DST changes.
"""
from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime
from typing import Any

#: most due times one firing recovers (recoverMissedSchedules: ALL after a long downtime)
MAX_RECOVERED = 1000


def _zone(props: dict[str, Any]) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(props.get("timezone") or "UTC")


def _iter(props: dict[str, Any], start: datetime) -> Any:  # a croniter
    from croniter import croniter

    expression = str(props["cron"]).strip()
    return croniter(expression, start.astimezone(_zone(props)), second_at_beginning=len(expression.split()) == 6)


def next_after(props: dict[str, Any], when: datetime) -> datetime:
    """The first due time strictly after ``when`` (aware, in the trigger's zone)."""
    result: datetime = _iter(props, when).get_next(datetime)
    return result


def previous_before(props: dict[str, Any], when: datetime) -> datetime:
    result: datetime = _iter(props, when).get_prev(datetime)
    return result


def due_between(props: dict[str, Any], first: datetime, now: datetime) -> list[datetime]:
    """Due times from ``first`` (itself a due time) up to ``now`` inclusive, oldest first."""
    out: list[datetime] = []
    current = first.astimezone(_zone(props))
    while current <= now and len(out) < MAX_RECOVERED:
        out.append(current)
        current = next_after(props, current)
    return out


def iso(when: datetime) -> str:
    """Kestra-style date text: ISO 8601 in the trigger's zone, `Z` for UTC."""
    text = when.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def to_utc(when: datetime) -> datetime:
    return when.astimezone(UTC)
