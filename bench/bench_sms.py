"""Benchmark: SMS through SmsChannel → the official Twilio SDK → a local Twilio stub.

Usage: python bench/bench_sms.py [--messages 10000] [--concurrency 100] [--latency 0.05]
                                 [--rate 100] [--rate-messages 2000]

The stub (tests/support/twilio_stub.py) runs in its own process so its CPU does not
count against ours, answering every create after `--latency` seconds. Two runs:
1. throughput: `--messages` sends with `--concurrency` in flight, no limit;
2. rate limit: `--rate-messages` sends with the same concurrency behind the pipeline's
   token bucket (gateway/messages/ratelimit.py) at `--rate` per second: how close the
   achieved rate stays to the limit, overall and per one-second window.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import sys
import time
from collections import Counter
from multiprocessing.connection import Connection
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adapters.twilio import TwilioAdapter
from channels.base import Outgoing
from channels.sms import SmsChannel
from gateway.messages.ratelimit import RateLimiter, TokenBucket, Unlimited
from gateway.settings import Settings
from tests.support.twilio_stub import TwilioStub

ACCOUNT = "AC" + "b" * 32
TOKEN = "bench-token"
TEXT = "Нагадуємо: платіж 1 250,00 грн до 05.12. Дякуємо, що ви з нами!"


def _serve(latency: float, pipe: Connection) -> None:
    async def main() -> None:
        stub = TwilioStub(ACCOUNT, TOKEN, latency=latency, record_requests=False)
        pipe.send(await stub.start())
        await asyncio.get_running_loop().run_in_executor(None, pipe.recv)  # until told
        await stub.close()

    asyncio.run(main())


async def run(
    channel: SmsChannel, count: int, concurrency: int, limiter: RateLimiter
) -> tuple[float, list[float], list[float]]:
    """Send `count` messages; returns elapsed seconds, latencies, request start times."""
    latencies: list[float] = []
    started: list[float] = []
    next_index = 0
    start = time.perf_counter()

    async def worker() -> None:
        nonlocal next_index
        while next_index < count:
            index = next_index
            next_index += 1
            await limiter.acquire()
            began = time.perf_counter()
            contact = f"msg_bench{index:08d}"
            await channel.send(
                Outgoing(contact, f"bench:{contact}", "sms", f"+38067{index:07d}", TEXT)
            )
            done = time.perf_counter()
            latencies.append(done - began)
            started.append(began - start)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - start, latencies, started


def _pct(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def bench(args: argparse.Namespace, base_url: str) -> None:
    """Both runs, printed."""
    settings = Settings(
        twilio_from="+15005550006",
        public_url="https://switchboard.example.com",
        database_url="sqlite+aiosqlite://",
    )
    adapter = TwilioAdapter(ACCOUNT, TOKEN, api_base=base_url, max_connections=args.concurrency)
    channel = SmsChannel(adapter, settings)
    try:
        await run(channel, min(200, args.messages), args.concurrency, Unlimited())  # warm-up
        elapsed, latencies, _ = await run(channel, args.messages, args.concurrency, Unlimited())
        print(
            f"throughput: {args.messages} SMS, {args.concurrency} in flight, "
            f"stub latency {args.latency * 1000:.0f} ms"
        )
        print(f"  {args.messages / elapsed:8.0f} messages/s  ({elapsed:.2f} s)")
        print(
            f"  latency p50 {statistics.median(latencies) * 1000:.1f} ms, "
            f"p95 {_pct(latencies, 0.95) * 1000:.1f} ms, "
            f"p99 {_pct(latencies, 0.99) * 1000:.1f} ms"
        )

        bucket = TokenBucket(args.rate)  # the pipeline's default burst: rate / 10
        elapsed, _, started = await run(channel, args.rate_messages, args.concurrency, bucket)
        span = max(started)
        overall = (len(started) - 1) / span if span else float("nan")
        # Requests leaving per whole second; the first second also spends the burst.
        per_second = Counter(int(t) for t in started)
        windows = [per_second[s] for s in range(1, int(span))]
        print(f"rate limit {args.rate}/s: {args.rate_messages} SMS in {elapsed:.2f} s")
        print(
            f"  requests left at {overall:.1f}/s overall "
            f"({(overall / args.rate - 1) * 100:+.1f}% of the limit)"
        )
        if windows:
            worst = max(abs(w / args.rate - 1) for w in windows)
            print(
                f"  per 1 s window (requests sent): min {min(windows)}, max {max(windows)}, "
                f"mean {statistics.mean(windows):.1f}, worst deviation {worst * 100:.1f}% "
                f"over {len(windows)} windows"
            )
    finally:
        await channel.close()


def main() -> None:
    """Parse arguments, start the stub process, run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--rate-messages", type=int, default=2_000)
    args = parser.parse_args()
    parent, child = multiprocessing.Pipe()
    server = multiprocessing.Process(target=_serve, args=(args.latency, child), daemon=True)
    server.start()
    try:
        base_url = parent.recv()
        asyncio.run(bench(args, base_url))
    finally:
        parent.send("stop")
        server.join(timeout=5)


if __name__ == "__main__":
    main()
