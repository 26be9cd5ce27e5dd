"""ISO-8601 durations as Kestra (java.time.Duration) writes them.

``parse_duration("PT1H30M")`` gives a :class:`datetime.timedelta`; ``format_duration`` writes
one back in canonical form (``P1DT2H``, ``PT1H30M``, ``PT0.5S``, ``PT0S``). Parsing is cached:
flows repeat the same few durations and parse them on every run.
"""
from __future__ import annotations

import re
from datetime import timedelta
from functools import lru_cache
from typing import Any

__all__ = ["parse_duration", "format_duration", "duration_hint", "duration_seconds"]

_NUM = r"([-+]?\d+)"
_PATTERN = re.compile(
    r"([-+]?)P"
    r"(?:" + _NUM + r"W)?"
    r"(?:" + _NUM + r"D)?"
    r"(?:T(?:" + _NUM + r"H)?(?:" + _NUM + r"M)?(?:([-+]?\d+(?:[.,]\d{1,9})?)S)?)?",
    re.IGNORECASE,
)
# P1Y / P2M (years, months) are not fixed lengths: java.time.Duration refuses them too.
_CALENDAR = re.compile(r"[-+]?P(?:\d+Y)?(?:\d+M)?(?:\d+W)?(?:\d+D)?(?:T.*)?", re.IGNORECASE)


def duration_hint(text: object) -> str:
    """The message for a text that is not a duration (without raising)."""
    shown = str(text)
    if len(shown) > 80:
        shown = shown[:79] + "…"
    msg = f"invalid duration `{shown}`: write an ISO-8601 duration such as PT1H, PT30M or P1D"
    if isinstance(text, str) and _CALENDAR.fullmatch(text.strip()) and re.search(
            r"\d+[YM]", text.strip().upper().split("T", 1)[0]):
        msg += " (years and months have no fixed length: write days, e.g. P30D)"
    return msg


@lru_cache(maxsize=1024)
def _parse(text: str) -> timedelta:
    m = _PATTERN.fullmatch(text)
    if m is None:
        raise ValueError(duration_hint(text))
    sign, weeks, days, hours, minutes, seconds = m.groups()
    if weeks is None and days is None and hours is None and minutes is None and seconds is None:
        raise ValueError(duration_hint(text))
    if "T" in text.upper() and hours is None and minutes is None and seconds is None:
        raise ValueError(duration_hint(text))  # "P1DT": a T with nothing after it
    try:
        micro = 0
        secs = 0
        if seconds:
            whole, _, frac = seconds.replace(",", ".").partition(".")
            secs = int(whole)
            if frac:
                micro = int((frac + "000000")[:6])
                if whole.startswith("-"):
                    micro = -micro
        total = timedelta(
            weeks=int(weeks or 0), days=int(days or 0), hours=int(hours or 0),
            minutes=int(minutes or 0), seconds=secs, microseconds=micro,
        )
    except (OverflowError, ValueError):
        raise ValueError(f"{duration_hint(text)} (it is too long)") from None
    return -total if sign == "-" else total


def parse_duration(text: str, *, allow_negative: bool = True) -> timedelta:
    """Parse an ISO-8601 duration (``PT1H``, ``P2DT3H4M``, ``PT0.5S``, ``P1W``, ``-PT5M``).

    Raises ValueError with a message saying what to write instead. With
    ``allow_negative=False`` a negative duration is refused too.
    """
    if not isinstance(text, str):
        raise ValueError(duration_hint(text))
    value = _parse(text.strip())
    if not allow_negative and value < timedelta(0):
        shown = text if len(text) <= 80 else text[:79] + "…"
        raise ValueError(f"invalid duration `{shown}`: it must not be negative; write e.g. PT5M")
    return value


def duration_seconds(value: object, what: str, error: type[Exception] = ValueError) -> float | None:
    """Seconds in a task option such as a timeout: an ISO-8601 duration (``PT30S``), a number of
    seconds (also as text), a timedelta, or None (also for ""). Anything else, or a duration that
    is not positive, raises ``error`` with a message naming ``what`` (tasks pass TaskFailed)."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise error(f"Invalid {what}: {value!r}")
    seconds: Any
    if isinstance(value, (int, float, timedelta)):
        seconds = value
    else:
        text = str(value).strip()
        try:
            seconds = float(text)
        except ValueError:
            try:
                seconds = parse_duration(text)
            except ValueError as exc:  # the parser's own message names the problem
                raise error(f"Invalid {what}: {exc}") from None
    if isinstance(seconds, timedelta):
        seconds = seconds.total_seconds()
    positive = float(seconds)
    if positive <= 0:
        raise error(f"Invalid {what} {value!r}: must be positive")
    return positive


def format_duration(td: timedelta) -> str:
    """Canonical ISO-8601 form: ``PT0S``, ``PT1H30M``, ``P1DT2H``, ``PT0.5S``, ``-PT5M``."""
    if td < timedelta(0):
        return "-" + format_duration(-td)
    days = td.days
    secs = td.seconds
    micro = td.microseconds
    hours, rest = divmod(secs, 3600)
    minutes, seconds = divmod(rest, 60)
    out = ["P"]
    if days:
        out.append(f"{days}D")
    time = []
    if hours:
        time.append(f"{hours}H")
    if minutes:
        time.append(f"{minutes}M")
    if seconds or micro:
        if micro:
            frac = f"{micro:06d}".rstrip("0")
            time.append(f"{seconds}.{frac}S")
        else:
            time.append(f"{seconds}S")
    if time:
        out.append("T")
        out.extend(time)
    if len(out) == 1:
        return "PT0S"
    return "".join(out)


def human_seconds(value: float | None) -> str:
    """A duration in seconds as people read it in a table: 3725.0 -> '1h02m'; None -> '-'."""
    if value is None:
        return "-"
    seconds = int(round(value))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"
