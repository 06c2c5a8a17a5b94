"""Typed keys for what the app holds; the only app state there is."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from gateway.bus import Bus
from gateway.clock import Clock
from gateway.db.engine import Database
from gateway.metrics import Metrics
from gateway.settings import Settings

# A health check returns (what to show, healthy?).
HealthCheck = Callable[[], Awaitable[tuple[Any, bool]]]

SETTINGS = web.AppKey("settings", Settings)
DATABASE = web.AppKey("database", Database)
BUS = web.AppKey("bus", Bus)
CLOCK = web.AppKey("clock", Clock)
METRICS = web.AppKey("metrics", Metrics)
HEALTH_CHECKS = web.AppKey("health_checks", dict[str, HealthCheck])
