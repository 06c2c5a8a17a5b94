"""Route helpers: every bearer-token route, and calling one with given headers."""

from __future__ import annotations

from functools import cache
from typing import Any

from aiohttp.test_utils import TestClient

from gateway.app import create_app
from gateway.core.http.auth import TokenRegistry
from gateway.core.http.endpoints import ENDPOINTS, EndpointSpec
from gateway.settings import Settings
from tests.support.auth import ADMIN_TOKEN

Client = TestClient[Any, Any]


@cache
def declared_routes() -> tuple[EndpointSpec, ...]:
    """The app's own endpoint list (the app is built, never started: no I/O)."""
    settings = Settings(database_url="sqlite+aiosqlite:///:memory:")
    tokens = TokenRegistry()
    tokens.add(ADMIN_TOKEN, "admin")
    app = create_app(settings, tokens=tokens, workers=False)
    specs: list[EndpointSpec] = app[ENDPOINTS]
    return tuple(specs)


def bearer_routes() -> list[EndpointSpec]:
    """Every route whose auth is the bearer token (or the console cookie)."""
    return [spec for spec in declared_routes() if spec.auth == "bearer"]


def concrete(path: str) -> str:
    """The path with every placeholder filled with an id nobody has."""
    return (
        path.replace("{seq}", "987654321")
        .replace("{id}", "nobody-has-this-id")
        .replace("{name}", "no-such-name")
        .replace("{extension}", "999")
    )


async def call(client: Client, spec: EndpointSpec, headers: dict[str, str]) -> tuple[int, str]:
    """Make the request with an empty JSON object as body where one is allowed."""
    kwargs: dict[str, Any] = {"headers": headers}
    if spec.method in ("POST", "PUT", "PATCH"):
        kwargs["json"] = {}
    async with client.request(spec.method, concrete(spec.path), **kwargs) as response:
        return response.status, await response.text()
