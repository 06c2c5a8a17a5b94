"""Benchmark: screen-pop latency, from the simulator writing DialBegin for extension 201
to the operator's WebSocket client receiving the `screen_pop`.

Usage: python bench/bench_screen_pop.py [--customers 1000000] [--calls 2000] [--rate 40]
       [--in-flight 4] [--speed 10] [--redis] [--seed 7] [--keep | --database-url URL]

PostgreSQL gets CUSTOMERS customers (bench_phone_lookup's COPY loader) and 50 agents
(extensions 201-250). The whole gateway (create_app, workers on, AMI pointed at the
simulator) runs in a child process: it has an event loop and a CPU of its own as in
production, and the simulator and the WebSocket client (both here, in one loop) cost it
nothing; both hops are real loopback TCP. Calls ring 201 at `--rate` per second, with at
most `--in-flight` pops outstanding; they then talk and hang up, so records and call
updates go through the same event queue as the pops. Callers: known customers (E.164 and
national forms), numbers two customers share, and unknown numbers.

The gateway child wraps the pop path's steps with timers (a benchmark-only hook in
bench/_telephony.py), which gives the breakdown; `time.perf_counter()` is
CLOCK_MONOTONIC on Linux, so the two processes' timestamps compare directly.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import aiohttp
import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._telephony import (
    ADMIN_TOKEN,
    Fields,
    GatewayConfig,
    GatewayProcess,
    LoadedDatabase,
    ObservedSimulator,
    add_database_options,
    asyncpg_dsn,
    cuts,
    field,
    loaded_database,
    simulator,
    wait_ami_connected,
)
from bench.bench_phone_lookup import national
from bench.bench_webhook_ingest import free_port
from gateway.calls.ids import call_id_for
from gateway.pbx_simulator import CallSpec
from tests.support.databases import redis_test_url

EXTENSIONS = [str(ext) for ext in range(201, 251)]
WATCHED = "201"
WARMUP = 100


def callers(db: LoadedDatabase, count: int, rng: random.Random) -> list[str]:
    """Caller numbers as a trunk sends them: mostly customers, some shared, some unknown."""
    numbers = []
    for _ in range(count):
        roll = rng.random()
        if roll < 0.70:
            numbers.append(f"+380{rng.choice(db.known)}")
        elif roll < 0.80:
            numbers.append(f"0{rng.choice(db.known)}")
        elif roll < 0.88 and db.shared:
            numbers.append(rng.choice(db.shared))
        else:
            numbers.append(f"+380{national(rng)}")  # almost surely nobody's
    return numbers


def specs(numbers: list[str], rng: random.Random) -> list[CallSpec]:
    """One call per number, ringing 201; most are answered, some missed."""
    return [
        CallSpec(
            kind="answered" if rng.random() < 0.85 else "missed",
            caller=number,
            extensions=(WATCHED,),
            ring_seconds=rng.uniform(1, 4),
            talk_seconds=rng.uniform(5, 40),
            hangup_by=rng.choice(("caller", "operator")),
        )
        for number in numbers
    ]


class Run:
    """The driving side: DialBegin write times, pop arrival times, pacing."""

    def __init__(self, in_flight: int) -> None:
        """Nothing written or received yet."""
        self.written: dict[str, float] = {}
        self.received: dict[str, float] = {}
        self.matches: Counter[str] = Counter()
        self.slots = asyncio.Semaphore(in_flight)
        self.stalls = 0
        self.duplicates = 0
        self.first_start = self.last_start = 0.0
        self.pending: set[str] = set()  # DialBegin written, no pop yet
        self.all_in = asyncio.Event()

    def observe(self, name: str, fields: Fields) -> None:
        """Simulator hook: note when DialBegin towards 201 went onto the socket."""
        if name == "DialBegin" and field(fields, "DestChannel").startswith(f"PJSIP/{WATCHED}-"):
            call_id = call_id_for(field(fields, "Linkedid"))
            self.written[call_id] = time.perf_counter()
            self.pending.add(call_id)
            self.all_in.clear()

    async def listen(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        """Note when each screen_pop arrives and free a slot for the next call."""
        async for message in socket:
            if message.type is not aiohttp.WSMsgType.TEXT:
                continue
            arrived = time.perf_counter()
            data = json.loads(message.data)
            if data["type"] == "screen_pop":
                if data["call_id"] in self.received:
                    self.duplicates += 1
                    continue
                self.received[data["call_id"]] = arrived
                self.pending.discard(data["call_id"])
                if not self.pending:
                    self.all_in.set()
                self.matches[data["match"]] += 1
                self.slots.release()

    async def play(self, sim: ObservedSimulator, calls: list[CallSpec], rate: float) -> None:
        """Start calls at `rate`/s, never more than the slots allow; wait for the pops."""
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        self.first_start = time.perf_counter()
        for spec in calls:
            try:
                await asyncio.wait_for(self.slots.acquire(), 10)
            except TimeoutError:
                self.stalls += 1
            delay = next_at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            next_at = max(next_at + 1 / rate, loop.time() - 1)
            sim.start_call(spec)
        self.last_start = time.perf_counter()
        await asyncio.sleep(0.1)  # the last call's DialBegin
        if self.pending:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.all_in.wait(), 10)


Span = tuple[float, float]  # (start, end) in perf_counter seconds


def breakdown(
    trace: list[tuple[str, str, float, float]], run: Run, measured: list[str]
) -> tuple[dict[str, list[float]], Counter[str]]:
    """Per-pop stage durations (ms) from the gateway's trace and the two ends, and which
    AMI event's handler made each pop."""
    spans: dict[tuple[str, str], tuple[float, float]] = {}
    inserts = []
    triggers: dict[str, tuple[str, float]] = {}
    for stage, key, started, ended in trace:
        spans.setdefault((stage, key), (started, ended))
        if stage == "insert_started":
            inserts.append((ended - started) * 1000)
        if stage.startswith("trigger "):
            triggers.setdefault(key, (stage.removeprefix("trigger "), started))
    made_by: Counter[str] = Counter()
    stages: dict[str, list[float]] = defaultdict(list)
    for cid in measured:
        received = spans.get(("received", cid))
        pop = spans.get(("pop", cid))
        publish = spans.get(("publish", f"{cid}:screen_pop"))
        if received is None or pop is None or publish is None or cid not in run.received:
            continue
        stages["1 AMI write -> parsed in gateway"].append((received[0] - run.written[cid]) * 1000)
        stages["2 parsed -> pop starts (queue)"].append((pop[0] - received[0]) * 1000)
        if cid in triggers:
            made_by[triggers[cid][0]] += 1
            waited = (triggers[cid][1] - received[0]) * 1000
            stages["2a parsed -> pop's handler starts"].append(waited)
        _handler_stages(stages, spans, cid, received)
        _delivery_stages(stages, spans, run, cid, publish)
    stages["(call row insert, per call)"] = inserts
    window = (min(run.written[c] for c in measured), max(run.received.values()))
    _background_stages(stages, trace, window)
    return stages, made_by


