"""`switchboard serve` in a child process on SQLite (no PBX), for tests that attack it."""

from __future__ import annotations

import os
import resource
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import aiohttp

from tests.support.cli_process import CLI_MAIN, REPO

START_DEADLINE_S = 90.0


def free_port() -> int:
    """A port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Gateway:
    """The child process, its port, and every line it printed (collected in a thread)."""

    def __init__(self, tmp_path: Path, env: dict[str, str], *, max_files: int = 0) -> None:
        self.port = free_port()
        self._max_files = max_files  # the serve process's descriptor limit (0: inherited)
        self.lines: list[str] = []
        base = {
            key: value for key, value in os.environ.items() if not key.startswith("SWITCHBOARD_")
        }
        self.env = {
            **base,
            "SWITCHBOARD_CONFIG": "",
            "SWITCHBOARD_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'gateway.core.db'}",
            **env,
        }
        upgrade = self._cli("db", "upgrade")
        output, _ = upgrade.communicate(timeout=START_DEADLINE_S)
        assert upgrade.returncode == 0, f"db upgrade failed: {output}"
        self.process = self._cli("serve", "--port", str(self.port), limit_files=True)
        self._started = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not self._started.wait(START_DEADLINE_S):
            self.kill()
            raise AssertionError(f"the gateway did not start: {''.join(self.lines)[-2000:]}")

    @property
    def base(self) -> str:
        """The gateway's URL."""
        return f"http://127.0.0.1:{self.port}"

    def _cli(self, *args: str, limit_files: bool = False) -> subprocess.Popen[str]:
        max_files = self._max_files if limit_files else 0

        def limit() -> None:
            if max_files:
                resource.setrlimit(resource.RLIMIT_NOFILE, (max_files, max_files))

        return subprocess.Popen(  # noqa: S603 - our own interpreter and fixed arguments
            [sys.executable, "-c", CLI_MAIN, *args],
            cwd=REPO,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            preexec_fn=limit if max_files else None,  # only setrlimit: safe before exec
        )

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)
            if "Switchboard console:" in line:
                self._started.set()

    def stop(self, timeout: float = 30.0) -> float:
        """SIGTERM, wait for the exit; returns how long it took."""
        started = time.monotonic()
        self.process.terminate()
        try:
            self.process.wait(timeout=timeout)
        finally:
            self.kill()
        return time.monotonic() - started

    def kill(self) -> None:
        """Make sure the process is gone and its output read."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._reader.join(timeout=5)
        if self.process.stdout is not None:
            self.process.stdout.close()

    async def metric(self, name: str) -> float:
        """The sum of one metric's samples from GET /metrics (open by default)."""
        async with (
            aiohttp.ClientSession() as session,
            session.get(self.base + "/metrics") as response,
        ):
            text = await response.text()
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith(name) and not line.startswith("#")
        )

    def log_lines(self, needle: str) -> list[str]:
        """The lines printed so far that contain `needle`."""
        return [line for line in list(self.lines) if needle in line]
