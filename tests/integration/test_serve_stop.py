"""`switchboard serve` stops cleanly on SIGTERM (how orchestrators stop a service) and SIGINT:
cleanup runs, so the process says so and exits 0 instead of being killed mid-lease."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

START_DEADLINE_S = 90.0
STOP_DEADLINE_S = 30.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _start_gateway(tmp_path: Path) -> subprocess.Popen[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("SWITCHBOARD_")}
    env["SWITCHBOARD_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path / 'gateway.core.db'}"
    command = [sys.executable, "-m", "gateway.cli", "serve", "--demo", "--port", str(_free_port())]
    return subprocess.Popen(  # noqa: S603 - our own interpreter and fixed arguments
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path
    )


def _wait_for_line(process: subprocess.Popen[str], needle: str, deadline_s: float) -> list[str]:
    assert process.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        seen.append(line)
        if needle in line:
            return seen
    raise AssertionError(f"{needle!r} never printed; output: {''.join(seen)[-2000:]}")


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "sigint"])
def test_serve_stops_cleanly_on_signal(tmp_path: Path, stop_signal: signal.Signals) -> None:
    process = _start_gateway(tmp_path)
    try:
        _wait_for_line(process, "Switchboard console:", START_DEADLINE_S)
        process.send_signal(stop_signal)
        _wait_for_line(process, "Switchboard: stopping", STOP_DEADLINE_S)
        assert process.wait(timeout=STOP_DEADLINE_S) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


STOP_BOUND_S = 6.0  # what an orchestrator waits before SIGKILL, with room to spare
ADMIN_TOKEN = "admin-token-serve-stop-0123"


async def test_serve_stops_within_six_seconds_with_clients_attached(tmp_path: Path) -> None:
    # What held the gateway after SIGTERM: an open WebSocket (a request that never ends
    # by itself) and a request whose body is still arriving waited aiohttp's 60 s
    # shutdown timeout; an idle keep-alive and a half-sent head are here too.
    import asyncio

    import aiohttp

    from tests.support.serve_process import Gateway

    gateway = Gateway(tmp_path, {"SWITCHBOARD_API_TOKENS": f"{ADMIN_TOKEN}:admin"})
    try:
        async with aiohttp.ClientSession() as session:
            headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
            socket = await session.ws_connect(gateway.base + "/ws/agents/201", headers=headers)
            assert (await socket.receive_json(timeout=10))["type"] == "hello"
            async with session.get(gateway.base + "/health") as response:
                assert response.status == 200  # its connection stays open, idle
            _, half = await asyncio.open_connection("127.0.0.1", gateway.port)
            half.write(b"GET /health HTTP/1.1\r\nHost: gateway\r\n")
            _, slow = await asyncio.open_connection("127.0.0.1", gateway.port)
            slow.write(
                b"POST /api/session HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json"
                b"\r\nContent-Length: 100\r\n\r\n{"
            )
            await asyncio.sleep(0.5)
            took = await asyncio.to_thread(gateway.stop, 90.0)
            for writer in (half, slow):
                writer.close()
        print(f"serve stopped in {took:.2f} s with clients attached")
        assert gateway.process.returncode == 0
        assert took < STOP_BOUND_S
        assert gateway.log_lines("Switchboard: stopping")
    finally:
        gateway.kill()
