"""The app as the console tests run it."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.app import create_app
from gateway.settings import Settings


def console_app(settings: Settings, *, workers: bool, **kwargs: Any) -> web.Application:
    """create_app (its console plugin serves the sign-in and identity routes)."""
    return create_app(settings, workers=workers, **kwargs)
