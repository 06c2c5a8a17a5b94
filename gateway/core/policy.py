"""Contact policy settings: sending windows, holidays, frequency caps, default language.

Times in `windows` are the customer's own wall-clock time. A range `"HH:MM-HH:MM"` whose
end is not after its start runs past midnight into the next day (`"22:00-02:00"`) and
belongs to the day it starts on; `"00:00-24:00"` is the whole day. A channel absent from
`windows` may be contacted at any time, holidays included; a weekday absent from a
channel's windows is closed. On a holiday every windowed channel is closed all day.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Literal, cast

from pydantic import BaseModel, Field, field_validator

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
PolicyChannel = Literal["sms", "email", "voice"]
Language = Literal["uk", "ru", "en"]

_RANGE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]|24):([0-5]\d)$")
MINUTES_PER_DAY = 24 * 60


def parse_range(text: str) -> tuple[int, int]:
    """`"09:00-20:00"` → (540, 1200) minutes after midnight; an overnight end gets +1440."""
    match = _RANGE.match(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a time range like 09:00-20:00")
    start = int(match[1]) * 60 + int(match[2])
    end = int(match[3]) * 60 + int(match[4])
    if end > MINUTES_PER_DAY:
        raise ValueError(f"{text!r}: 24:00 is the latest end")
    if end <= start:
        if end == start and start == 0:
            raise ValueError(f"{text!r}: write the whole day as 00:00-24:00")
        end += MINUTES_PER_DAY
    return start, end


class FrequencyCap(BaseModel):
    """At most `max` contacts per `days` days, per customer and channel, all campaigns."""

    max: int = Field(ge=1)
    days: int = Field(ge=1, le=366)


def _default_windows() -> dict[PolicyChannel, dict[Weekday, list[str]]]:
    # E-mail is absent on purpose: it waits in an inbox, so it may go at any time.
    return {
        "sms": {
            **{day: ["09:00-20:00"] for day in WEEKDAYS[:5]},
            "sat": ["10:00-18:00"],
        },
        "voice": {day: ["09:00-19:00"] for day in WEEKDAYS[:5]},
    }


def _default_caps() -> dict[PolicyChannel, FrequencyCap]:
    return {"sms": FrequencyCap(max=3, days=7)}


class ContactPolicy(BaseModel):
    """When and how often customers may be contacted, and the fallback template language."""

    windows: dict[PolicyChannel, dict[Weekday, list[str]]] = Field(default_factory=_default_windows)
    holidays: list[date] = Field(default_factory=list)
    frequency_caps: dict[PolicyChannel, FrequencyCap] = Field(default_factory=_default_caps)
    default_language: Language = "uk"

    @field_validator("windows")
    @classmethod
    def _ranges_parse(
        cls, value: dict[PolicyChannel, dict[Weekday, list[str]]]
    ) -> dict[PolicyChannel, dict[Weekday, list[str]]]:
        for days in value.values():
            for ranges in days.values():
                for text in ranges:
                    parse_range(text)
        return value

    def window_for(self, channel: str) -> SendingWindow | None:
        """The channel's window, or None when it may be contacted at any time."""
        days = self.windows.get(cast(PolicyChannel, channel))
        if days is None:
            return None
        hours = {
            WEEKDAYS.index(day): tuple(sorted(parse_range(text) for text in ranges))
            for day, ranges in days.items()
        }
        return SendingWindow(hours=hours, holidays=frozenset(self.holidays))

    def cap_for(self, channel: str) -> FrequencyCap | None:
        """The channel's frequency cap, or None when it has none."""
        return self.frequency_caps.get(cast(PolicyChannel, channel))


@dataclass(frozen=True)
class SendingWindow:
    """Open minutes per weekday (0 = Monday) and closed dates, in local wall time."""

    hours: dict[int, tuple[tuple[int, int], ...]]
    holidays: frozenset[date] = frozenset()

    def ranges_on(self, day: date) -> tuple[tuple[int, int], ...]:
        """Open (start, end) minutes of ranges starting on `day` (nothing on a holiday)."""
        if day in self.holidays:
            return ()
        return self.hours.get(day.weekday(), ())


def policy_of(settings: object) -> ContactPolicy:
    """`settings.policy` once Settings carries one; the defaults until then."""
    policy = getattr(settings, "policy", None)
    return policy if isinstance(policy, ContactPolicy) else ContactPolicy()
