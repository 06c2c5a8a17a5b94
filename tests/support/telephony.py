"""Telephony end-to-end helpers: the caller used throughout, waiting for ended calls."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from tests.support.auth import ADMIN_TOKEN, bearer
from tests.support.pbx import wait_for

Client = TestClient[Any, Any]

OLENA = "+380501234567"


async def calls_of(client: Client) -> list[dict[str, Any]]:
    response = await client.get("/api/calls", headers=bearer(ADMIN_TOKEN))
    return list((await response.json())["items"])


async def ended_calls(client: Client, count: int) -> list[dict[str, Any]]:
    async def probe() -> int:
        return sum(1 for call in await calls_of(client) if call["state"] == "ended")

    await wait_for(probe, count)
    return [call for call in await calls_of(client) if call["state"] == "ended"]
