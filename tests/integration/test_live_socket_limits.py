"""A per-user cap on live WebSockets (issue 14, item 12): over it, the socket is opened and
closed at once with 1008 and a reason a person can act on; closing one makes room; other
users are not affected. Tickets and the Authorization header count alike."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import WSCloseCode
from aiohttp.test_utils import TestClient, TestServer

from gateway.app import create_app
from gateway.core.appkeys import CLOCK
from gateway.core.clock import FixedClock
from gateway.core.db.engine import Database
from gateway.core.http.auth import TokenRegistry
from gateway.settings import Settings
from tests.support.agents import add_agent, ticket
from tests.support.auth import ADMIN_TOKEN, OPERATOR_AGENT, OPERATOR_TOKEN, bearer

Client = TestClient[Any, Any]
PER_USER = 2


@pytest.fixture
async def capped(
    settings: Settings, database: Database, clock: FixedClock, tokens: TokenRegistry
) -> AsyncIterator[Client]:
    """The app with at most PER_USER sockets per user, and agent-201 owning 201."""
    settings.http_limits.websockets_per_user = PER_USER
    app = create_app(settings, clock=clock, tokens=tokens, workers=False)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        await add_agent(database, client.app[CLOCK].now(), OPERATOR_AGENT, ["201"])
        yield client


async def _open(client: Client, **kwargs: Any) -> Any:
    return await client.ws_connect("/ws/agents/201", **kwargs)


async def test_sockets_over_the_per_user_cap_are_closed_with_a_reason(capped: Client) -> None:
    held = [await _open(capped, params={"ticket": await ticket(capped)}) for _ in range(PER_USER)]
    for socket in held:
        assert (await socket.receive_json(timeout=2))["type"] == "hello"

    extra = await _open(capped, params={"ticket": await ticket(capped)})
    message = await extra.receive(timeout=2)
    assert message.type == aiohttp.WSMsgType.CLOSE
    assert message.data == WSCloseCode.POLICY_VIOLATION
    reason = str(message.extra)
    assert "too many live connections" in reason and f"limit {PER_USER}" in reason

    # Another user (the admin, by header) is not affected.
    admin = await _open(capped, headers=bearer(ADMIN_TOKEN))
    assert (await admin.receive_json(timeout=2))["type"] == "hello"

    # Closing one of the operator's sockets makes room for a new one (once the server's
    # handler has returned, a moment after the close handshake).
    await held[0].close()
    for _ in range(40):
        again = await _open(capped, headers=bearer(OPERATOR_TOKEN))
        if (await again.receive(timeout=2)).type == aiohttp.WSMsgType.TEXT:
            break
        await again.close()
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("a closed socket never made room")
    for socket in (held[1], admin, again, extra):
        await socket.close()
