"""The app as the console tests run it, the second operator they sign in, their client type."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from gateway.app import create_app
from gateway.settings import Settings

SECOND_OPERATOR_TOKEN = "operator-two-token-0123"
SECOND_AGENT = "agent-202"
Client = TestClient[Any, Any]


def console_app(settings: Settings, *, workers: bool, **kwargs: Any) -> web.Application:
    """create_app (its console plugin serves the sign-in and identity routes)."""
    return create_app(settings, workers=workers, **kwargs)
