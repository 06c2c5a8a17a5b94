"""The campaign scheduler inside the gateway: a `tick` every minute on the app's clock."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from gateway.appkeys import BUS, CLOCK, DATABASE, SETTINGS
from gateway.campaigns.scheduler import tick

log = logging.getLogger(__name__)

TICK_SECONDS = 60.0


async def tick_forever(app: web.Application, stop: asyncio.Event, every: float) -> None:
    """Tick until `stop` is set; a failed tick is logged and the next one tries again."""
    while not stop.is_set():
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
