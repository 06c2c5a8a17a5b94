"""PostgreSQL restarts under a running gateway: requests succeed again without anyone
touching the gateway (only those caught mid-restart may fail).

Runs a throwaway cluster of its own on a free loopback port, so the shared test server
is never restarted. Needs PostgreSQL's server binaries (/usr/lib/postgresql/*/bin); as
root it runs them as the `postgres` user, as initdb refuses root."""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import shutil
import socket
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from gateway.app import create_app
from gateway.core.clock import FixedClock
from gateway.core.db.engine import Database
from gateway.core.db.migrate import upgrade
from gateway.core.http.auth import TokenRegistry
from gateway.settings import Settings
from tests.support.auth import ADMIN_TOKEN, WEBHOOK_SECRET, bearer
from tests.support.crm_webhooks import upsert

Client = TestClient[Any, Any]
DEADLINE_SECONDS = 15.0
REQUEST_TIMEOUT_SECONDS = 5.0
AFTER_RECOVERY = 20

pytestmark = pytest.mark.slow


class ClusterUnavailable(RuntimeError):
    """This machine cannot run a private PostgreSQL cluster for the test."""


def free_port() -> int:
    """A loopback port nothing listens on (the kernel's pick, released at once)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


class Cluster:
    """A private PostgreSQL cluster: initdb, start, restart, stop, all on loopback."""

    def __init__(self, root: Path, port: int) -> None:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not found:
            raise ClusterUnavailable(
                "no PostgreSQL server binaries under /usr/lib/postgresql/*/bin; "
                "install them (apt-get install postgresql) to run this fault test"
            )
        self.bindir = Path(found[-1]).parent
        self.root, self.port = root, port
        self.data = root / "data"
        self._runas: list[str] = []
        if os.geteuid() == 0:
            if shutil.which("runuser") is None:
                raise ClusterUnavailable("running as root without runuser: cannot drop to postgres")
            try:
                shutil.chown(root, user="postgres")
            except LookupError as exc:
                raise ClusterUnavailable("running as root and no `postgres` user exists") from exc
            self._runas = ["runuser", "-u", "postgres", "--"]

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the cluster's `test` database."""
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/test"

    async def _run(self, program: str, *args: str) -> None:
        process = await asyncio.create_subprocess_exec(
            *self._runas,
            str(self.bindir / program),
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await process.communicate()
        if process.returncode != 0:
            raise ClusterUnavailable(f"{program} {' '.join(args)} failed:\n{output.decode()}")

    def _options(self) -> str:
        return f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"

    async def create(self) -> None:
        """initdb, start, and create the `test` database."""
        await self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-N")
        await self.pg_ctl("start")
        connection = await asyncpg.connect(host="127.0.0.1", port=self.port, user="postgres")
        try:
            await connection.execute("CREATE DATABASE test")
        finally:
            await connection.close()

    async def pg_ctl(self, action: str, *extra: str) -> None:
        """`pg_ctl ACTION`, waiting until it is done."""
        log = str(self.root / "server.log")
        await self._run(
            "pg_ctl", action, "-D", str(self.data), "-w", "-o", self._options(), "-l", log, *extra
        )


@pytest.fixture
async def cluster() -> AsyncIterator[Cluster]:
    """A running private cluster, stopped and deleted afterwards."""
    root = Path(tempfile.mkdtemp(prefix="switchboard-pg-"))
    try:
        made = Cluster(root, free_port())
        await made.create()
    except ClusterUnavailable as exc:
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"cannot run a private PostgreSQL cluster: {exc}", pytrace=False)
    try:
        yield made
    finally:
        # Already down (a failed test may have stopped it): nothing left to stop.
        with contextlib.suppress(ClusterUnavailable):
            await made.pg_ctl("stop", "-m", "immediate")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
async def gateway(
    cluster: Cluster, clock: FixedClock, tokens: TokenRegistry
) -> AsyncIterator[Client]:
    """The whole app, workers included, on the private cluster after migrations."""
    database = Database(cluster.url)
    try:
        await upgrade(database)
    finally:
        await database.dispose()
    settings = Settings(
        database_url=cluster.url,
        database_pool_size=4,
        crm_webhook_secret=WEBHOOK_SECRET,
        default_region="UA",
        max_body_bytes=65_536,
    )
    app = create_app(settings, clock=clock, tokens=tokens, workers=True)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield client


async def round_trip(client: Client, clock: FixedClock, number: int) -> bool:
    """Write a customer through the CRM webhook and find it by search: True if both work."""
    try:
        async with asyncio.timeout(REQUEST_TIMEOUT_SECONDS):
            await upsert(client, clock, f"PG-{number}", name=f"Restart Survivor {number}")
            found = await client.get(
                "/api/customers",
                params={"external_id": f"PG-{number}"},
                headers=bearer(ADMIN_TOKEN),
            )
            if found.status != 200:
                return False
            items = (await found.json())["items"]
    except (AssertionError, TimeoutError):
        return False
    return [item["external_id"] for item in items] == [f"PG-{number}"]


async def test_requests_succeed_again_after_postgres_restarts(
    gateway: Client, clock: FixedClock, cluster: Cluster
) -> None:
    for number in range(5):
        assert await round_trip(gateway, clock, number)
    health = await (await gateway.get("/health")).json()
    assert health["components"]["database"] == "ok"

    outcomes: Counter[bool] = Counter()
    stop = asyncio.Event()

    async def load() -> None:
        # Requests in flight while the server goes down and comes back: these may fail.
        number = 1000
        while not stop.is_set():
            outcomes[await round_trip(gateway, clock, number)] += 1
            number += 1

    loader = asyncio.create_task(load())
    await asyncio.sleep(0.2)
    await cluster.pg_ctl("restart", "-m", "fast")
    stop.set()
    await loader
    assert outcomes[True] > 0  # the load really ran against the cluster

    # Nobody touches the gateway: it must find its way back on its own.
    deadline = time.monotonic() + DEADLINE_SECONDS
    number = 2000
    while not await round_trip(gateway, clock, number):
        number += 1
        assert time.monotonic() < deadline, "requests still failing after the restart"
    print(
        f"during restart: {outcomes[True]} round trips ok, {outcomes[False]} failed; "
        f"after it: {number - 2000} failed before the first success"
    )
    for number in range(3000, 3000 + AFTER_RECOVERY):
        assert await round_trip(gateway, clock, number), f"request {number} failed after recovery"
    health = await (await gateway.get("/health")).json()
    assert health["components"]["database"] == "ok"
