"""Benchmark: two gateway instances against one, on one PostgreSQL and one Redis.

Usage: python bench/bench_scaling.py [--customers 50000] [--calls 400] [--rate 20]
       [--sockets 2] [--webhook-seconds 5] [--concurrency 32] [--messages 1200]
       [--stub-latency 0.02] [--sms-rate 100000] [--pool-size 12] [--redis-db 11]
       [--rounds 1] [--seed 7]

For each size (one instance, then two; `--rounds` alternating pairs, medians reported)
it starts real `switchboard serve` processes on their own ports (bench/_cluster.py),
all logged in to one observed PBX simulator, and measures, the load generator
splitting its work across the instances as a load balancer would:

1. screen-pop latency: calls ring extension 201; `--sockets` operators' WebSockets are
   spread round-robin over the instances; DialBegin written -> pop received, on every
   socket (with two instances one socket is on the instance that does not lead the
   pops and gets them through the Redis bus). Lost and duplicate pops are counted.
2. signed CRM webhook ingest: `--concurrency` connections in flight, split evenly over
   the instances, for `--webhook-seconds` (bench_webhook_ingest's load generator).
3. campaign sends: `--messages` due SMS contacts committed at once; every instance's
   send worker claims them (SKIP LOCKED, 200 per claim, so use several hundred per
   instance) and sends through the Twilio SDK to the local stub (own process,
   `--stub-latency` per request); the rate is over the first-to-last `sent_at` span.
   The stub's count per contact and the database's states must show each message
   sent exactly once (exit 1 otherwise, as for a lost or doubled pop).

The machine's cores are shared by the gateways, PostgreSQL, Redis, the stub and this
load generator, so the ideal ratio of 2.0 is only reachable when the work is not CPU
bound; the core count and load average are printed with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._cluster import Cluster, ClusterConfig, machine
from bench._scaling_pops import PopFigures, PopWatch, measure_pops
from bench._scaling_sends import SendFigures, StubProcess, measure_sends
from bench._telephony import LoadedDatabase, cuts, prepare_database, simulator
from bench.bench_screen_pop import EXTENSIONS, callers, specs
from bench.bench_webhook_ingest import load as webhook_load
from tests.support.databases import drop_postgres_database, redis_test_url

WARMUP_CALLS = 50


@dataclass
class SizeFigures:
    """Everything measured with one cluster size."""

    instances: int
    round: int
    leader: int | None
    pops: PopFigures
    webhooks_per_second: float
    webhook_failures: int
    sends: SendFigures
    machine: dict[str, str]


async def webhooks(
    cluster: Cluster, seconds: float, concurrency: int, tag: str
) -> tuple[float, int]:
    """Signed webhooks at `concurrency` in flight split over the instances; (req/s, failed)."""
    ports = cluster.ports
    shares = [concurrency // len(ports) + (i < concurrency % len(ports)) for i in range(len(ports))]
    await asyncio.gather(
        *(webhook_load(p, 0.5, c, f"warm-{tag}-{p}") for p, c in zip(ports, shares, strict=True))
    )
    results = await asyncio.gather(
        *(webhook_load(p, seconds, c, f"{tag}-{p}") for p, c in zip(ports, shares, strict=True))
    )
    return sum(ok for ok, _ in results) / seconds, sum(failed for _, failed in results)


async def measure_size(
    instances: int,
    round_: int,
    db: LoadedDatabase,
    stub: StubProcess,
    args: argparse.Namespace,
    work: Path,
) -> SizeFigures:
    """Start `instances` gateways and run the three workloads against them."""
    rng = random.Random(args.seed + 10 * round_ + instances)
    watch = PopWatch(args.sockets, args.in_flight)
    sim = simulator(watch.observe, args.speed)
    await sim.start()
    config = ClusterConfig(
        database_url=db.url,
        redis_url=redis_test_url().rsplit("/", 1)[0] + f"/{args.redis_db}",
        ami_port=sim.port,
        twilio_base=stub.base_url,
        sms_rate=args.sms_rate,
        pool_size=args.pool_size,
        work_dir=work,
    )
    seen: dict[str, str] = {}
    try:
        async with Cluster(config, instances) as cluster:
            await asyncio.sleep(1)  # past the login resync: calls ringing during it are adopted
            pops = await measure_pops(
                cluster,
                sim,
                watch,
                specs(callers(db, WARMUP_CALLS, rng), rng),
                specs(callers(db, args.calls, rng), rng),
                args.rate,
            )
            seen["pops"] = machine()
            per_second, failed = await webhooks(
                cluster, args.webhook_seconds, args.concurrency, f"scale{instances}r{round_}"
            )
            seen["webhooks"] = machine()
            sends = await measure_sends(
                db.url,
                stub,
                f"snd{instances}r{round_}_",
                args.messages,
                args.customers,
                timeout=max(120.0, args.messages / 5),
            )
            seen["sends"] = machine()
            leader, crashed = cluster.leader(), cluster.crashed()
        if crashed:
            raise RuntimeError(f"instances on ports {crashed} exited; logs in {work}")
    finally:
        await sim.stop()
    return SizeFigures(instances, round_, leader, pops, per_second, failed, sends, seen)


def pop_cut(figures: PopFigures, share: int) -> float:
    """The `share`th percentile of a run's pop latencies over every socket (ms)."""
    values = figures.latencies_ms
    if len(values) < 2:
        return float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[share - 1]


