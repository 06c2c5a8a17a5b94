"""Costs and savings: the reports API, `report` commands, the daily statistics snapshot."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from aiohttp import web

from gateway.core.clock import FixedClock
from gateway.core.db.engine import Database
from gateway.core.http.endpoints import add_endpoints
from gateway.core.plugin import DailyJob, Plugin
from gateway.core.settings import Settings
from gateway.costs import cli
from gateway.costs.daily import daily_snapshot
from gateway.costs.http import get_daily, get_savings, get_series
from gateway.costs.model import CostModel


def setup(app: web.Application, workers: bool) -> None:
    """Add the reports API (admin only: no other role is listed)."""
    add_endpoints(app, get_savings, get_daily, get_series)


async def snapshot_yesterday(database: Database, settings: Settings, as_of: datetime) -> str:
    """The statistics of the day before (last: it counts the day's status moves)."""
    yesterday = as_of.astimezone(ZoneInfo(settings.timezone)).date() - timedelta(days=1)
    model = CostModel.from_settings(settings)
    await daily_snapshot(database, model, settings.timezone, FixedClock(as_of), yesterday)
    return yesterday.isoformat()


PLUGIN = Plugin(
    name="costs",
    setup=setup,
    commands=(cli.register,),
    daily_jobs=(DailyJob("snapshot", 90, snapshot_yesterday),),
)
