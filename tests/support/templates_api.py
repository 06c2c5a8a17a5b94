"""Templates API helpers: the client fixture and a reminder template."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from gateway.app import create_app
from gateway.core.clock import FixedClock
from gateway.core.db.engine import Database
from gateway.core.http.auth import TokenRegistry
from gateway.settings import Settings

Client = TestClient[Any, Any]


REMINDER = {
    "channel": "sms",
    "body": {
        "uk": "{{ first_name }}, нагадуємо: {{ amount }} до {{ due_date }}. {{ link }}",
        "en": "{{ first_name }}, reminder: {{ amount }} by {{ due_date }}. {{ link }}",
    },
    "variables": ["link"],
}


@pytest.fixture
async def client(
    settings: Settings, database: Database, clock: FixedClock, tokens: TokenRegistry
) -> AsyncIterator[Client]:
    """The real app."""
    app = create_app(settings, clock=clock, tokens=tokens, workers=False)
    async with TestClient(TestServer(app, host="127.0.0.1")) as test_client:
        yield test_client
