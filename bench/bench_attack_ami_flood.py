"""Benchmark: an AMI peer floods the gateway with `Newchannel` events (issue 14, item 8)
while a second client asks `/health` every 50 ms.

Usage: python bench/bench_attack_ami_flood.py [--events 60000] [--rounds 3]
       [--max-live-calls N] [--source DIR] [--deadline 300]

Each round: a fresh SQLite database (the one the report was made on), the real
`switchboard serve` in a child process, the built-in PBX simulator in this process writing
the flood at the pace the gateway reads it. Reported per round and as the median over
rounds: /health p50/p99/max during the flood (an answer that never came counts as the
client's 30 s timeout), the time until the gateway had read every event, the gateway's
CPU seconds and RSS growth over that time, its peak RSS, and how long it took to exit on
SIGTERM. `--source DIR` runs the gateway from another checkout (e.g. the code before the
fix: `git archive <commit> | tar -x -C /tmp/before`); a round gives up after `--deadline`
seconds and reports what the gateway had read by then.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.pbx_simulator import SimulatorServer
from tests.faults.test_ami_flood import newchannel

REPO = Path(__file__).resolve().parents[1]
CLI_MAIN = "import sys; from gateway.cli import main; sys.exit(main(sys.argv[1:]))"
USER, SECRET = "bench", "bench-secret"
TOKEN = "bench-admin-token-0123456789"
CHUNK = 500
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Round:
    """One flood's figures."""

    p50: float
    p99: float
    worst: float
    answers: int
    read_seconds: float
    events_read: int
    cpu_seconds: float
    rss_growth_mb: float
    peak_rss_mb: float
    stop_seconds: float


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def proc_status(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


async def events_read(http: aiohttp.ClientSession, url: str) -> float:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with contextlib.suppress(aiohttp.ClientError, TimeoutError):
        async with http.get(f"{url}/metrics", headers=headers) as response:
            for line in (await response.text()).splitlines():
                if line.startswith("switchboard_ami_events_total "):
                    return float(line.split()[1])
    return 0.0


async def poll(http: aiohttp.ClientSession, url: str, times: list[float]) -> None:
    while True:
        started = time.perf_counter()
        try:
            async with http.get(f"{url}/health", timeout=aiohttp.ClientTimeout(total=30)) as r:
                await r.read()
            times.append(time.perf_counter() - started)
        except (TimeoutError, aiohttp.ClientError):
            times.append(30.0)
        await asyncio.sleep(0.05)


async def one_round(args: argparse.Namespace, workdir: Path) -> Round:
    source: Path = args.source
    url_db = f"sqlite+aiosqlite:///{workdir / 'flood.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
    env |= {
        "PYTHONPATH": str(source),
        "SWITCHBOARD_CONFIG": "",
        "SWITCHBOARD_DATABASE_URL": url_db,
        "SWITCHBOARD_API_TOKENS": f"{TOKEN}:admin",
    }
    migrate = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CLI_MAIN, "db", "upgrade", cwd=source, env=env,
        stdout=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    await migrate.wait()
    async with SimulatorServer("127.0.0.1", 0, username=USER, secret=SECRET) as pbx:
        port = free_port()
        env |= {
            "SWITCHBOARD_AMI_HOST": "127.0.0.1",
            "SWITCHBOARD_AMI_PORT": str(pbx.port),
            "SWITCHBOARD_AMI_USERNAME": USER,
            "SWITCHBOARD_AMI_SECRET": SECRET,
        }
        if args.max_live_calls:
            env["SWITCHBOARD_PBX__MAX_LIVE_CALLS"] = str(args.max_live_calls)
        with (workdir / "gateway.log").open("ab") as log:
            child = await asyncio.create_subprocess_exec(
                sys.executable, "-c", CLI_MAIN, "serve", "--port", str(port), cwd=source,
                env=env, stdout=asyncio.subprocess.DEVNULL, stderr=log,
            )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            async with aiohttp.ClientSession() as http:
                deadline = time.monotonic() + 90
                while time.monotonic() < deadline:
                    with contextlib.suppress(aiohttp.ClientError):
                        async with http.get(f"{url}/health") as response:
                            if (await response.json())["components"]["ami"] == "connected":
                                break
                    await asyncio.sleep(0.2)
                rss0, cpu0 = proc_status(child.pid, "VmRSS"), cpu_seconds(child.pid)
                times: list[float] = []
                poller = asyncio.create_task(poll(http, url, times))
                started = time.monotonic()
                give_up = started + args.deadline
                for start in range(0, args.events, CHUNK):
                    end = min(args.events, start + CHUNK)
                    pbx.inject_raw(b"".join(newchannel(i) for i in range(start, end)))
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(pbx.drain(), max(0.1, give_up - time.monotonic()))
                    if time.monotonic() > give_up:
                        break
                read = 0.0
                while time.monotonic() < give_up:
                    read = await events_read(http, url)
                    if read >= args.events:
                        break
                    await asyncio.sleep(0.5)
                read_seconds = time.monotonic() - started
                cpu1, rss1 = cpu_seconds(child.pid), proc_status(child.pid, "VmRSS")
                poller.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await poller
            peak = proc_status(child.pid, "VmHWM")
            stop_started = time.monotonic()
            child.send_signal(signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(child.wait(), 60)
            stop_seconds = time.monotonic() - stop_started
        finally:
            if child.returncode is None:
                child.kill()
                await child.wait()
    ordered = sorted(times) or [0.0]
    return Round(
        p50=statistics.median(ordered),
        p99=ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
        worst=ordered[-1],
        answers=len(times),
        read_seconds=read_seconds,
        events_read=int(read),
        cpu_seconds=cpu1 - cpu0,
        rss_growth_mb=rss1 - rss0,
        peak_rss_mb=peak,
        stop_seconds=stop_seconds,
    )


def show(label: str, r: Round) -> None:
    print(
        f"{label}: /health p50 {r.p50 * 1000:.0f} ms, p99 {r.p99 * 1000:.0f} ms, "
        f"max {r.worst * 1000:.0f} ms ({r.answers} answers); read {r.events_read:,} events "
        f"in {r.read_seconds:.1f} s; CPU {r.cpu_seconds:.1f} s; RSS +{r.rss_growth_mb:.0f} MB "
        f"(peak {r.peak_rss_mb:.0f} MB); stopped {r.stop_seconds:.1f} s after SIGTERM",
        flush=True,
    )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=60_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-live-calls", type=int, default=0, help="0: the default")
    parser.add_argument("--source", default="", help="run the gateway from this checkout")
    parser.add_argument("--deadline", type=float, default=300.0)
    args = parser.parse_args()
    args.source = Path(args.source).resolve() if args.source else REPO
    return args


async def main(args: argparse.Namespace) -> None:
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    rounds = []
    for index in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="bench-ami-flood-") as workdir:
            rounds.append(await one_round(args, Path(workdir)))
        show(f"round {index + 1}", rounds[-1])
    fields = {name: statistics.median(getattr(r, name) for r in rounds) for name in vars(rounds[0])}
    show(f"median of {len(rounds)}", Round(**fields))
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
