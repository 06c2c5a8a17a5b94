"""Benchmark: signed `customer.upserted` webhooks/s against the real app on PostgreSQL.

Usage: python bench/bench_webhook_ingest.py [--seconds 5] [--concurrency 32] [--rounds 3]
                                           [--profile-seconds 3] [--variant NAME ...]

The server runs in a child process (as in production, apart from its client); the
client keeps `--concurrency` connections busy. A bare aiohttp handler answering 200 is
measured the same way (same client, same concurrency) in the same run, alternating with
the real app for `--rounds` rounds so a machine shared with other work skews both alike;
the medians and their ratio are reported. Then the real app runs once more under
pyinstrument to show where its time goes. Each request is one committed transaction,
every event id and customer new.

With `--variant` (repeatable) the bare handler is left out and the named variants of the
real app alternate instead, to measure what PostgreSQL's dialect-specific statements buy
(bench-only switches, see bench/_portable.py):
- `fast`: the product as it is (one statement on the `crm_sync.ingest_fast` pool);
- `no-pool`: without that pool: a transaction of `claim_and_advance` (one statement,
  `pg_guard`) and `write_customer` (one statement, `pg_write_statement`);
- `portable-guard`: as `no-pool`, the claim and the version as two statements;
- `portable-write`: as `no-pool`, the customer written by `_sqlite_write`;
- `portable`: both, i.e. the portable path throughout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import socket
import statistics
import sys
import time
from itertools import count
from multiprocessing.synchronize import Event as EventType
from pathlib import Path

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from crm_sync.signature import HEADER, sign
from tests.support.databases import (
    create_postgres_database,
    drop_postgres_database,
)

SECRET = "bench-webhook-secret"
VARIANTS = ("fast", "no-pool", "portable-guard", "portable-write", "portable")


def apply_variant(kind: str) -> None:
    """Patch the server process for one `--variant` (nothing for `fast`)."""
    from bench._portable import no_fast_pool, portable_customer_write, portable_guards

    if kind in ("no-pool", "portable-guard", "portable-write", "portable"):
        no_fast_pool()
    if kind in ("portable-guard", "portable"):
        portable_guards()
    if kind in ("portable-write", "portable"):
        portable_customer_write()


def free_port() -> int:
    """A loopback port nobody listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def serve(kind: str, url: str, port: int, ready: EventType, stop: EventType, profile: bool) -> None:
    """Child process: run the bare handler or the real app until `stop` is set."""
    asyncio.run(_serve(kind, url, port, ready, stop, profile))


async def _serve(
    kind: str, url: str, port: int, ready: EventType, stop: EventType, profile: bool
) -> None:
    from pyinstrument import Profiler
    from pyinstrument.renderers import ConsoleRenderer

    if kind == "bare":

        async def ok(request: web.Request) -> web.Response:
            await request.read()
            return web.json_response({"status": "applied"})

        app = web.Application()
        app.router.add_post("/crm/events", ok)
    else:
        from gateway.app import create_app
        from gateway.core.http.auth import TokenRegistry
        from gateway.settings import Settings

        apply_variant(kind)
        settings = Settings(database_url=url, crm_webhook_secret=SECRET, log_level="WARNING")
        app = create_app(settings, tokens=TokenRegistry(), workers=False)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    profiler = Profiler(interval=0.0005, async_mode="disabled") if profile else None
    if profiler is not None:
        profiler.start()
    ready.set()
    await asyncio.to_thread(stop.wait)  # the loop keeps serving meanwhile
    if profiler is not None:
        profiler.stop()
        renderer = ConsoleRenderer(flat=True, time="percent_of_total", show_all=False)
        lines = profiler.output(renderer).splitlines()
        print("\n".join(line for line in lines[:40] if line.strip()), flush=True)
    await runner.cleanup()