def _handler_stages(
    stages: dict[str, list[float]], spans: dict[tuple[str, str], Span], cid: str, received: Span
) -> None:
    """Inside the pop's handler: lookup, card, the read session, the warm task, the wait."""
    for name, stage in (("3 customer lookup", "lookup"), ("4 card build", "card")):
        span = spans.get((stage, cid))
        if span is not None:
            stages[name].append((span[1] - span[0]) * 1000)
    for name, stage in (
        ("3o open read session", "session_open"),
        ("3c close it", "session_close"),
    ):
        span = spans.get((stage, cid))
        if span is not None:
            stages[name].append((span[1] - span[0]) * 1000)
    warm = spans.get(("warm", cid))
    if warm is not None:
        stages["3w warm task: session+lookup+card"].append((warm[1] - warm[0]) * 1000)
        stages["3x warm task starts after parse"].append((warm[0] - received[0]) * 1000)
    build = spans.get(("build", cid))
    if build is not None:
        stages["5 pop waits for lookup+card"].append((build[1] - build[0]) * 1000)


def _delivery_stages(
    stages: dict[str, list[float]],
    spans: dict[tuple[str, str], Span],
    run: Run,
    cid: str,
    publish: Span,
) -> None:
    """From the bus publish to the client reading the frame."""
    stages["6 publish on the bus"].append((publish[1] - publish[0]) * 1000)
    sent = spans.get(("ws_sent", cid))
    if sent is None:
        stages["7 bus -> WebSocket -> client"].append((run.received[cid] - publish[1]) * 1000)
    else:
        stages["7a bus -> frame written (gateway)"].append((sent[1] - publish[1]) * 1000)
        stages["7b frame written -> client reads"].append((run.received[cid] - sent[1]) * 1000)


def _background_stages(
    stages: dict[str, list[float]], trace: list[tuple[str, str, float, float]], window: Span
) -> None:
    """What a pop may wait behind while the calls run: GC pauses, loop lag, raw flushes."""
    others = {"loop_lag": "(gateway loop lag, 5 ms probe)", "raw_flush": "(raw AMI event flush)"}
    for stage, _key, started, ended in trace:
        if not window[0] <= started <= window[1]:
            continue  # start-up and shutdown are not what a pop waits behind
        if stage.startswith("gc"):
            stages[f"(GC pause, generation {stage[2:]})"].append((ended - started) * 1000)
        elif stage in others:
            stages[others[stage]].append((ended - started) * 1000)


