"""`create_app(settings)`: the kernel's resources and routes, then every plugin's."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from gateway.core.appkeys import (
    BUS,
    CLOCK,
    DATABASE,
    HEALTH_CHECKS,
    METRICS,
    METRICS_REFRESHERS,
    SETTINGS,
)
from gateway.core.bus import BusError, make_bus
from gateway.core.clock import Clock, SystemClock
from gateway.core.db.engine import Database
from gateway.core.http.auth import TOKENS, TokenRegistry, auth_middleware
from gateway.core.http.endpoints import ENDPOINTS, add_endpoints
from gateway.core.http.health import health, metrics
from gateway.core.http.input_guard import refuse_nul_middleware
from gateway.core.http.openapi import openapi_handler
from gateway.core.http.problems import Handler, problem_middleware
from gateway.core.http.request_context import install_request_context, request_context_middleware
from gateway.core.http.security_headers import install_security_headers
from gateway.core.http.webhook_failures import webhook_failures_middleware
from gateway.core.metrics import Metrics
from gateway.core.scheduler import scheduler_context
from gateway.core.settings import Settings
from gateway.plugins import DAILY_JOBS, PERIODIC_JOBS, PLUGINS

log = logging.getLogger(__name__)
STATIC_DIR = Path(__file__).parent / "static"


def create_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    tokens: TokenRegistry | None = None,
    workers: bool = True,
) -> web.Application:
    """The gateway as an aiohttp application; `workers=False` serves HTTP only."""
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[
            request_context_middleware,
            # Outside problem_middleware: refusals and errors are counted with their status.
            metrics_middleware,
            problem_middleware,
            webhook_failures_middleware,
            auth_middleware,
            refuse_nul_middleware,
        ],
    )
    install_request_context(app)
    install_security_headers(app)
    app[SETTINGS] = settings
    app[CLOCK] = clock or SystemClock()
    app[METRICS] = Metrics()
    app[HEALTH_CHECKS] = {}
    app[METRICS_REFRESHERS] = {}
    app[ENDPOINTS] = []
    if tokens is None:
        tokens, generated = TokenRegistry.from_spec(settings.secret("api_tokens"))
        if generated:
            # Printed once, on stdout, so the operator who started the gateway can use it.
            print(f"No SWITCHBOARD_API_TOKENS set; generated admin token: {generated}")
    app[TOKENS] = tokens
    app.cleanup_ctx.append(_database_ctx)
    app.cleanup_ctx.append(_bus_ctx)
    add_endpoints(app, health, metrics, openapi_handler)
    for plugin in PLUGINS:
        plugin.setup(app, workers)
    if workers:
        app.cleanup_ctx.append(scheduler_context(DAILY_JOBS, PERIODIC_JOBS))
    app.router.add_get("/", _console)
    if STATIC_DIR.exists():
        app.router.add_static("/static/", STATIC_DIR)
    return app


async def _database_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    database = Database(settings.database_url, pool_size=settings.database_pool_size)
    app[DATABASE] = database
    yield
    await database.dispose()


async def _bus_ctx(app: web.Application) -> AsyncIterator[None]:
    bus = make_bus(app[SETTINGS].redis_url)
    try:
        await bus.start()
    except BusError as exc:
        # Redis down at start: keep serving single-instance features; /health says degraded.
        log.error(
            "bus unavailable at start (%s); pub/sub and locks will fail until it returns", exc
        )
    app[BUS] = bus
    yield
    await bus.close()


async def _console(request: web.Request) -> web.StreamResponse:
    index = STATIC_DIR / "index.html"
    if index.exists():
        return web.FileResponse(index)
    return web.Response(text="Switchboard console", content_type="text/html")


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count requests per route template (not per raw path: ids would explode the labels)."""
    started = time.perf_counter()
    route = request.match_info.route.resource
    name = route.canonical if route is not None else "unmatched"
    response = await handler(request)
    m = request.app[METRICS]
    m.http_requests.labels(request.method, name, str(response.status)).inc()
    m.http_seconds.labels(name).observe(time.perf_counter() - started)
    return response
