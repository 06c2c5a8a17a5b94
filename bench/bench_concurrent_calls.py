"""Benchmark: 1,000 concurrent simulated calls against the gateway on PostgreSQL.

Usage: python bench/bench_concurrent_calls.py [--calls 1000] [--customers 1000000]
       [--speed 2] [--talk 20-60] [--redis] [--seed 7]

All calls start within ~1 s (real), ring 2-8 s and talk `--talk` seconds (simulated; at
`--speed` 2 the run takes ~35 s real). Mix: answered, missed, busy, blind transfers and
two-extension queue calls; callers are customers, shared numbers and unknown numbers.
The gateway (create_app, workers on) runs in a child process so psutil can measure its
CPU share alone; the simulator runs here and counts what it writes.

Printed: records written per second (first to last ended record), how long after a
call's last AMI event its record was written, whether every call got exactly one record
(and the disposition and talk time it should have), the gateway's CPU share and the AMI
event rate.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path

import asyncpg
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._telephony import (
    Fields,
    GatewayConfig,
    GatewayProcess,
    LoadedDatabase,
    asyncpg_dsn,
    cuts,
    gateway_metric,
    prepare_database,
    simulator,
    wait_ami_connected,
)
from bench._telephony import field as header
from bench.bench_phone_lookup import national
from bench.bench_webhook_ingest import free_port
from gateway.calls.ids import call_id_for
from gateway.pbx_simulator import CallSpec
from tests.support.databases import drop_postgres_database, redis_test_url

EXPECTED = {
    "answered": "answered",
    "blind_transfer": "answered",
    "missed": "no_answer",
    "busy": "busy",
}


def extensions_for(calls: int) -> list[str]:
    """One operator per call (a center with 1,000 calls up has 1,000 operators)."""
    return [str(10_000 + i) for i in range(calls + 10)]


def plan(db: LoadedDatabase, args: argparse.Namespace) -> list[CallSpec]:
    """The calls: kinds, callers, start times within 1 s real, ring and talk times."""
    rng = random.Random(args.seed + 2)
    low, high = (float(x) for x in args.talk.split("-"))
    exts = extensions_for(args.calls)
    calls = []
    for i in range(args.calls):
        roll = rng.random()
        kind = (
            "answered"
            if roll < 0.80
            else "missed"
            if roll < 0.90
            else "busy"
            if roll < 0.95
            else "blind_transfer"
        )
        who = rng.random()
        if who < 0.80:
            caller = f"+380{rng.choice(db.known)}"
        elif who < 0.90 and db.shared:
            caller = rng.choice(db.shared)
        else:
            caller = f"+380{national(rng)}"
        queue = kind == "answered" and rng.random() < 0.10
        extensions = (exts[i], exts[(i + 1) % args.calls]) if queue else (exts[i],)
        calls.append(
            CallSpec(
                kind=kind,
                caller=caller,
                caller_name=f"bench-{i}",  # finds the spec again from the AMI events
                extensions=extensions,
                answered_by=exts[i] if kind != "busy" else None,
                ring_seconds=rng.uniform(2, 8),
                talk_seconds=rng.uniform(low, high),
                hangup_by=rng.choice(("caller", "operator")),
                start_at=rng.uniform(0, 1) * args.speed,  # simulated: within 1 s real
                transfer_to=exts[-1 - i % 10] if kind == "blind_transfer" else None,
                talk_after_transfer=5.0,
            )
        )
    return calls


@dataclass
class Observed:
    """What the simulator wrote: events per second, calls by Linkedid, last event times."""

    per_second: Counter[int] = field(default_factory=Counter)
    spec_of: dict[str, int] = field(default_factory=dict)  # Linkedid -> index in the plan
    last_event: dict[str, float] = field(default_factory=dict)  # Linkedid -> wall clock
    dial_begin: dict[str, float] = field(default_factory=dict)  # call id -> perf_counter
    events: int = 0

    def __call__(self, name: str, fields: Fields) -> None:
        """Simulator hook, called after each event is written."""
        now = time.time()
        self.events += 1
        self.per_second[int(now)] += 1
        linkedid = header(fields, "Linkedid") or header(fields, "LinkedID")
        if not linkedid:
            return
        self.last_event[linkedid] = now
        if name == "DialBegin":
            self.dial_begin.setdefault(call_id_for(linkedid), time.perf_counter())
        caller_name = header(fields, "CallerIDName")
        if name == "Newchannel" and caller_name.startswith("bench-"):
            self.spec_of.setdefault(linkedid, int(caller_name.removeprefix("bench-")))


class CpuSampler:
    """The gateway process's CPU share (100 % = one core), sampled every second."""

    def __init__(self, pid: int) -> None:
        """Start counting from now."""
        self.process = psutil.Process(pid)
        self.samples: list[float] = []
        self.process.cpu_percent(None)
        self._times = self.process.cpu_times()
        self._wall = time.monotonic()

    async def run(self) -> None:
        """Sample until cancelled."""
        while True:
            await asyncio.sleep(1)
            self.samples.append(self.process.cpu_percent(None))

    def average(self) -> float:
        """CPU seconds used / wall seconds since the start, in percent."""
        times = self.process.cpu_times()
        used = times.user + times.system - self._times.user - self._times.system
        return float(100 * used / (time.monotonic() - self._wall))