async def recorded(url: str, call_ids: list[str]) -> list[dict[str, object]]:
    """What the gateway stored for some calls (to see why they got no pop)."""
    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        rows = await connection.fetch(
            "SELECT id, state, match, disposition, extension, details FROM calls"
            " WHERE id = any($1::text[])",
            call_ids,
        )
    finally:
        await connection.close()
    return [dict(row) for row in rows]


async def measure(db: LoadedDatabase, args: argparse.Namespace) -> None:
    """Start the simulator, the gateway and the socket; play the calls; print figures."""
    rng = random.Random(args.seed + 1)
    run = Run(args.in_flight)
    sim = simulator(run.observe, args.speed)
    await sim.start()
    trace_file = Path(tempfile.mkstemp(prefix="screen-pop-trace-", suffix=".json")[1])
    config = GatewayConfig(
        db.url,
        free_port(),
        sim.port,
        redis_url=redis_test_url() if args.redis else None,
        trace_path=str(trace_file),
    )
    try:
        async with GatewayProcess(config):
            await wait_ami_connected(config.http_port)
            await asyncio.sleep(1)  # past the login resync: calls ringing during it are adopted
            async with aiohttp.ClientSession() as http:
                socket = await http.ws_connect(
                    f"http://127.0.0.1:{config.http_port}/ws/agents/{WATCHED}",
                    headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                )
                assert (await socket.receive_json(timeout=5))["type"] == "hello"
                listener = asyncio.create_task(run.listen(socket))
                await run.play(sim, specs(callers(db, WARMUP, rng), rng), args.rate)
                warm = set(run.written)
                await run.play(sim, specs(callers(db, args.calls, rng), rng), args.rate)
                elapsed = run.last_start - run.first_start
                await sim.wait_idle()
                await asyncio.sleep(1)  # the last records and call updates
                await socket.close()
                listener.cancel()
        trace = json.loads(await asyncio.to_thread(trace_file.read_text) or "[]")
    finally:
        await sim.stop()
        await asyncio.to_thread(trace_file.unlink, missing_ok=True)
    measured = [cid for cid in run.written if cid not in warm]
    latencies = [(run.received[c] - run.written[c]) * 1000 for c in measured if c in run.received]
    lost = sum(1 for c in measured if c not in run.received)
    lost_warm = sum(1 for c in warm if c not in run.received)
    bus = "Redis" if args.redis else "in-memory"
    print(
        f"\nscreen-pop latency, DialBegin written -> screen_pop received over WebSocket"
        f"\n  {len(measured):,} calls in {elapsed:.1f} s ({len(measured) / elapsed:.0f} calls/s,"
        f" <= {args.in_flight} pops outstanding), {args.customers:,} customers on PostgreSQL,"
        f" {bus} bus, gateway in a child process"
    )
    print(f"  end to end  {cuts(latencies)}   (aim p99 <= 10 ms)")
    print(
        f"  pops lost: {lost} (warm-up: {lost_warm})   duplicate pops: {run.duplicates}"
        f"   slot stalls (10 s without a pop): {run.stalls}"
    )
    print(f"  matches (all pops incl. warm-up): {dict(sorted(run.matches.items()))}")
    missing = [c for c in run.written if c not in run.received]
    if missing:
        print(f"  calls without a pop, as recorded: {await recorded(db.url, missing[:10])}")
    stages, made_by = breakdown(trace, run, measured)
    print("  breakdown (gateway trace; stages 3-6 run inside the gateway):")
    for name, values in sorted(stages.items()):
        print(f"    {name:<34} {cuts(values)}")
    print(f"  pops made by the handler of: {dict(made_by.most_common())}")
    opened = sum(1 for stage, *_ in trace if stage == "db_connect")
    print(f"  database connections opened by the gateway: {opened}")
    cpu = next((ended for stage, _, _, ended in trace if stage == "cpu"), None)
    if cpu is not None:
        calls = len(run.written)
        print(
            f"  gateway CPU: {cpu:.1f} s in all (start-up included),"
            f" {cpu / calls * 1000:.1f} ms per call over {calls:,} calls"
        )


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, load the database, measure, drop the database."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--calls", type=int, default=2_000)
    parser.add_argument("--rate", type=float, default=40.0, help="calls started per second")
    parser.add_argument("--in-flight", type=int, default=4, help="pops outstanding at most")
    parser.add_argument("--speed", type=float, default=10.0, help="simulated s per real s")
    parser.add_argument("--redis", action="store_true", help="the Redis bus (else in-memory)")
    add_database_options(parser)
    args = parser.parse_args(argv)
    with loaded_database(args, EXTENSIONS) as db:
        asyncio.run(measure(db, args))


if __name__ == "__main__":
    main()
