"""/health (no auth: load balancers call it) and /metrics (Prometheus text)."""

from __future__ import annotations

import asyncio
import hmac
import logging

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from gateway.core.appkeys import (
    BUS,
    DATABASE,
    HEALTH_CHECKS,
    METRICS,
    METRICS_REFRESHERS,
    SETTINGS,
    HealthCheck,
)
from gateway.core.http.auth import bearer_token, failed_authentication
from gateway.core.http.endpoints import endpoint, json_response
from gateway.core.http.problems import Unauthorized

log = logging.getLogger(__name__)
CHECK_TIMEOUT_SECONDS = 2.0


async def _check(name: str, check: HealthCheck) -> tuple[str, object, bool]:
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

    async def database_check() -> tuple[object, bool]:
        async with database.reading() as session:
            await session.execute(text("SELECT 1"))
        return "ok", True

    async def redis_check() -> tuple[object, bool]:
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


def _check_metrics_token(request: web.Request) -> None:
    """Open unless a token is configured (the contract lists /metrics as open)."""
    expected = request.app[SETTINGS].secret("metrics_token")
    if expected is None:
        return
    given = bearer_token(request)
    if given is not None and hmac.compare_digest(given.encode(), expected.encode()):
        return
    # The right token always passes; wrong ones count against the address's brake.
    raise failed_authentication(
        request, Unauthorized("/metrics needs `Authorization: Bearer <SWITCHBOARD_METRICS_TOKEN>`")
    )


async def _ami_disabled() -> tuple[object, bool]:
    return "disabled", True


@endpoint(
    "GET",
    "/metrics",
    summary="Prometheus metrics (Bearer SWITCHBOARD_METRICS_TOKEN when it is set)",
    auth="none",
    tags=["ops"],
)
async def metrics(request: web.Request) -> web.Response:
    """Prometheus text exposition; the plugins' query-filled gauges are read fresh first."""
    app = request.app
    _check_metrics_token(request)
    refreshers = app[METRICS_REFRESHERS].items()
    results = await asyncio.gather(
        *(refresh() for _, refresh in refreshers), return_exceptions=True
    )
    for (name, _), result in zip(refreshers, results, strict=True):
        if isinstance(result, BaseException):
            log.warning("%s metrics unavailable: %s", name, result)
    body = generate_latest(app[METRICS].registry)
    response = web.Response(body=body)
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response
