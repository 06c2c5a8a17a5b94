"""/health (no auth: load balancers call it) and /metrics (Prometheus text)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from gateway.appkeys import BUS, CLOCK, DATABASE, HEALTH_CHECKS, METRICS, SETTINGS, HealthCheck
from gateway.http.endpoints import endpoint, json_response
from gateway.messages.queue_metrics import refresh_send_queue

log = logging.getLogger(__name__)
CHECK_TIMEOUT_SECONDS = 2.0


async def _check(name: str, check: Any) -> tuple[str, Any, bool]:
    try:
        shown, healthy = await asyncio.wait_for(check(), CHECK_TIMEOUT_SECONDS)
    except Exception as exc:
        log.warning("health check %s failed: %s", name, exc)
        return name, "down", False
    return name, shown, healthy


@endpoint("GET", "/health", summary="Component states", auth="none", tags=["ops"])
async def health(request: web.Request) -> web.Response:
    """`ok` when every component is healthy, else `degraded`; always 200 while serving."""
    app = request.app
    registered: dict[str, HealthCheck] = app[HEALTH_CHECKS]
    checks = dict(registered)
    database = app[DATABASE]

    async def database_check() -> tuple[Any, bool]:
        async with database.reading() as session:
            await session.execute(text("SELECT 1"))
        return "ok", True

    async def redis_check() -> tuple[Any, bool]:
        if not app[SETTINGS].redis_url:
            return "disabled", True
        up = await app[BUS].ping()
        return ("ok" if up else "down"), up

    checks = {"database": database_check, "redis": redis_check, **checks}
    checks.setdefault("ami", _ami_disabled)
    results = await asyncio.gather(*(_check(name, check) for name, check in checks.items()))
    components = {name: shown for name, shown, _ in results}
    status = "ok" if all(healthy for *_, healthy in results) else "degraded"
    return json_response({"status": status, "components": components})


async def _ami_disabled() -> tuple[Any, bool]:
    return "disabled", True


@endpoint("GET", "/metrics", summary="Prometheus metrics", auth="none", tags=["ops"])
async def metrics(request: web.Request) -> web.Response:
    """Prometheus text exposition; the send queue gauges are read fresh for each scrape."""
    app = request.app
    try:
        await asyncio.wait_for(
            refresh_send_queue(
                app[DATABASE], app[METRICS], app[CLOCK].now(), app[SETTINGS].send_rates
            ),
            CHECK_TIMEOUT_SECONDS,
        )
    except Exception as exc:
        # The rest of the metrics still matter (most of all while the database is down);
        # stale queue figures would mislead, so they go missing until the next scrape.
        log.warning("send queue metrics unavailable: %s", exc)
        app[METRICS].send_queue_depth.clear()
        app[METRICS].send_queue_oldest_due.clear()
    body = generate_latest(app[METRICS].registry)
    response = web.Response(body=body)
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response
