"""Redis down: the gateway (workers and all) still starts and serves what one instance
can do alone — CRM webhooks, customer search, tasks — with /health `degraded` and
`redis: down`; once a Redis answers on the same port again, /health is back to `ok`."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from gateway.app import create_app
from gateway.core.clock import FixedClock
from gateway.core.db.engine import Database
from gateway.core.http.auth import TokenRegistry
from gateway.settings import Settings
from tests.support.auth import ADMIN_TOKEN, OPERATOR_AGENT, OPERATOR_TOKEN, bearer
from tests.support.crm_webhooks import post_event, upsert

Client = TestClient[Any, Any]
DEADLINE_SECONDS = 15.0


def free_port() -> int:
    """A loopback port nothing listens on (the kernel's pick, released at once)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


class RedisDidNotStart(RuntimeError):
    """Our throwaway redis-server exited or never accepted connections."""


class RedisServer:
    """A throwaway redis-server of our own on a fixed port, started and killed at will."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        """Start it and wait until it accepts connections."""
        self._process = await asyncio.create_subprocess_exec(
            "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        deadline = time.monotonic() + DEADLINE_SECONDS
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError as exc:
                if self._process.returncode is not None or time.monotonic() > deadline:
                    raise RedisDidNotStart(f"redis-server not up on port {self.port}") from exc
                await asyncio.sleep(0.05)
                continue
            writer.close()
            await writer.wait_closed()
            return

    async def kill(self) -> None:
        """SIGKILL: the way a crashed Redis goes away."""
        if self._process is not None and self._process.returncode is None:
            self._process.kill()
            await self._process.wait()
        self._process = None


@pytest.fixture
async def redis_server() -> AsyncIterator[RedisServer]:
    """A Redis on a free port, not started yet; killed at the end whatever happened."""
    server = RedisServer(free_port())
    yield server
    await server.kill()


@pytest.fixture
async def gateway(
    settings: Settings,
    database: Database,
    clock: FixedClock,
    tokens: TokenRegistry,
    redis_server: RedisServer,
) -> AsyncIterator[Client]:
    """The whole app, background workers included, configured for `redis_server`'s port."""
    configured = settings.model_copy(
        update={"redis_url": f"redis://127.0.0.1:{redis_server.port}/0"}
    )
    app = create_app(configured, clock=clock, tokens=tokens, workers=True)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield client


async def health(client: Client) -> dict[str, Any]:
    response = await client.get("/health")
    assert response.status == 200
    body: dict[str, Any] = await response.json()
    return body


async def wait_for_health(client: Client, status: str, redis: str) -> dict[str, Any]:
    """Poll /health until it says `status` with Redis `redis`, within the deadline."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while True:
        body = await health(client)
        if body["status"] == status and body["components"]["redis"] == redis:
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"/health never said {status} with redis {redis}: {body}")
        await asyncio.sleep(0.1)


async def single_instance_features_work(client: Client, clock: FixedClock, number: int) -> None:
    """Webhooks create customer `number` and its task; search and the task list see them."""
    external_id = f"RD-{number}"
    await upsert(client, clock, external_id, name=f"Redisless Customer {number}")
    await post_event(
        client,
        clock,
        "task.created",
        {"task_id": f"T-{external_id}", "external_id": external_id, "assignee": OPERATOR_AGENT},
    )
    found = await client.get(
        "/api/customers", params={"q": f"Redisless Customer {number}"}, headers=bearer(ADMIN_TOKEN)
    )
    assert found.status == 200, await found.text()
    assert [item["external_id"] for item in (await found.json())["items"]] == [external_id]
    tasks = await client.get("/api/tasks?assignee=me", headers=bearer(OPERATOR_TOKEN))
    assert tasks.status == 200, await tasks.text()
    listed = await tasks.json()
    assert len(listed["items"]) == number


async def test_starts_without_redis_serves_alone_and_recovers_when_it_returns(
    gateway: Client, clock: FixedClock, redis_server: RedisServer
) -> None:
    body = await health(gateway)
    assert body["status"] == "degraded"
    assert body["components"]["redis"] == "down"
    assert body["components"]["database"] == "ok"
    await single_instance_features_work(gateway, clock, 1)

    await redis_server.start()
    body = await wait_for_health(gateway, "ok", "ok")
    assert body["components"]["database"] == "ok"
    await single_instance_features_work(gateway, clock, 2)


async def test_redis_dying_mid_run_degrades_and_its_restart_heals(
    redis_server: RedisServer,
    settings: Settings,
    database: Database,
    clock: FixedClock,
    tokens: TokenRegistry,
) -> None:
    await redis_server.start()
    configured = settings.model_copy(
        update={"redis_url": f"redis://127.0.0.1:{redis_server.port}/0"}
    )
    app = create_app(configured, clock=clock, tokens=tokens, workers=True)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        await wait_for_health(client, "ok", "ok")
        await single_instance_features_work(client, clock, 1)

        await redis_server.kill()
        await wait_for_health(client, "degraded", "down")
        await single_instance_features_work(client, clock, 2)

        await redis_server.start()  # same port, as a restarted Redis would be
        await wait_for_health(client, "ok", "ok")
        await single_instance_features_work(client, clock, 3)
