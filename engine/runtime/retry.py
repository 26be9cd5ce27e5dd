"""Task `retry` as in Kestra: when a failed attempt of a task is tried again.

Types: ``constant`` (every ``interval``), ``exponential`` (``interval`` times ``delayFactor``
(default 2) to the power of the failed attempts so far less one, at most ``maxInterval``) and
``random`` (between ``minInterval`` and ``maxInterval``). ``maxAttempts`` counts every attempt,
the first included (Kestra's older name ``maxAttempt`` is read too); ``maxDuration`` bounds the
time from the start of the first attempt to the start of the next one. With neither bound
reached the task is tried again; ``warningOnRetry: true`` ends a task that needed a retry in
WARNING instead of SUCCESS.

The runner does not sleep: it records the task run as RETRYING with the time of the next
attempt and puts the execution's work row at that time, so whoever runs the engine then (this
process after a restart, another one, `signoff worker`) makes the next attempt exactly once.
"""
from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from signoff.engine.durations import parse_duration


@dataclass(frozen=True)
class RetryPolicy:
    kind: str
    interval: timedelta = timedelta(0)
    max_interval: timedelta | None = None
    min_interval: timedelta = timedelta(0)
    delay_factor: float = 2.0
    max_attempts: int | None = None
    max_duration: timedelta | None = None
    warning_on_retry: bool = False

    @classmethod
    def from_props(cls, raw: Mapping[str, Any]) -> RetryPolicy:
        """The policy of a task's rendered ``retry`` map; ValueError says what is wrong."""
        kind = str(raw.get("type") or "").lower()
        if kind not in ("constant", "exponential", "random"):
            raise ValueError(f"retry `type` must be constant, exponential or random, not `{raw.get('type')}`")

        def duration(name: str) -> timedelta | None:
            value = raw.get(name)
            if value in (None, ""):
                return None
            try:
                return parse_duration(str(value))
            except ValueError as err:
                raise ValueError(f"retry `{name}`: {err}") from None

        attempts = raw.get("maxAttempts", raw.get("maxAttempt"))
        try:
            max_attempts = None if attempts in (None, "") else int(attempts)
            factor = float(raw.get("delayFactor") or 2.0)
        except (TypeError, ValueError):
            raise ValueError("retry `maxAttempts` must be a whole number and `delayFactor` a number") from None
        if max_attempts is not None and max_attempts < 1:
            raise ValueError("retry `maxAttempts` must be at least 1")
        warning = raw.get("warningOnRetry", False)
        return cls(kind=kind, interval=duration("interval") or timedelta(0), max_interval=duration("maxInterval"),
                   min_interval=duration("minInterval") or timedelta(0), delay_factor=factor,
                   max_attempts=max_attempts, max_duration=duration("maxDuration"),
                   warning_on_retry=warning is True or str(warning).lower() == "true")

    def delay(self, failed_attempt: int) -> timedelta:
        """The wait after attempt number ``failed_attempt`` (1 for the first) failed."""
        if self.kind == "constant":
            return self.interval
        if self.kind == "exponential":
            seconds = self.interval.total_seconds() * self.delay_factor ** (failed_attempt - 1)
            if self.max_interval is not None:
                seconds = min(seconds, self.max_interval.total_seconds())
            return timedelta(seconds=seconds)
        low, high = self.min_interval.total_seconds(), (self.max_interval or self.min_interval).total_seconds()
        return timedelta(seconds=random.uniform(low, max(low, high)))

    def next_attempt_at(self, failed_attempt: int, first_started: datetime, failed_at: datetime) -> datetime | None:
        """When to try again after attempt ``failed_attempt`` failed, or None: no more attempts."""
        if self.max_attempts is not None and failed_attempt >= self.max_attempts:
            return None
        at = failed_at + self.delay(failed_attempt)
        if self.max_duration is not None and at - first_started > self.max_duration:
            return None
        return at
