"""When a campaign's cron schedule fires, in the configured time zone."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter

from gateway.core.clock import as_utc


def latest_fire(schedule: str, timezone: str, as_of: datetime) -> datetime:
    """The last time the cron fired at or before `as_of` (UTC)."""
    zone = ZoneInfo(timezone)
    start = (as_utc(as_of) + timedelta(seconds=1)).astimezone(zone).replace(microsecond=0)
    fires = croniter(schedule, start)
    fire = as_utc(fires.get_prev(datetime))
    while fire > as_of:
        fire = as_utc(fires.get_prev(datetime))
    return fire


def next_fire(schedule: str, timezone: str, after: datetime) -> datetime:
    """The first time the cron fires strictly after `after` (UTC)."""
    zone = ZoneInfo(timezone)
    return as_utc(croniter(schedule, as_utc(after).astimezone(zone)).get_next(datetime))


def is_due(schedule: str, timezone: str, last_run: datetime, as_of: datetime) -> bool:
    """Whether the cron fired in (last_run, as_of] — once is enough, however many times."""
    return next_fire(schedule, timezone, last_run) <= as_utc(as_of)
