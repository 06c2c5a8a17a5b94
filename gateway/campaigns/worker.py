"""The campaign scheduler inside the gateway: a `tick` every minute on the app's clock."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import date
from zoneinfo import ZoneInfo

from aiohttp import web

from gateway.appkeys import BUS, CLOCK, DATABASE, SETTINGS
from gateway.campaigns.scheduler import tick
from gateway.daily_jobs import run_daily

log = logging.getLogger(__name__)

TICK_SECONDS = 60.0
DAILY_LOCK_SECONDS = 26 * 3600


async def daily_once(app: web.Application, done: set[date]) -> None:
    """The daily jobs, at the first tick of each local day, by one instance only."""
    now = app[CLOCK].now()
    today = now.astimezone(ZoneInfo(app[SETTINGS].timezone)).date()
    if today in done:
        return
    # Held (never released) for longer than a day: the other instances skip this day.
    if await app[BUS].lock(f"daily-jobs:{today.isoformat()}", DAILY_LOCK_SECONDS).acquire():
        report = await run_daily(app[DATABASE], app[SETTINGS], now)
        log.info("daily jobs for %s: %s (failed: %s)", today, report.done, report.failed)
    done.add(today)


async def tick_forever(app: web.Application, stop: asyncio.Event, every: float) -> None:
    """Tick until `stop` is set; a failed tick is logged and the next one tries again."""
    daily_done: set[date] = set()
    while not stop.is_set():
        try:
            await daily_once(app, daily_done)
        except Exception:
            log.exception("daily jobs failed; trying again at the next tick")
        try:
            report = await tick(app[DATABASE], app[SETTINGS], app[CLOCK].now(), app[BUS])
            if report.runs or report.advance.enrollments:
                log.info(
                    "campaign tick: %d run(s), %d enrollment(s) advanced, %d contact(s)",
                    len(report.runs),
                    report.advance.enrollments,
                    report.advance.contacts,
                )
        except Exception:
            log.exception("campaign tick failed; trying again at the next one")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)


async def _scheduler_ctx(app: web.Application) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(tick_forever(app, stop, TICK_SECONDS), name="campaign-scheduler")
    yield
    stop.set()
    with contextlib.suppress(asyncio.CancelledError, TimeoutError):
        await asyncio.wait_for(task, 30)


def setup(app: web.Application, workers: bool) -> None:
    """Run the campaign scheduler when the app runs its workers."""
    if workers:
        app.cleanup_ctx.append(_scheduler_ctx)
