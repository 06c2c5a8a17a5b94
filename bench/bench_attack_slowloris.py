"""Benchmark: /health latency while a slowloris attack holds thousands of half-open
connections against the real `switchboard serve` (issue 14, item 4).

Usage: python bench/bench_attack_slowloris.py [--addresses 12] [--per-address 300]
                                              [--rounds 3] [--header-timeout 10]
                                              [--max-files 2048]

Three processes: the gateway (`switchboard serve` on SQLite, its defaults apart from
the head and body timeouts, both `--header-timeout`), the attacker
(tests/support/slowloris.py: every source address 127.0.1.x opens `--per-address`
connections that send part of a request line, part of the headers, or part of a body,
and keeps them open), and this one, which polls `GET /health` every 20 ms from
127.0.0.1 on a new connection each time, from the attack's start for the header
timeout + 8 s. Each round reports
the poll's p50 / p99 / max (connect included) and how the
attack's connections ended; the medians of the rounds come last.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.serve_process import Gateway
from tests.support.slowloris import run_attacker

POLL_EVERY_S = 0.02
ANSWER_TIMEOUT_S = 30.0


async def _poll_once(port: int) -> float:
    started = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"GET /health HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        answer = await reader.read()
    finally:
        writer.close()
    if not answer.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"/health answered {answer[:60]!r}")
    return time.monotonic() - started


async def _poll(port: int, done: asyncio.Event) -> tuple[list[float], int]:
    times: list[float] = []
    failures = 0
    while not done.is_set():
        try:
            times.append(await asyncio.wait_for(_poll_once(port), ANSWER_TIMEOUT_S))
        except (OSError, RuntimeError, TimeoutError):
            failures += 1
        await asyncio.sleep(POLL_EVERY_S)
    return times, failures


def _percentile(ordered: list[float], share: float) -> float:
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def one_round(args: argparse.Namespace) -> dict[str, float]:
    """One gateway, one attack, one poller; the figures in ms."""
    with tempfile.TemporaryDirectory() as folder:
        timeout = str(args.header_timeout)
        env = {
            "SWITCHBOARD_HTTP_LIMITS__HEADER_TIMEOUT_SECONDS": timeout,
            "SWITCHBOARD_HTTP_LIMITS__BODY_TIMEOUT_SECONDS": timeout,
        }
        gateway = Gateway(Path(folder), env, max_files=args.max_files)
        try:
            done = asyncio.Event()
            polling = asyncio.create_task(_poll(gateway.port, done))
            await asyncio.sleep(1.0)  # a baseline before the attack
            addresses = [f"127.0.1.{n}" for n in range(1, args.addresses + 1)]
            attack = asyncio.create_task(
                run_attacker(gateway.port, addresses, args.per_address, args.header_timeout + 20)
            )
            # The same window before and after the fix: the ramp, the connections held,
            # and the moment their deadlines pass (after the fix).
            await asyncio.sleep(args.header_timeout + 8)
            done.set()
            times, failures = await polling
            tally = await attack
            quiet = len(gateway.log_lines("gateway.core.http.connections"))
        finally:
            gateway.kill()
    ordered = sorted(times)
    figures = {
        "p50": _percentile(ordered, 0.50) * 1000,
        "p99": _percentile(ordered, 0.99) * 1000,
        "max": ordered[-1] * 1000,
    }
    print(
        f"  {len(ordered)} answers, {failures} failed: p50 {figures['p50']:.1f} ms, "
        f"p99 {figures['p99']:.1f} ms, max {figures['max']:.1f} ms; attack {dict(tally)}; "
        f"{quiet} guard log lines"
    )
    return figures


async def main() -> None:
    """Run the rounds and print the medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--addresses", type=int, default=12)
    parser.add_argument("--per-address", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--header-timeout", type=float, default=10.0)
    parser.add_argument(
        "--max-files", type=int, default=0, help="the gateway's descriptor limit (0: inherited)"
    )
    args = parser.parse_args()
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(
        f"slowloris: {args.addresses} addresses x {args.per_address} half-open connections, "
        f"header timeout {args.header_timeout:.0f} s, gateway file limit "
        f"{args.max_files or 'inherited'}"
    )
    rounds = [await one_round(args) for _ in range(args.rounds)]
    medians = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
    print(
        f"/health during the attack, median of {args.rounds}: p50 {medians['p50']:.1f} ms, "
        f"p99 {medians['p99']:.1f} ms, max {medians['max']:.1f} ms"
    )
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    asyncio.run(main())
