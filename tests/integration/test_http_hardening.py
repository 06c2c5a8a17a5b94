"""Informational findings of the hostile probe (issue 14, item 12) over real HTTP: browser
hardening headers on every response, /metrics behind a token when one is configured, and
a missing chart library answered without the install path."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from gateway.console.http import CHART_JS_FILE, CHART_JS_ROUTE
from gateway.core.db.engine import Database
from gateway.core.http.auth import TokenRegistry
from gateway.settings import Settings
from tests.support.auth import ADMIN_TOKEN, bearer
from tests.support.console_wiring import console_app
from tests.support.databases import copy_sqlite

Client = TestClient[Any, Any]
METRICS_TOKEN = "metrics-token-0123456789"


@pytest.fixture
def database_url(tmp_path: Path, sqlite_template: Path) -> str:
    """No data involved: SQLite only."""
    return copy_sqlite(sqlite_template, tmp_path)


async def _serve(app: Any) -> AsyncIterator[Client]:
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield client


@pytest.fixture
async def console(
    settings: Settings, database: Database, tokens: TokenRegistry
) -> AsyncIterator[Client]:
    """The app with the console's routes, HTTP only."""
    async for client in _serve(console_app(settings, workers=False, tokens=tokens)):
        yield client


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/", 200),
        ("/static/js/main.js", 200),
        (CHART_JS_ROUTE, 200),
        ("/health", 200),
        ("/api/customers", 401),
        ("/api/nothing-here", 404),
    ],
)
async def test_every_response_carries_the_hardening_headers(
    console: Client, path: str, status: int
) -> None:
    response = await console.get(path)
    assert response.status == status
    headers = response.headers
    policy = headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in policy
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"


async def test_metrics_needs_the_token_when_one_is_configured(
    settings: Settings, database: Database, tokens: TokenRegistry
) -> None:
    settings.metrics_token = SecretStr(METRICS_TOKEN)
    async for client in _serve(console_app(settings, workers=False, tokens=tokens)):
        anonymous = await client.get("/metrics")
        assert anonymous.status == 401
        assert anonymous.content_type == "application/problem+json"
        assert "switchboard_" not in await anonymous.text()
        wrong = await client.get("/metrics", headers=bearer(ADMIN_TOKEN))
        assert wrong.status == 401
        right = await client.get("/metrics", headers=bearer(METRICS_TOKEN))
        assert right.status == 200
        assert "switchboard_http_requests_total" in await right.text()


async def test_metrics_stays_open_without_a_token(console: Client) -> None:
    response = await console.get("/metrics")
    assert response.status == 200


async def test_a_missing_chart_library_does_not_reveal_the_install_path(
    settings: Settings, database: Database, tokens: TokenRegistry, tmp_path: Path
) -> None:
    app = console_app(settings, workers=False, tokens=tokens)
    missing = tmp_path / "node_modules" / "chart.js" / "dist" / "chart.umd.min.js"
    app[CHART_JS_FILE] = missing
    async for client in _serve(app):
        response = await client.get(CHART_JS_ROUTE)
        assert response.status == 404
        assert response.content_type == "application/problem+json"
        text = await response.text()
        assert str(tmp_path) not in text and "node_modules" not in text
        assert "run `make`" in (await response.json())["detail"]
