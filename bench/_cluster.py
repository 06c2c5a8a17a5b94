"""Real `switchboard serve` processes sharing one PostgreSQL and one Redis, for the
scaling benchmark: start N of them, find out which one leads the screen-pops, stop them.

Each instance is the console script a deployment runs, configured the way an operator
would (a YAML file for the policy, `SWITCHBOARD_*` variables for secrets), so whatever
several instances share — pop leadership, the Redis bus, SKIP LOCKED claims, the shared
send-rate bucket — is exercised for real.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType
from zoneinfo import ZoneInfo

import aiohttp
import redis.asyncio as aioredis
import yaml

from bench._telephony import ADMIN_TOKEN, AMI_SECRET, AMI_USER, wait_ami_connected
from bench.bench_webhook_ingest import SECRET as WEBHOOK_SECRET
from bench.bench_webhook_ingest import free_port
from gateway.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
SWITCHBOARD = Path(sys.executable).parent / "switchboard"
TWILIO_ACCOUNT, TWILIO_TOKEN = "AC" + "c" * 32, "bench-twilio-token"
LEADER_LINE = "screen-pop leadership taken"
LOST_LINE = "screen-pop leadership lost"
# Keys a previous run leaves behind in the bench's Redis database: a stopped leader's
# lock lives on for its TTL, and the shared send-rate bucket remembers its tokens.
STALE_KEYS = ("switchboard:lock:ami-pop-leader", "switchboard:rate:sms")


@dataclass(frozen=True)
class ClusterConfig:
    """What every instance shares."""

    database_url: str
    redis_url: str
    ami_port: int
    twilio_base: str
    sms_rate: float  # messages/s for all instances together (Redis token bucket)
    pool_size: int  # database connections per instance (PostgreSQL's limit is shared)
    work_dir: Path  # config file and one log per instance


class Cluster:
    """`async with Cluster(config, n)` runs n gateways on free ports until the block ends."""

    def __init__(self, config: ClusterConfig, size: int) -> None:
        """Nothing starts yet."""
        self.config = config
        self.ports = [free_port() for _ in range(size)]
        self._processes: list[asyncio.subprocess.Process] = []

    def url(self, index: int) -> str:
        """Base URL of instance `index` (the load balancer's round-robin uses it)."""
        return f"http://127.0.0.1:{self.ports[index % len(self.ports)]}"

    def log_path(self, port: int) -> Path:
        """Where instance `port` writes its log."""
        return self.config.work_dir / f"gateway-{port}.log"

    def _environment(self, port: int, config_file: Path) -> dict[str, str]:
        environment = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
        environment.update(
            SWITCHBOARD_CONFIG=str(config_file),
            SWITCHBOARD_DATABASE_URL=self.config.database_url,
            SWITCHBOARD_REDIS_URL=self.config.redis_url,
            SWITCHBOARD_API_TOKENS=f"{ADMIN_TOKEN}:admin",
            SWITCHBOARD_AMI_HOST="127.0.0.1",
            SWITCHBOARD_AMI_PORT=str(self.config.ami_port),
            SWITCHBOARD_AMI_USERNAME=AMI_USER,
            SWITCHBOARD_AMI_SECRET=AMI_SECRET,
            SWITCHBOARD_TWILIO_ACCOUNT_SID=TWILIO_ACCOUNT,
            SWITCHBOARD_TWILIO_AUTH_TOKEN=TWILIO_TOKEN,
            SWITCHBOARD_TWILIO_FROM="+15005550006",
            SWITCHBOARD_TWILIO_API_BASE=self.config.twilio_base,
            SWITCHBOARD_CRM_WEBHOOK_SECRET=WEBHOOK_SECRET,
            SWITCHBOARD_PUBLIC_URL=f"http://127.0.0.1:{port}",
        )
        return environment

    def _write_config(self) -> Path:
        # No sending windows or frequency caps: a benchmark run at night would otherwise
        # defer every SMS to the morning. INFO level shows the leadership line (the
        # gateway logs little else at INFO; the access log is off).
        path = self.config.work_dir / "switchboard.yaml"
        document = {
            "log_level": "INFO",
            "default_region": "UA",
            "policy": {"windows": {}, "frequency_caps": {}},
            "send_rates": {"sms": self.config.sms_rate},
            "database_pool_size": self.config.pool_size,
        }
        path.write_text(yaml.safe_dump(document), encoding="utf-8")
        return path

    async def __aenter__(self) -> Cluster:
        await prepare_redis(self.config.redis_url)
        config_file = self._write_config()
        for port in self.ports:
            log = self.log_path(port).open("wb")
            self._processes.append(
                await asyncio.create_subprocess_exec(
                    str(SWITCHBOARD),
                    "serve",
                    "--port",
                    str(port),
                    cwd=ROOT,
                    env=self._environment(port, config_file),
                    stdout=log,
                    stderr=log,
                )
            )
            log.close()  # the child holds its own copy
        try:
            for port in self.ports:
                await _wait_listening(port)
                await wait_ami_connected(port)
            await self._wait_leader()
        except BaseException:
            await self.__aexit__(None, None, None)
            for port in self.ports:  # why it did not come up, before the logs go
                tail = self.log_path(port).read_text(encoding="utf-8", errors="replace")
                print(f"--- gateway :{port} log (end) ---\n{tail[-3000:]}", file=sys.stderr)
            raise
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # SIGINT is the Ctrl-C `serve` handles: the app's cleanup contexts run.
        for process in self._processes:
            if process.returncode is None:
                process.send_signal(signal.SIGINT)
        for process in self._processes:
            try:
                await asyncio.wait_for(process.wait(), 30)
            except TimeoutError:
                process.kill()
                await process.wait()
        self._processes.clear()

    async def _wait_leader(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while self.leader() is None:
            if time.monotonic() > deadline:
                raise RuntimeError("no instance took the screen-pop leadership")
            await asyncio.sleep(0.1)

    def leader(self) -> int | None:
        """Port of the instance whose last leadership line says it took the lead."""
        for port in self.ports:
            text = self.log_path(port).read_text(encoding="utf-8", errors="replace")
            if text.rfind(LEADER_LINE) > text.rfind(LOST_LINE):
                return port
        return None

    def crashed(self) -> list[int]:
        """Ports of instances that exited on their own."""
        return [p for p, proc in zip(self.ports, self._processes, strict=True) if proc.returncode]


async def _wait_listening(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while True:
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(f"http://127.0.0.1:{port}/health") as response:
                    await response.read()
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the gateway on port {port} did not start")
            await asyncio.sleep(0.2)


async def prepare_redis(redis_url: str) -> None:
    """Drop a previous run's leader lock and rate bucket, and hold the once-a-day jobs'
    lock so that no instance scans the customers while we measure (else only the first
    size measured would pay for it). This bench's Redis database only."""
    client = aioredis.from_url(redis_url)
    today = datetime.now(ZoneInfo(Settings.model_fields["timezone"].default)).date()
    try:
        await client.delete(*STALE_KEYS)
        for day in (today, today + timedelta(days=1)):
            await client.set(f"switchboard:lock:daily-jobs:{day.isoformat()}", "bench", ex=3600)
    finally:
        await client.aclose()


def machine() -> str:
    """Cores and load average, to print next to every figure."""
    one, five, fifteen = os.getloadavg()
    return f"{os.cpu_count()} cores, load average {one:.2f} {five:.2f} {fifteen:.2f}"
