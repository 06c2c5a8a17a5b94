"""The screen-pop workload of the scaling benchmark: operators' WebSockets spread over
every instance, calls ringing one extension, latency from the simulator writing
DialBegin to each socket receiving the pop.

Every socket must get every pop exactly once: with two instances only the leader
publishes, so a socket on the other instance sees the pop only through the Redis bus.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field

import aiohttp

from bench._cluster import Cluster
from bench._telephony import ADMIN_TOKEN, Fields, ObservedSimulator
from bench._telephony import field as header
from gateway.calls.ids import call_id_for
from gateway.pbx_simulator import CallSpec

WATCHED = "201"  # the extension every call rings (bench_screen_pop's choice)
LAST_POP_WAIT = 10.0  # seconds to wait for pops still missing after the last call


@dataclass
class PopFigures:
    """What one run measured, over every socket."""

    latencies_ms: list[float] = field(default_factory=list)
    per_socket_ms: dict[str, list[float]] = field(default_factory=dict)
    lost: int = 0
    duplicates: int = 0
    stalls: int = 0
    calls: int = 0
    elapsed: float = 0.0


class PopWatch:
    """DialBegin write times from the simulator, arrival times per socket, pacing."""

    def __init__(self, sockets: int, in_flight: int) -> None:
        """Nothing written or received yet; `in_flight` calls may await their pops."""
        self.sockets = sockets
        self.written: dict[str, float] = {}
        self.received: list[dict[str, float]] = [{} for _ in range(sockets)]
        self.duplicates = 0
        self.stalls = 0
        self.slots = asyncio.Semaphore(in_flight)
        self.waiting: dict[str, int] = {}  # call id -> sockets still without its pop
        self.all_in = asyncio.Event()

    def observe(self, name: str, fields: Fields) -> None:
        """Simulator hook: note when DialBegin towards the watched extension was written."""
        if name == "DialBegin" and header(fields, "DestChannel").startswith(f"PJSIP/{WATCHED}-"):
            call_id = call_id_for(header(fields, "Linkedid"))
            self.written[call_id] = time.perf_counter()
            self.waiting[call_id] = self.sockets
            self.all_in.clear()

    async def listen(self, index: int, socket: aiohttp.ClientWebSocketResponse) -> None:
        """Note each pop's arrival on socket `index`; a call's slot frees once all have it."""
        arrivals = self.received[index]
        async for message in socket:
            if message.type is not aiohttp.WSMsgType.TEXT:
                continue
            arrived = time.perf_counter()
            data = json.loads(message.data)
            if data["type"] != "screen_pop":
                continue
            call_id = data["call_id"]
            if call_id in arrivals:
                self.duplicates += 1
                continue
            arrivals[call_id] = arrived
            left = self.waiting.get(call_id, 0) - 1
            if left > 0:
                self.waiting[call_id] = left
                continue
            self.waiting.pop(call_id, None)
            self.slots.release()
            if not self.waiting:
                self.all_in.set()

    async def play(self, sim: ObservedSimulator, calls: list[CallSpec], rate: float) -> float:
        """Start calls at `rate`/s within the slots; wait for the last pops; returns seconds."""
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        started = time.perf_counter()
        for spec in calls:
            try:
                await asyncio.wait_for(self.slots.acquire(), LAST_POP_WAIT)
            except TimeoutError:
                self.stalls += 1  # a pop went missing somewhere: go on without its slot
            delay = next_at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            next_at = max(next_at + 1 / rate, loop.time() - 1)
            sim.start_call(spec)
        elapsed = time.perf_counter() - started
        await asyncio.sleep(0.1)  # the last call's DialBegin
        if self.waiting:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.all_in.wait(), LAST_POP_WAIT)
        return elapsed


async def measure_pops(
    cluster: Cluster,
    sim: ObservedSimulator,
    watch: PopWatch,
    warmup: list[CallSpec],
    calls: list[CallSpec],
    rate: float,
) -> PopFigures:
    """Connect `watch.sockets` operators round-robin over the instances and play calls."""
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    figures = PopFigures()
    async with aiohttp.ClientSession() as http:
        sockets = [
            await http.ws_connect(f"{cluster.url(i)}/ws/agents/{WATCHED}", headers=headers)
            for i in range(watch.sockets)
        ]
        for socket in sockets:
            assert (await socket.receive_json(timeout=5))["type"] == "hello"
        listeners = [
            asyncio.create_task(watch.listen(i, socket)) for i, socket in enumerate(sockets)
        ]
        await watch.play(sim, warmup, rate)
        warm = set(watch.written)
        figures.elapsed = await watch.play(sim, calls, rate)
        await sim.wait_idle()
        for socket in sockets:
            await socket.close()
        for listener in listeners:
            listener.cancel()
    measured = [call_id for call_id in watch.written if call_id not in warm]
    figures.calls = len(measured)
    for index, arrivals in enumerate(watch.received):
        name = f"socket {index + 1} on :{cluster.ports[index % len(cluster.ports)]}"
        values = [(arrivals[c] - watch.written[c]) * 1000 for c in measured if c in arrivals]
        figures.per_socket_ms[name] = values
        figures.latencies_ms.extend(values)
        figures.lost += sum(1 for c in measured if c not in arrivals)
    figures.duplicates, figures.stalls = watch.duplicates, watch.stalls
    return figures