async def wait_records(url: str, expected: int, quiet_for: float = 15.0) -> None:
    """Until `expected` calls are ended, or nothing changed for `quiet_for` seconds."""
    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        last, changed = -1, time.monotonic()
        while time.monotonic() - changed < quiet_for:
            ended = await connection.fetchval("SELECT count(*) FROM calls WHERE state = 'ended'")
            if ended >= expected:
                return
            if ended != last:
                last, changed = ended, time.monotonic()
            await asyncio.sleep(0.5)
    finally:
        await connection.close()


async def check(url: str, observed: Observed, calls: list[CallSpec]) -> None:
    """Compare the stored rows with the calls played; print rates, lags and mismatches."""
    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        rows = await connection.fetch(
            "SELECT pbx_linkedid, state, disposition, talk_seconds, updated_at, details FROM calls"
        )
    finally:
        await connection.close()
    per_linkedid = Counter(row["pbx_linkedid"] for row in rows)
    started = set(observed.spec_of)
    ended = [row for row in rows if row["state"] == "ended"]
    missing = started - set(per_linkedid)
    not_ended = [row for row in rows if row["state"] != "ended"]
    extra = [row for row in rows if row["pbx_linkedid"] not in started]
    duplicated = sum(1 for n in per_linkedid.values() if n > 1)
    print(
        f"  calls started {len(started):,} (planned {len(calls):,}); rows {len(rows):,},"
        f" ended {len(ended):,}; lost {len(missing)}, never ended {len(not_ended)},"
        f" duplicated {duplicated}, rows for unknown calls {len(extra)}"
    )
    wrong: Counter[str] = Counter()
    examples: list[str] = []
    lags: dict[str, list[float]] = defaultdict(list)
    for row in ended:
        linkedid = row["pbx_linkedid"]
        written = row["updated_at"].replace(tzinfo=UTC).timestamp()
        index = observed.spec_of.get(linkedid)
        if index is None or linkedid not in observed.last_event:
            continue
        spec = calls[index]
        lag = (written - observed.last_event[linkedid]) * 1000
        lags["all"].append(lag)
        lags["answered" if EXPECTED[spec.kind] == "answered" else "missed/busy"].append(lag)
        if row["disposition"] != EXPECTED[spec.kind]:
            wrong[f"{spec.kind}->{row['disposition']}"] += 1
            if len(examples) < 3:
                examples.append(f"{spec} -> {row['talk_seconds']} s, {row['details']}")
        elif spec.kind == "answered" and abs((row["talk_seconds"] or 0) - spec.talk_seconds) > 1.5:
            wrong["answered: talk_seconds off by > 1.5 s"] += 1
    if len(ended) > 1:
        times = sorted(row["updated_at"] for row in ended)
        span = (times[-1] - times[0]).total_seconds()
        print(
            f"  records written: {len(ended):,} in {span:.1f} s (first to last ended record)"
            f" = {(len(ended) - 1) / span:.0f} records/s"
            f"; busiest second {max(Counter(t.replace(microsecond=0) for t in times).values())}"
        )
    print("  record written after the call's last AMI event:")
    for kind, values in sorted(lags.items()):
        print(f"    {kind:<12} {cuts(values)}")
    print(f"  records that disagree with the call played: {dict(wrong) or 'none'}")
    for example in examples:
        print(f"    e.g. {example}")


