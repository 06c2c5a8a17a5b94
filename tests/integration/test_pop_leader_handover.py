"""Two instances on one PBX and Redis: when the instance leading the screen-pops can no
longer lead — its AMI session is cut while the other's is fine, or it is stopped — the
other takes the pops over within seconds instead of operators getting none.

Before the fix the leader kept renewing its lock while deaf to the PBX (pops stopped
until its session came back), and a stopped leader's lock blocked the others for its
whole TTL.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer

from gateway.app import create_app
from gateway.calls.link import LEADER_GRACE, LEADER_RENEW, LEADER_TTL
from gateway.core.clock import SystemClock
from gateway.core.http.auth import TokenRegistry
from gateway.pbx_simulator import CallSpec, SimulatorServer
from gateway.settings import Settings
from tests.support.auth import ADMIN_TOKEN, bearer
from tests.support.pbx import health_ami, pbx, wait_for, wired_to

__all__ = ["pbx"]  # the simulator fixture

Client = TestClient[Any, Any]
LEADER_KEY = "switchboard:lock:ami-pop-leader"
# Handing over takes the grace a deaf leader gets plus a poll; keeping the old behaviour
# would take at least LEADER_TTL - LEADER_RENEW, and forever for a deaf leader.
HANDOVER = LEADER_GRACE + 3.0
assert HANDOVER < LEADER_TTL - LEADER_RENEW


class Relay:
    """A loopback TCP relay in front of the PBX that the test can cut, like a network
    partition between one instance and the PBX."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(
            "127.0.0.1", self.target_port
        )
        self._writers += [writer, upstream_writer]
        await asyncio.gather(
            self._pump(reader, upstream_writer), self._pump(upstream_reader, writer)
        )

    @staticmethod
    async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def cut(self) -> None:
        """Refuse new connections and drop the open ones (again: a no-op)."""
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.transport.abort()
        await self._server.wait_closed()
        await asyncio.sleep(0)  # the aborted transports close their sockets


async def leader_token(redis_url: str) -> str | None:
    """Who holds the pop leadership now (its random token; None when nobody)."""
    client = aioredis.from_url(redis_url, decode_responses=True)
    try:
        value = await client.get(LEADER_KEY)
    finally:
        await client.aclose()
    return None if value is None else str(value)


async def pops_until(
    socket: Any, pbx: SimulatorServer, caller: str, deadline: float
) -> float | None:
    """Ring 201 once a second until a screen-pop reaches `socket`; seconds it took."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    while loop.time() - started < deadline:
        pbx.start_call(CallSpec(caller=caller, extensions=("201",), ring_seconds=2))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.0):
                while (await socket.receive_json())["type"] != "screen_pop":
                    pass
                return loop.time() - started
    return None


@pytest.fixture
async def leader_and_follower(
    settings: Settings, tokens: TokenRegistry, pbx: SimulatorServer, redis_url: str
) -> AsyncIterator[tuple[Client, Client, Relay]]:
    """The leader reaches the PBX through a relay; the follower starts once it leads."""
    relay = Relay(pbx.port)
    await relay.start()
    through_relay = wired_to(settings, pbx, redis_url=redis_url, ami_port=relay.port)
    direct = wired_to(settings, pbx, redis_url=redis_url)
    leader = TestClient(TestServer(create_app(through_relay, clock=SystemClock(), tokens=tokens)))
    follower = TestClient(TestServer(create_app(direct, clock=SystemClock(), tokens=tokens)))
    await leader.start_server()
    try:
        await wait_for(lambda: health_ami(leader), "connected")
        await wait_for(lambda: _is_held(redis_url), True)
        await follower.start_server()
        try:
            await wait_for(lambda: health_ami(follower), "connected")
            yield leader, follower, relay
        finally:
            await follower.close()
    finally:
        await leader.close()
        await relay.cut()


async def _is_held(redis_url: str) -> bool:
    return await leader_token(redis_url) is not None


async def test_a_leader_cut_off_from_the_pbx_hands_the_pops_over(
    leader_and_follower: tuple[Client, Client, Relay], pbx: SimulatorServer, redis_url: str
) -> None:
    leader, follower, relay = leader_and_follower
    held_by_leader = await leader_token(redis_url)
    socket = await follower.ws_connect("/ws/agents/201", headers=bearer(ADMIN_TOKEN))
    assert (await socket.receive_json(timeout=5))["type"] == "hello"
    await relay.cut()
    await wait_for(lambda: health_ami(leader), "disconnected")
    took = await pops_until(socket, pbx, "+380671234567", HANDOVER)
    assert took is not None, "no screen-pop reached the operator after the leader went deaf"
    assert await leader_token(redis_url) not in (None, held_by_leader)
    assert await health_ami(leader) == "disconnected"  # the pop came through the follower
    await socket.close()


async def test_a_stopped_leader_hands_the_pops_over_at_once(
    leader_and_follower: tuple[Client, Client, Relay], pbx: SimulatorServer, redis_url: str
) -> None:
    leader, follower, _ = leader_and_follower
    socket = await follower.ws_connect("/ws/agents/201", headers=bearer(ADMIN_TOKEN))
    assert (await socket.receive_json(timeout=5))["type"] == "hello"
    await leader.close()  # a rolling restart stops it
    took = await pops_until(socket, pbx, "+380671234568", HANDOVER)
    assert took is not None, "no screen-pop reached the operator after the leader stopped"
    await socket.close()
