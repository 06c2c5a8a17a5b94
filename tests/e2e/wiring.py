"""The app with the console feature, whether or not gateway/features.py lists it yet."""

from __future__ import annotations

from typing import Any

from aiohttp import web

import gateway.console
from gateway.app import create_app
from gateway.http.endpoints import ENDPOINTS
from gateway.settings import Settings


def console_app(settings: Settings, *, workers: bool, **kwargs: Any) -> web.Application:
    """create_app plus the console's routes when the feature list does not add them."""
    app = create_app(settings, workers=workers, **kwargs)
    if not any(spec.path == "/api/session" for spec in app[ENDPOINTS]):
        gateway.console.setup(app, workers)
    return app
