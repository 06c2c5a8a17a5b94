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
