"""Logging under attack: a 1 MB attribute logged at DEBUG does not freeze the gateway,
and nothing a request carries can forge a log line.

The gateway runs as `switchboard serve` in a child process with DEBUG logging, as an
operator chasing a problem would run it; a second client polls `/health` throughout.
The bound asserted (every answer within 1 s) is generous on purpose: the old quadratic
masker held the event loop for hours on such a line. bench/bench_attack_logging.py
measures the real figures."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from crm_sync.signature import HEADER, sign
from gateway.core.db.engine import Database
from gateway.core.logs import ContextFilter, MaskingFormatter
from tests.support.auth import WEBHOOK_SECRET, bearer
from tests.support.cli_process import CLI_MAIN, REPO

ATTRIBUTE_CHARS = 1_000_000  # the body stays under the default 1 MiB request limit
HEALTH_BOUND_S = 1.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_gateway(
    database_url: str, port: int, log: Path, json_lines: bool
) -> subprocess.Popen[str]:
    """`switchboard serve` at DEBUG on `port`, its log (stderr) written to `log`."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("SWITCHBOARD_")}
    env.update(
        SWITCHBOARD_CONFIG="",
        SWITCHBOARD_DATABASE_URL=database_url,
        SWITCHBOARD_CRM_WEBHOOK_SECRET=WEBHOOK_SECRET,
        SWITCHBOARD_LOG_LEVEL="DEBUG",
        SWITCHBOARD_LOG_JSON="true" if json_lines else "false",
    )
    with log.open("w") as stderr:
        return subprocess.Popen(  # noqa: S603 - our own interpreter and fixed arguments
            [sys.executable, "-c", CLI_MAIN, "serve", "--port", str(port)],
            env=env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )


def wait_until_serving(process: subprocess.Popen[str], deadline_s: float = 90.0) -> None:
    """Read the child's stdout until it says it serves."""
    assert process.stdout is not None
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        if "Switchboard console:" in line:
            return
    raise AssertionError("the gateway did not start")


def attack_body() -> bytes:
    """A valid `customer.upserted` carrying a 1 MB attribute (one long word: what the
    old masker's e-mail pattern took quadratic time on)."""
    event = {
        "id": "evt-attack-1",
        "type": "customer.upserted",
        "occurred_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "data": {
            "external_id": "C-ATTACK",
            "name": "Mallory",
            "phones": ["+380671234567"],
            "attributes": {"note": "a" * ATTRIBUTE_CHARS},
        },
    }
    return json.dumps(event).encode()


async def poll_health(base: str, stop: asyncio.Event, times: list[float]) -> None:
    """GET /health every 50 ms until `stop`; each answer's time (inf for none in 5 s)."""
    timeout = aiohttp.ClientTimeout(total=5)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        while not stop.is_set():
            started = time.monotonic()
            try:
                async with session.get(f"{base}/health") as response:
                    await response.read()
                times.append(time.monotonic() - started)
            except (TimeoutError, aiohttp.ClientError):
                times.append(float("inf"))
            await asyncio.sleep(0.05)


@pytest.mark.slow
@pytest.mark.parametrize("json_lines", [False, True], ids=["text", "json"])
async def test_a_1_mb_attribute_at_debug_does_not_freeze_the_gateway(
    database: Database, database_url: str, tmp_path: Path, json_lines: bool
) -> None:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "gateway.log"
    process = start_gateway(database_url, port, log, json_lines)
    try:
        await asyncio.to_thread(wait_until_serving, process)
        stop, times = asyncio.Event(), list[float]()
        poller = asyncio.create_task(poll_health(base, stop, times))
        await asyncio.sleep(0.5)  # a few answers before the attack
        body = attack_body()
        headers = {HEADER: sign(WEBHOOK_SECRET, body, int(time.time()))}
        headers["Content-Type"] = "application/json"
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session,
            session.post(f"{base}/crm/events", data=body, headers=headers) as response,
        ):
            assert response.status == 200, await response.text()
            assert (await response.json())["status"] == "applied"
        await asyncio.sleep(1.0)  # and a second after it
        stop.set()
        await poller
        assert len(times) >= 10
        assert max(times) <= HEALTH_BOUND_S, sorted(times)[-5:]
        # SIGTERM is honoured at once (a blocked loop used to ignore it).
        process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(process.wait, 30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
    lines = log.read_text(encoding="utf-8").splitlines()
    assert lines, "nothing was logged at DEBUG"
    # Every line is bounded: the attribute was cut, never written whole.
    assert max(len(line) for line in lines) < 100_000
    assert not any("380671234567" in line for line in lines)
    if database_url.startswith("sqlite"):  # aiosqlite logs each statement's parameters
        assert any("more characters]" in line for line in lines)
    if json_lines:
        for line in lines:
            json.loads(line)


async def test_a_line_break_in_a_request_cannot_forge_a_log_line(
    client: TestClient[Any, Any], caplog: pytest.LogCaptureFixture
) -> None:
    forged = "2026-12-07 17:18:17,123 INFO gateway.core.http.auth: admin signed in"
    caplog.set_level(logging.DEBUG)
    formatter = MaskingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    context = ContextFilter()
    for breaker in ("%0A", "%0D%0A", "%0D", "%E2%80%A8", "%C2%85"):
        path = f"/api/customers/cus_1{breaker}"
        caplog.clear()
        response = await client.get(
            f"{path}{forged.replace(' ', '%20')}", headers=bearer("never-issued-token-0123456789")
        )
        assert response.status == 401
        records = [r for r in caplog.records if "refused an unknown token" in r.getMessage()]
        assert records, [r.getMessage() for r in caplog.records]
        for record in records:
            context.filter(record)
            line = formatter.format(record)
            assert line.splitlines() == [line]
            # The break is written as an escape, in the record's own line.
            between = line[line.index("cus_1") + 5 : line.index(forged)]
            assert between in ("\\n", "\\r\\n", "\\r", "\\u2028", "\\x85"), line
