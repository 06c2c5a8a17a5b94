"""The one injectable clock: every scheduled behaviour asks it for `now()`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Something that tells the time, always as an aware UTC datetime."""

    def now(self) -> datetime:
        """Current time in UTC."""
        ...


class SystemClock:
    """The wall clock."""

    def now(self) -> datetime:
        """Current time in UTC."""
        return datetime.now(UTC)


class FixedClock:
    """A clock that stands still until moved: for `--as-of` replays and tests."""

    def __init__(self, at: datetime) -> None:
        self._at = as_utc(at)

    def now(self) -> datetime:
        """The time it was set to."""
        return self._at

    def set(self, at: datetime) -> None:
        """Jump to `at`."""
        self._at = as_utc(at)

    def advance(self, delta: timedelta) -> datetime:
        """Move forward by `delta` and return the new time."""
        self._at += delta
        return self._at


def as_utc(value: datetime) -> datetime:
    """Aware UTC version of `value`; a naive datetime is taken to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def isoformat_z(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with a `Z`, as every response carries times."""
    if value is None:
        return None
    return as_utc(value).isoformat().replace("+00:00", "Z")


class TimeInputError(ValueError):
    """A time or date given by a caller could not be read."""


def parse_time_input(text: str, timezone: str, *, end_of_day: bool = False) -> datetime:
    """The contract's input times: ISO 8601 with an offset, or without one (= `timezone`);
    a date alone is that day in `timezone` (its end with `end_of_day`, so ranges include
    both ends)."""
    from datetime import date, time
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(timezone)
    value = text.strip()
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            moment = time.max if end_of_day else time.min
            return datetime.combine(day, moment, zone).astimezone(UTC)
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise TimeInputError(f"{text!r} is not an ISO 8601 date or time") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone)
    return parsed.astimezone(UTC)
