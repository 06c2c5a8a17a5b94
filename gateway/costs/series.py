"""Time series for the console: statuses, contacts, calls and costs per day, savings per
campaign. Days come from the frozen snapshots; a past day without one is computed and
stored on the way (in date order, so each chains on the day before)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from gateway.core.clock import Clock
from gateway.core.db.engine import Database
from gateway.core.settings import Settings
from gateway.costs.daily import daily_snapshot, day_bounds
from gateway.costs.model import CostModel
from gateway.costs.savings import SavingsQuery, savings_report

MAX_DAYS = 366


class SeriesError(ValueError):
    """A range the series cannot cover."""


def _point(snapshot: dict[str, Any]) -> dict[str, Any]:
    contacts = {
        channel: {k: v for k, v in counts.items() if k != "skipped"}
        | {"skipped": sum(counts.get("skipped", {}).values())}
        for channel, counts in snapshot["contacts"].items()
    }
    return {
        "day": snapshot["day"],
        "final": snapshot["final"],
        "customers_by_status": snapshot["customers_by_status"],
        "moved_back_to_active": snapshot["moved_back_to_active"],
        "contacts": contacts,
        "calls": {d: c["total"] for d, c in snapshot["calls"].items()},
        "talk_minutes": {d: c["talk_minutes"] for d, c in snapshot["calls"].items()},
        "cost": snapshot["costs"]["total"],
    }


async def daily_series(
    database: Database, settings: Settings, clock: Clock, first: date, last: date
) -> dict[str, object]:
    """One point per day from `first` to `last` (up to today), plus savings per campaign."""
    if last < first:
        raise SeriesError("the range ends before it starts")
    if (last - first).days + 1 > MAX_DAYS:
        raise SeriesError(f"a series covers at most {MAX_DAYS} days")
    today = clock.now().astimezone(ZoneInfo(settings.timezone)).date()
    model = CostModel.from_settings(settings)
    points = []
    day = first
    while day <= min(last, today):
        snapshot = await daily_snapshot(database, model, settings.timezone, clock, day)
        points.append(_point(snapshot))
        day += timedelta(days=1)
    start, _ = day_bounds(first, settings.timezone)
    _, stop = day_bounds(last, settings.timezone)
    query = SavingsQuery(start=start, end=stop - timedelta(microseconds=1))
    report = await savings_report(database, settings, query)
    savings = [
        {
            "campaign": c["campaign"],
            "deflection_source": c["deflection"]["source"],
            "cost": c["cost"],
            "net_savings": c["net_savings"],
            "months": c["months"],
        }
        for c in report["campaigns"]
    ]
    return {"currency": model.currency, "days": points, "savings": savings}
