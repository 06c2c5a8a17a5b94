"""Reading the messages API in tests."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from tests.support.auth import OPERATOR_TOKEN, bearer

Client = TestClient[Any, Any]


async def messages(client: Client, **query: str) -> list[dict[str, Any]]:
    response = await client.get("/api/messages", params=query, headers=bearer(OPERATOR_TOKEN))
    assert response.status == 200
    return list((await response.json())["items"])