async def load(port: int, seconds: float, concurrency: int, prefix: str) -> tuple[int, int]:
    """Keep `concurrency` requests in flight for `seconds`; returns (ok, failed)."""
    numbers = count()
    ok = failed = 0
    deadline = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal ok, failed
        while time.perf_counter() < deadline:
            n = next(numbers)
            body = json.dumps(
                {
                    "id": f"{prefix}-{n}",
                    "type": "customer.upserted",
                    "occurred_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "data": {
                        "external_id": f"{prefix}-C{n % 50_000}",
                        "name": f"Клієнт {n}",
                        "phones": [f"+38067{n % 10_000_000:07d}"],
                        "email": f"c{n}@example.com",
                        "region": "Київ",
                    },
                }
            ).encode()
            headers = {
                HEADER: sign(SECRET, body, int(time.time())),
                "Content-Type": "application/json",
            }
            async with session.post(
                f"http://127.0.0.1:{port}/crm/events", data=body, headers=headers
            ) as response:
                await response.read()
                if response.status == 200:
                    ok += 1
                else:
                    failed += 1

    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return ok, failed


def measure(
    kind: str, url: str, seconds: float, concurrency: int, run: int, profile: bool = False
) -> float:
    """Start a server of `kind`, load it, stop it; returns requests/s."""
    context = multiprocessing.get_context("spawn")
    ready, stop = context.Event(), context.Event()
    port = free_port()
    process = context.Process(target=serve, args=(kind, url, port, ready, stop, profile))
    process.start()
    try:
        if not ready.wait(30):
            raise RuntimeError(f"{kind} server did not start")
        asyncio.run(load(port, 0.5, concurrency, f"warm-{kind}-{run}-{profile}"))
        ok, failed = asyncio.run(load(port, seconds, concurrency, f"{kind}-{run}-{profile}"))
    finally:
        stop.set()
        process.join(30)
    if failed:
        print(f"  {kind}: {failed} requests failed")
    return ok / seconds


def main(argv: list[str] | None = None) -> None:
    """Run both measurements and the profile; print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile-seconds", type=float, default=3.0)
    parser.add_argument("--variant", action="append", choices=VARIANTS, default=[])
    args = parser.parse_args(argv)
    url = create_postgres_database()
    try:
        if args.variant:
            compare(url, args.variant, args.seconds, args.concurrency, args.rounds)
            return
        bares: list[float] = []
        reals: list[float] = []
        for run in range(args.rounds):
            bares.append(measure("bare", url, args.seconds, args.concurrency, run))
            reals.append(measure("app", url, args.seconds, args.concurrency, run))
            print(f"round {run + 1}: bare {bares[-1]:6.0f}/s, app {reals[-1]:6.0f}/s")
        bare, real = statistics.median(bares), statistics.median(reals)
        print(f"bare aiohttp handler : {bare:8.0f} requests/s (median)")
        print(f"POST /crm/events (PG): {real:8.0f} requests/s (median, each committed)")
        print(f"ratio                : {real / bare:8.3f}  (aim >= 0.2)")
        if args.profile_seconds > 0:
            print(f"\nprofile of the app under load ({args.profile_seconds:.0f} s, self time):")
            measure("app", url, args.profile_seconds, args.concurrency, -1, profile=True)
    finally:
        drop_postgres_database(url)


def compare(url: str, variants: list[str], seconds: float, concurrency: int, rounds: int) -> None:
    """Alternate the variants for `rounds` rounds; print each round and the medians."""
    rates: dict[str, list[float]] = {kind: [] for kind in variants}
    for run in range(rounds):
        for kind in variants:
            rates[kind].append(measure(kind, url, seconds, concurrency, run))
        figures = ", ".join(f"{kind} {rates[kind][-1]:6.0f}/s" for kind in variants)
        print(f"round {run + 1}: {figures}", flush=True)
    for kind in variants:
        print(f"{kind:15}: {statistics.median(rates[kind]):8.0f} requests/s (median)")
    print("load average: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
