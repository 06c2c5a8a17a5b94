"""The app's spine over real HTTP: health, metrics, OpenAPI, problems, body limits."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from tests.support.auth import ADMIN_TOKEN, bearer

Client = TestClient[Any, Any]


async def test_health_reports_components(client: Client) -> None:
    response = await client.get("/health")
    assert response.status == 200
    body = await response.json()
    assert body["status"] == "ok"
    assert body["components"]["database"] == "ok"
    assert body["components"]["redis"] == "disabled"
    assert body["components"]["ami"] == "disabled"


async def test_metrics_is_prometheus_text(client: Client) -> None:
    await client.get("/health")
    response = await client.get("/metrics")
    assert response.status == 200
    text = await response.text()
    assert 'switchboard_http_requests_total{method="GET",route="/health",status="200"}' in text


async def test_openapi_lists_declared_endpoints(client: Client) -> None:
    response = await client.get("/openapi.json")
    document = await response.json()
    assert document["openapi"].startswith("3.")
    assert "/health" in document["paths"]


async def test_unknown_route_is_a_problem_document(client: Client) -> None:
    response = await client.get("/api/nothing-here", headers=bearer(ADMIN_TOKEN))
    assert response.status == 404
    assert response.content_type == "application/problem+json"
    body = await response.json()
    assert body["status"] == 404 and body["type"].endswith("/not-found")
