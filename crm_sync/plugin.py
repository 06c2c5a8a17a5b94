"""The CRM boundary: signed webhooks in, the outbox out, `import` and `outbox` commands."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from crm_sync import import_cli, outbox_cli
from crm_sync.ingest_fast import fast_ingest_ctx
from crm_sync.outbox import OutboxWorker, outbox_stats
from crm_sync.outbox_http import OUTBOX_WORKER, STOP_TIMEOUT_SECONDS, list_outbox, retry_outbox_item
from crm_sync.settings import OutboxPolicy
from crm_sync.webhooks_http import crm_events
from gateway.core.appkeys import CLOCK, DATABASE, HEALTH_CHECKS, METRICS, SETTINGS
from gateway.core.http.endpoints import add_endpoints
from gateway.core.plugin import Plugin

log = logging.getLogger(__name__)


def setup(app: web.Application, workers: bool) -> None:
    """The signed-webhook route, the outbox routes, its health check, and the delivery
    worker when the CRM URL is set."""
    add_endpoints(app, crm_events)
    # On PostgreSQL, the webhook's one-statement pool.
    app.cleanup_ctx.append(fast_ingest_ctx)
    add_endpoints(app, list_outbox, retry_outbox_item)

    async def check() -> tuple[object, bool]:
        async with app[DATABASE].reading() as session:
            stats = await outbox_stats(session, app[CLOCK].now())
        app[METRICS].outbox_backlog.set(stats.backlog)
        app[METRICS].outbox_dead.set(stats.dead)
        shown = {
            "backlog": stats.backlog,
            "dead": stats.dead,
            "oldest_pending_seconds": round(stats.oldest_pending_seconds, 3),
        }
        return shown, stats.dead == 0

    app[HEALTH_CHECKS]["outbox"] = check
    if workers and app[SETTINGS].crm_api_url:
        app.cleanup_ctx.append(_worker_ctx)


async def _worker_ctx(app: web.Application) -> AsyncIterator[None]:
    worker = OutboxWorker(app[DATABASE], app[SETTINGS], app[CLOCK], app[METRICS])
    app[OUTBOX_WORKER] = worker
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run_forever(stop), name="crm-outbox-worker")
    yield
    stop.set()
    try:
        # A delivery in flight may finish; past the timeout it is cancelled and its
        # lease brings the item back later (at-least-once).
        await asyncio.wait_for(task, STOP_TIMEOUT_SECONDS)
    except TimeoutError:
        log.warning("outbox worker did not stop in %.0f s; cancelled", STOP_TIMEOUT_SECONDS)
    finally:
        await worker.close()


PLUGIN = Plugin(
    name="crm_sync",
    setup=setup,
    commands=(import_cli.register, outbox_cli.register),
    settings_section=OutboxPolicy,
)
