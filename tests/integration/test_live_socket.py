"""WS /ws/agents/{extension}: tickets, ownership, and events from the bus (both kinds)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from gateway.app import create_app
from gateway.core.appkeys import BUS, CLOCK
from gateway.core.db.engine import Database
from gateway.core.http.auth import TokenRegistry
from gateway.live.http import agent_channel
from gateway.settings import Settings
from tests.support.agents import add_agent, ticket
from tests.support.auth import ADMIN_TOKEN, CRM_TOKEN, OPERATOR_AGENT, OPERATOR_TOKEN, bearer

Client = TestClient[Any, Any]


@pytest.fixture
async def agents(client: Client, database: Database) -> None:
    """agent-201 (the operator token's agent) owns 201; agent-202 owns 202."""
    now = client.app[CLOCK].now()
    await add_agent(database, now, OPERATOR_AGENT, ["201"])
    await add_agent(database, now, "agent-202", ["202"])


@pytest.mark.usefixtures("agents")
async def test_operator_receives_events_published_for_their_extension(client: Client) -> None:
    socket = await client.ws_connect(f"/ws/agents/201?ticket={await ticket(client)}")
    assert (await socket.receive_json(timeout=2))["type"] == "hello"
    await client.app[BUS].publish(agent_channel("201"), {"type": "screen_pop", "call_id": "c1"})
    await client.app[BUS].publish(agent_channel("202"), {"type": "screen_pop", "call_id": "c2"})
    await client.app[BUS].publish(agent_channel("201"), {"type": "call_update", "call_id": "c1"})
    assert (await socket.receive_json(timeout=2))["call_id"] == "c1"
    assert (await socket.receive_json(timeout=2))["type"] == "call_update"
    await socket.close()


@pytest.mark.usefixtures("agents")
async def test_a_burst_arrives_whole_and_in_order_and_closing_unsubscribes(
    client: Client,
) -> None:
    bus = client.app[BUS]
    socket = await client.ws_connect("/ws/agents/201", headers=bearer(ADMIN_TOKEN))
    assert (await socket.receive_json(timeout=2))["type"] == "hello"
    for number in range(50):
        await bus.publish(agent_channel("201"), {"type": "call_update", "call_id": f"c{number}"})
    received = [(await socket.receive_json(timeout=2))["call_id"] for _ in range(50)]
    assert received == [f"c{number}" for number in range(50)]
    assert bus.subscribers[agent_channel("201")]
    await socket.close()
    for _ in range(100):  # the server notices the close frame on its own schedule
        if not bus.subscribers.get(agent_channel("201")):
            break
        await asyncio.sleep(0.01)
    assert not bus.subscribers.get(agent_channel("201"))


@pytest.mark.usefixtures("agents")
async def test_a_ticket_works_once(client: Client) -> None:
    issued = await ticket(client)
    first = await client.ws_connect(f"/ws/agents/201?ticket={issued}")
    await first.close()
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect(f"/ws/agents/201?ticket={issued}")
    assert refused.value.status == 401


@pytest.mark.usefixtures("agents")
async def test_operator_may_not_listen_to_another_extension(client: Client) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect(f"/ws/agents/202?ticket={await ticket(client)}")
    assert refused.value.status == 403


@pytest.mark.usefixtures("agents")
async def test_admin_header_may_listen_anywhere_but_tokens_in_urls_are_refused(
    client: Client,
) -> None:
    socket = await client.ws_connect("/ws/agents/202", headers=bearer(ADMIN_TOKEN))
    assert (await socket.receive_json(timeout=2))["extension"] == "202"
    await socket.close()
    for url in (f"/ws/agents/201?token={OPERATOR_TOKEN}", "/ws/agents/201"):
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await client.ws_connect(url)
        assert refused.value.status in (400, 401)


async def test_only_operators_get_tickets(client: Client) -> None:
    response = await client.post("/api/ws-tickets", headers=bearer(CRM_TOKEN))
    assert response.status == 403
    assert (await client.post("/api/ws-tickets")).status == 401


@pytest.fixture
async def second_instance(
    settings: Settings, database: Database, tokens: TokenRegistry, redis_url: str
) -> AsyncIterator[tuple[Client, Client]]:
    """Two gateway instances on one database and one Redis."""
    shared = settings.model_copy(update={"redis_url": redis_url})
    apps = [create_app(shared, tokens=tokens, workers=False) for _ in range(2)]
    async with (
        TestClient(TestServer(apps[0], host="127.0.0.1")) as first,
        TestClient(TestServer(apps[1], host="127.0.0.1")) as second,
    ):
        yield first, second


async def test_with_redis_a_ticket_and_events_cross_instances(
    second_instance: tuple[Client, Client], database: Database
) -> None:
    first, second = second_instance
    await add_agent(database, first.app[CLOCK].now(), OPERATOR_AGENT, ["201"])
    socket = await second.ws_connect(f"/ws/agents/201?ticket={await ticket(first)}")
    assert (await socket.receive_json(timeout=2))["type"] == "hello"
    await first.app[BUS].publish(agent_channel("201"), {"type": "screen_pop", "call_id": "x"})
    assert (await socket.receive_json(timeout=2))["call_id"] == "x"
    await socket.close()
