"""Two gateway instances on one PBX, database and Redis: each call is recorded once and
each ringing operator gets one screen-pop, whichever instance holds the socket."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from gateway.app import create_app
from gateway.core.clock import SystemClock
from gateway.core.db.engine import Database
from gateway.core.http.auth import TokenRegistry
from gateway.pbx_simulator import CallSpec, SimulatorServer
from gateway.settings import Settings
from tests.support.auth import ADMIN_TOKEN, bearer
from tests.support.pbx import health_ami, pbx, wait_for, wired_to
from tests.support.telephony import OLENA, ended_calls

__all__ = ["pbx"]  # the simulator fixture
from tests.support.factories import make_customer

Client = TestClient[Any, Any]


@pytest.fixture
async def gateways(
    settings: Settings,
    database: Database,
    tokens: TokenRegistry,
    pbx: SimulatorServer,
    redis_url: str,
) -> AsyncIterator[tuple[Client, Client]]:
    """Two instances with workers, sharing the database, Redis and the PBX."""
    wired = wired_to(settings, pbx, redis_url=redis_url)
    apps = [create_app(wired, clock=SystemClock(), tokens=tokens) for _ in range(2)]
    async with (
        TestClient(TestServer(apps[0], host="127.0.0.1")) as first,
        TestClient(TestServer(apps[1], host="127.0.0.1")) as second,
    ):
        for client in (first, second):
            await wait_for(lambda c=client: health_ami(c), "connected")
        await asyncio.sleep(0.5)  # the leader loop's first pass
        yield first, second


async def test_one_record_and_one_pop_per_operator_across_instances(
    gateways: tuple[Client, Client], database: Database, pbx: SimulatorServer
) -> None:
    first, second = gateways
    await make_customer(database, SystemClock().now(), "C-1", [OLENA])
    sockets = [
        await client.ws_connect("/ws/agents/201", headers=bearer(ADMIN_TOKEN))
        for client in (first, second)
    ]
    for socket in sockets:
        assert (await socket.receive_json(timeout=5))["type"] == "hello"
    pbx.start_call(CallSpec(caller=OLENA, extensions=("201",), ring_seconds=1, talk_seconds=5))
    (record,) = await ended_calls(first, 1)
    assert record["disposition"] == "answered"
    await asyncio.sleep(0.5)  # let any duplicate arrive
    for socket in sockets:
        seen = []
        while True:
            try:
                seen.append((await socket.receive_json(timeout=0.3))["type"])
            except TimeoutError:
                break
        assert seen.count("screen_pop") == 1, seen
        assert seen.count("call_update") == 2, seen  # answered, ended
        await socket.close()
