"""The job scheduler: plugins' periodic jobs every minute, their daily jobs once a day.

Inside the gateway it ticks on the app's clock; `switchboard tick [--as-of T]` runs the
same jobs once, so scheduled behaviour can be replayed for any time. Every job is
idempotent (deterministic ids, conditional writes); the daily jobs still run once a day
per deployment (a bus lock named by the day) to spare the database the scans.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from zoneinfo import ZoneInfo

from aiohttp import web

from gateway.core.appkeys import BUS, CLOCK, DATABASE, SETTINGS
from gateway.core.bus import Bus, make_bus
from gateway.core.cli import Subparsers, as_of_argument, print_report, run_async
from gateway.core.clock import isoformat_z
from gateway.core.db.engine import Database
from gateway.core.plugin import DailyJob, PeriodicJob
from gateway.core.settings import Settings

log = logging.getLogger(__name__)

TICK_SECONDS = 60.0
DAILY_LOCK_SECONDS = 26 * 3600
CleanupContext = Callable[[web.Application], AsyncIterator[None]]


@dataclass
class DailyReport:
    """What each daily job did (counts), and the jobs that failed."""

    as_of: datetime
    done: dict[str, object] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)


async def run_daily(
    jobs: Sequence[DailyJob], database: Database, settings: Settings, as_of: datetime
) -> DailyReport:
    """Run every daily job as of `as_of`, by order; one failing job is logged, the rest run."""
    report = DailyReport(as_of)
    for job in sorted(jobs, key=lambda job: job.order):
        try:
            report.done[job.name] = await job.run(database, settings, as_of)
        except Exception:
            log.exception("daily job %s failed as of %s", job.name, as_of.isoformat())
            report.failed.append(job.name)
    return report


async def run_periodic(
    jobs: Sequence[PeriodicJob], database: Database, settings: Settings, as_of: datetime, bus: Bus
) -> dict[str, object]:
    """Run every periodic job once; their reports merged (a failure propagates)."""
    merged: dict[str, object] = {}
    for job in jobs:
        merged.update(await job.run(database, settings, as_of, bus))
    return merged


def scheduler_context(
    daily: Sequence[DailyJob], periodic: Sequence[PeriodicJob], every: float = TICK_SECONDS
) -> CleanupContext:
    """The cleanup_ctx that runs the scheduler while the app runs its workers."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        stop = asyncio.Event()
        task = asyncio.create_task(
            _tick_forever(app, daily, periodic, stop, every), name="scheduler"
        )
        yield
        stop.set()
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(task, 30)

    return context


async def _daily_once(app: web.Application, jobs: Sequence[DailyJob], done: set[date]) -> None:
    """The daily jobs, at the first tick of each local day, by one instance only."""
    now = app[CLOCK].now()
    today = now.astimezone(ZoneInfo(app[SETTINGS].timezone)).date()
    if today in done:
        return
    # Held (never released) for longer than a day: the other instances skip this day.
    if await app[BUS].lock(f"daily-jobs:{today.isoformat()}", DAILY_LOCK_SECONDS).acquire():
        report = await run_daily(jobs, app[DATABASE], app[SETTINGS], now)
        log.info("daily jobs for %s: %s (failed: %s)", today, report.done, report.failed)
    done.add(today)


async def _tick_forever(
    app: web.Application,
    daily: Sequence[DailyJob],
    periodic: Sequence[PeriodicJob],
    stop: asyncio.Event,
    every: float,
) -> None:
    """Tick until `stop` is set; a failed job is logged and the next tick tries again."""
    daily_done: set[date] = set()
    while not stop.is_set():
        try:
            await _daily_once(app, daily, daily_done)
        except Exception:
            log.exception("daily jobs failed; trying again at the next tick")
        for job in periodic:
            try:
                await job.run(app[DATABASE], app[SETTINGS], app[CLOCK].now(), app[BUS])
            except Exception:
                log.exception("%s tick failed; trying again at the next one", job.name)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)


def register_tick(
    subparsers: Subparsers, daily: Sequence[DailyJob], periodic: Sequence[PeriodicJob]
) -> None:
    """Add `switchboard tick [--as-of T]`: every periodic and daily job, once."""
    tick = subparsers.add_parser("tick", help="run everything due at T once")
    tick.add_argument("--as-of", help="ISO 8601 time or date (default: now)")
    tick.add_argument("--format", choices=("table", "json"), default="table")

    def handler(args: argparse.Namespace, settings: Settings) -> int:
        as_of = as_of_argument(args, settings)

        async def run() -> int:
            database, bus = Database(settings.database_url), make_bus(settings.redis_url)
            try:
                reports = await run_periodic(periodic, database, settings, as_of, bus)
                done = await run_daily(daily, database, settings, as_of)
            finally:
                await bus.close()
                await database.dispose()
            data = {
                "as_of": isoformat_z(as_of),
                **reports,
                "daily": done.done,
                "daily_failed": done.failed,
            }
            print_report(data, args.format)
            return 0

        return run_async(run())

    tick.set_defaults(handler=handler)