async def measure(db: LoadedDatabase, args: argparse.Namespace) -> None:
    """Run the gateway, play the calls, measure."""
    calls = plan(db, args)
    trace_file = Path(tempfile.mkstemp(prefix="calls-trace-", suffix=".json")[1])
    observed = Observed()
    sim = simulator(observed, args.speed)
    await sim.start()
    config = GatewayConfig(
        db.url,
        free_port(),
        sim.port,
        redis_url=redis_test_url() if args.redis else None,
        ordered_events=args.ordered_events,
        trace_path=str(trace_file),
    )
    try:
        async with GatewayProcess(config) as gateway:
            await wait_ami_connected(config.http_port)
            await asyncio.sleep(1)  # past the login resync, so no call is adopted
            sampler = CpuSampler(gateway.pid)
            sampling = asyncio.create_task(sampler.run())
            began = time.time()
            for spec in calls:
                sim.start_call(spec)
            await sim.wait_idle()
            played = time.time() - began
            await wait_records(db.url, len(calls))
            settled = time.time() - began
            sampling.cancel()
            cpu_average = sampler.average()
            received = await gateway_metric(config.http_port, "switchboard_ami_events_total")
            reconnects = await gateway_metric(config.http_port, "switchboard_ami_reconnects_total")
        trace = json.loads(await asyncio.to_thread(trace_file.read_text) or "[]")
    finally:
        await sim.stop()
        await asyncio.to_thread(trace_file.unlink, missing_ok=True)
    seconds = sorted(observed.per_second.items())
    bus = "Redis" if args.redis else "in-memory"
    print(
        f"\n{len(calls):,} concurrent calls (all started within 1 s), talk {args.talk} s"
        f" simulated at speed {args.speed:g}; {args.customers:,} customers on PostgreSQL,"
        f" {bus} bus, gateway in a child process"
        + (", EXPERIMENT: one event queue" if args.ordered_events else "")
    )
    print(f"  calls played in {played:.1f} s; all records in by {settled:.1f} s")
    print(
        f"  AMI events written: {observed.events:,}, {observed.events / played:.0f}/s on average,"
        f" peak {max(n for _, n in seconds):,}/s (first second {seconds[0][1]:,});"
        f" the gateway counted {received:,.0f} tracked events"
    )
    print(
        f"  gateway CPU (100 % = one core): average {cpu_average:.0f} %,"
        f" peak 1-s sample {max(sampler.samples, default=0):.0f} %"
    )
    print(f"  AMI reconnects during the run: {reconnects:.0f}")
    published: dict[str, float] = {}  # call id -> its first pop (transfers pop again later)
    for stage, key, _, ended in trace:
        if stage == "publish" and key.endswith(":screen_pop"):
            published.setdefault(key.removesuffix(":screen_pop"), ended)
    pop_lags = [
        (published[cid] - written) * 1000
        for cid, written in observed.dial_begin.items()
        if cid in published
    ]
    print(
        f"  first screen-pop of a call published after its first DialBegin: {cuts(pop_lags)}"
        f"; calls without a pop: {len(observed.dial_begin) - len(pop_lags)}"
    )
    await check(db.url, observed, calls)


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, load the database, measure, drop the database."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=1_000)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--speed", type=float, default=2.0, help="simulated s per real s")
    parser.add_argument("--talk", default="20-60", help="talk seconds (simulated), low-high")
    parser.add_argument("--redis", action="store_true", help="the Redis bus (else in-memory)")
    parser.add_argument(
        "--ordered-events",
        action="store_true",
        help="experiment: the gateway handles all AMI events in one queue (see _telephony)",
    )
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    db = prepare_database(args.customers, args.seed, extensions_for(args.calls))
    try:
        asyncio.run(measure(db, args))
    finally:
        drop_postgres_database(db.url)


if __name__ == "__main__":
    main()
