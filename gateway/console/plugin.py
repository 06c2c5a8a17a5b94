"""The console: sign-in sessions, identity, unknown callers, and its chart library."""

from __future__ import annotations

import logging

from aiohttp import web

from gateway.console.http import (
    CHART_JS,
    CHART_JS_ROUTE,
    chart_library,
    close_session,
    me,
    open_session,
    report_unknown_caller,
)
from gateway.core.http.endpoints import add_endpoints
from gateway.core.plugin import Plugin

log = logging.getLogger(__name__)


def setup(app: web.Application, workers: bool) -> None:
    """Add the console's session, identity and unknown-caller routes and its chart library."""
    add_endpoints(app, open_session, close_session, me, report_unknown_caller)
    app.router.add_get(CHART_JS_ROUTE, chart_library)
    if not CHART_JS.is_file():
        log.warning(
            "console: %s is missing (run `make` to npm-install it); the dashboard shows tables",
            CHART_JS,
        )


PLUGIN = Plugin(name="console", setup=setup)
