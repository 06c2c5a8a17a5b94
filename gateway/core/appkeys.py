"""Typed keys for what the app holds; the only app state there is."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from gateway.core.bus import Bus
from gateway.core.clock import Clock
from gateway.core.db.engine import Database
from gateway.core.metrics import Metrics
from gateway.core.settings import Settings

# A health check returns (what to show, healthy?).
HealthCheck = Callable[[], Awaitable[tuple[object, bool]]]

SETTINGS = web.AppKey("settings", Settings)
DATABASE = web.AppKey("database", Database)
BUS = web.AppKey("bus", Bus)
CLOCK = web.AppKey("clock", Clock)
METRICS = web.AppKey("metrics", Metrics)
HEALTH_CHECKS = web.AppKey("health_checks", dict[str, HealthCheck])
# Read fresh before each /metrics scrape (a feature's gauges that a query fills).
MetricsRefresher = Callable[[], Awaitable[None]]
METRICS_REFRESHERS = web.AppKey("metrics_refreshers", dict[str, MetricsRefresher])
