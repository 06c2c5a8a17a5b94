"""The built-in PBX simulator as a test peer: its fixture, and settings wired to it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr

from gateway.app import create_app
from gateway.core.clock import SystemClock
from gateway.core.db.engine import Database
from gateway.core.http.auth import TokenRegistry
from gateway.pbx_simulator import SimulatorServer
from gateway.pbx_simulator.model import Fields
from gateway.settings import Settings

SPEED = 40.0  # simulated seconds per real second: a 25 s call takes ~0.6 s
USERNAME, SECRET = "gw", "s3cret"


@pytest.fixture
async def pbx() -> AsyncIterator[SimulatorServer]:
    """The simulator on a free loopback port, stamping events with simulated time."""
    async with SimulatorServer(
        "127.0.0.1", 0, username=USERNAME, secret=SECRET, speed=SPEED, timestamp_events=True
    ) as server:
        yield server


@pytest.fixture(name="gateway")
async def pbx_gateway(
    settings: Settings, database: Database, tokens: TokenRegistry, pbx: SimulatorServer
) -> AsyncIterator[TestClient[Any, Any]]:
    """The whole gateway (workers on) connected to the simulator, once its AMI session is up."""
    app = create_app(wired_to(settings, pbx), clock=SystemClock(), tokens=tokens, workers=True)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        await wait_for(lambda: health_ami(client), "connected")
        yield client


def wired_to(settings: Settings, pbx: SimulatorServer, **more: Any) -> Settings:
    """`settings` pointing the gateway's AMI session at the simulator."""
    return settings.model_copy(
        update={
            "ami_host": "127.0.0.1",
            "ami_port": pbx.port,
            "ami_username": USERNAME,
            "ami_secret": SecretStr(SECRET),
            **more,
        }
    )


async def health_ami(client: TestClient[Any, Any]) -> str:
    """The AMI component of /health."""
    return str((await (await client.get("/health")).json())["components"]["ami"])


async def wait_for(probe: Any, expected: Any, timeout: float = 10.0) -> Any:
    """Poll an async probe until it returns `expected` (or fail with the last value)."""
    deadline = asyncio.get_running_loop().time() + timeout
    value = None
    while asyncio.get_running_loop().time() < deadline:
        value = await probe()
        if value == expected:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"waited for {expected!r}, last saw {value!r}")


class CompletedCalls:
    """The simulator's own list of completed calls, whoever was connected at the time.

    It taps the simulated PBX's event output (`Pbx.emit`, before the TCP fan-out), so a
    call that ended while no client was connected is on the list too. A call is complete
    once its Cdr events are out (the last thing a call emits); `seen` holds the calls that
    had at least one event while a client was connected (a call can also be known from a
    `CoreShowChannels` answer alone, which does not pass through here).
    """

    def __init__(self, server: SimulatorServer) -> None:
        self.linkedids: dict[str, None] = {}  # in completion order
        self.seen: set[str] = set()
        self._server = server
        self._emit = server.pbx.emit
        server.pbx.emit = self._tap

    def _tap(self, name: str, fields: Fields, privilege: str) -> None:
        values = dict(fields)
        linkedid = values.get("Linkedid") or values.get("LinkedID")
        if linkedid and self._server.client_count:
            self.seen.add(linkedid)
        if name == "Cdr" and linkedid:
            self.linkedids[linkedid] = None
        self._emit(name, fields, privilege)