def report(runs: list[SizeFigures], args: argparse.Namespace) -> bool:
    """Print the table (medians over rounds) and each run's checks; True when clean."""
    one = [run for run in runs if run.instances == 1]
    two = [run for run in runs if run.instances == 2]

    def row(name: str, measure: Callable[[SizeFigures], float], better: str) -> None:
        a = statistics.median(measure(run) for run in one)
        b = statistics.median(measure(run) for run in two)
        ratio = b / a if a else float("nan")
        print(f"  {name:<34} {a:>10.1f} {b:>10.1f} {ratio:>8.2f}x  ({better} is better)")

    rounds = f", median of {args.rounds} alternating rounds" if args.rounds > 1 else ""
    print(f"\nscaling: 1 vs 2 `switchboard serve` instances, one PostgreSQL and Redis{rounds}")
    print(
        f"  {args.customers:,} customers; pops: {args.calls} calls at {args.rate:g}/s,"
        f" {args.sockets} operator sockets; webhooks: {args.concurrency} in flight for"
        f" {args.webhook_seconds:g} s; sends: {args.messages:,} SMS, stub latency"
        f" {args.stub_latency * 1000:.0f} ms, shared rate limit {args.sms_rate:g}/s;"
        f" {args.pool_size} (+{args.pool_size // 2}) database connections per instance"
    )
    print(f"  {'':<34} {'one':>10} {'two':>10} {'two/one':>9}")
    row("screen-pop p50 (ms)", lambda run: pop_cut(run.pops, 50), "lower")
    row("screen-pop p99 (ms)", lambda run: pop_cut(run.pops, 99), "lower")
    row("webhook ingest (req/s)", lambda run: run.webhooks_per_second, "higher")
    row("campaign sends (SMS/s)", lambda run: run.sends.rate, "higher")
    clean = True
    for size in runs:
        print(
            f"\n  {size.instances} instance(s), round {size.round + 1};"
            f" pop leader on :{size.leader}"
        )
        print(
            "    load while measuring: " + "; ".join(f"{k}: {v}" for k, v in size.machine.items())
        )
        for name, values in size.pops.per_socket_ms.items():
            print(f"    pops, {name:<22} {cuts(values)}")
        print(
            f"    pops lost {size.pops.lost}, duplicate {size.pops.duplicates},"
            f" slot stalls {size.pops.stalls}; webhooks {size.webhooks_per_second:.0f}/s,"
            f" failures {size.webhook_failures}"
        )
        sends = size.sends
        print(
            f"    sends: {sends.rate:.1f}/s, {dict(sends.statuses)} in"
            f" {sends.drained_seconds:.2f} s from commit, by worker"
            f" {dict(sends.senders.most_common())}"
        )
        print(
            f"    stub received: once {sends.received_once}, twice or more"
            f" {sends.received_twice_or_more}, never {sends.never_received}"
            f"  -> {'exactly once' if sends.exactly_once else 'NOT EXACTLY ONCE'}"
        )
        clean = clean and sends.exactly_once and not size.pops.lost and not size.pops.duplicates
    print(
        f"\n  {machine()}. Ideal scaling is 2.0x for throughput and 1.0x for latency, but"
        "\n  both instances, PostgreSQL, Redis, the stub and this load generator share these"
        "\n  cores: on a machine this size the figures show contention, not the ceiling."
    )
    return clean


async def run(db: LoadedDatabase, args: argparse.Namespace) -> bool:
    """Both sizes, `--rounds` times, with one stub process; then the report."""
    stub = await asyncio.to_thread(StubProcess, args.stub_latency)
    runs: list[SizeFigures] = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench-scaling-") as work:
            for round_ in range(args.rounds):  # alternating, so drifting load hits both
                for instances in (1, 2):
                    runs.append(await measure_size(instances, round_, db, stub, args, Path(work)))
    finally:
        await asyncio.to_thread(stub.stop)
    return report(runs, args)


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, load the database, measure both sizes, drop the database."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--customers", type=int, default=50_000)
    parser.add_argument("--calls", type=int, default=400, help="measured calls per size")
    parser.add_argument("--rate", type=float, default=20.0, help="calls started per second")
    parser.add_argument("--in-flight", type=int, default=4, help="pops outstanding at most")
    parser.add_argument("--speed", type=float, default=10.0, help="simulated s per real s")
    parser.add_argument("--sockets", type=int, default=2, help="operator WebSockets")
    parser.add_argument("--webhook-seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=32, help="webhooks in flight")
    parser.add_argument("--messages", type=int, default=1_200, help="SMS per size")
    parser.add_argument("--stub-latency", type=float, default=0.02, help="Twilio stub, s")
    parser.add_argument("--sms-rate", type=float, default=100_000.0, help="shared limit, /s")
    parser.add_argument(
        "--pool-size", type=int, default=12, help="database connections per instance"
    )
    parser.add_argument("--redis-db", type=int, default=11, help="Redis database index")
    parser.add_argument("--rounds", type=int, default=1, help="one-two pairs, alternating")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    db = prepare_database(args.customers, args.seed, EXTENSIONS)
    try:
        clean = asyncio.run(run(db, args))
    finally:
        drop_postgres_database(db.url)
    if not clean:
        print("FAILED: a pop or a message was lost or doubled (see above)")
        raise SystemExit(1)


if __name__ == "__main__":
    main()
