"""Benchmark: `/health` latency while hostile templates are saved, previewed and sent.

Usage: python bench/bench_attack_templates.py [--seconds 6] [--attackers 2] [--rounds 3]

The whole gateway (create_app, send worker on) runs in a child process on PostgreSQL.
`--attackers` clients loop over the templates of issue 14 item 1 (a power of a power,
nested ranges, a range past the limit, printing 10**5000, a template of 200 tags, an
HTML body the old text converter read in quadratic time): each is saved
(`PUT /api/templates`), previewed as an unsaved edit, and sent inline by a signed CRM
`contact.requested`, which the send worker renders. Meanwhile one client asks `/health`
every 20 ms and records how long each answer took: idle first, then under the same
traffic with an ordinary template (what the request volume alone costs on this
machine), then under the attack. Clients send without pause, so under both loads the
gateway is busy; what the bounds must show is that hostile templates cost about what
ordinary ones do. Each round starts a fresh gateway; the figures are the medians over
`--rounds` of each round's p50, p99 and maximum (aim under attack: p99 <= 100 ms). Run
it against older code to compare: it imports the gateway from the tree it sits in.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import statistics
import sys
import time
from collections import Counter
from itertools import count
from multiprocessing.synchronize import Event as EventType
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_webhook_ingest import free_port
from crm_sync.signature import HEADER, sign
from tests.support.databases import create_postgres_database, drop_postgres_database

SECRET = "bench-webhook-secret"
ADMIN = "bench-admin-token-0123456789"
AUTH = {"Authorization": f"Bearer {ADMIN}"}
ATTACKS = [
    "{{ (3**(10**7)) > 1 }}",
    "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}done",
    "{% for i in range(100001) %}{% endfor %}done",
    "{{ 10**5000 }}",
    "{{ name }}" * 200,
    "<p>--><b x=\"'<a href='" * 950 + "</p>",
]
# The same traffic with templates a real admin or CRM sends: what the load alone costs.
ORDINARY = ["Вітаємо, {{ first_name }}! Нагадуємо про платіж, {{ name|default('клієнте') }}."]
_ids = count()


def serve(url: str, port: int, ready: EventType, stop: EventType) -> None:
    """Child process: the gateway with its workers until `stop` is set."""
    asyncio.run(_serve(url, port, ready, stop))


async def _serve(url: str, port: int, ready: EventType, stop: EventType) -> None:
    from aiohttp import web

    import gateway
    from gateway.app import create_app
    from gateway.core.http.auth import TokenRegistry
    from gateway.settings import Settings

    print(f"  gateway from {Path(gateway.__file__).parents[1]}", flush=True)
    settings = Settings(database_url=url, crm_webhook_secret=SECRET, log_level="CRITICAL")
    tokens = TokenRegistry()
    tokens.add(ADMIN, "admin")
    app = create_app(settings, tokens=tokens, workers=True)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    ready.set()
    await asyncio.to_thread(stop.wait)
    await runner.cleanup()


async def crm_event(
    session: aiohttp.ClientSession, base: str, kind: str, data: dict[str, object]
) -> int:
    """Post one signed CRM event; returns the status."""
    event = {
        "id": f"bench-{os.getpid()}-{next(_ids)}",
        "type": kind,
        "occurred_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "data": data,
    }
    body = json.dumps(event).encode()
    headers = {HEADER: sign(SECRET, body, int(time.time())), "Content-Type": "application/json"}
    async with session.post(f"{base}/crm/events", data=body, headers=headers) as response:
        await response.read()
        return response.status


async def attack(
    session: aiohttp.ClientSession,
    base: str,
    customer: str,
    until: float,
    statuses: Counter[int],
    bodies: list[str],
) -> None:
    """Save, preview and send each template of `bodies` in turn until `until`."""
    turn = 0
    while time.perf_counter() < until:
        body = bodies[turn % len(bodies)]
        turn += 1
        channel = "email" if body.startswith("<p>") else "sms"
        template = {"channel": channel, "body": {"uk": body}}
        if channel == "email":
            template["subject"] = {"uk": "S"}
        async with session.put(f"{base}/api/templates/t{turn}", json=template) as response:
            await response.read()
            statuses[response.status] += 1
        edit = {"customer_id": customer, "template": template}
        async with session.post(f"{base}/api/templates/t/preview", json=edit) as response:
            await response.read()
            statuses[response.status] += 1
        data: dict[str, object] = {
            "external_id": "B1",
            "channel": channel,
            "body": body,
            "subject": "S",
        }
        statuses[await crm_event(session, base, "contact.requested", data)] += 1


async def poll_health(base: str, until: float, delays: list[float]) -> None:
    """`/health` every 20 ms; the time each answer took."""
    async with aiohttp.ClientSession() as session:
        while time.perf_counter() < until:
            started = time.perf_counter()
            async with session.get(f"{base}/health") as response:
                await response.read()
            delays.append(time.perf_counter() - started)
            await asyncio.sleep(0.02)


async def one_round(base: str, seconds: float, attackers: int) -> list[list[float]]:
    """`/health` polled idle, under ordinary template traffic, under the attack."""
    phases: list[list[float]] = []
    async with aiohttp.ClientSession(headers=AUTH) as session:
        data: dict[str, object] = {
            "external_id": "B1",
            "name": "Олена Коваль",
            "phones": ["+380671234567"],
        }
        await crm_event(session, base, "customer.upserted", data)
        async with session.get(f"{base}/api/customers") as response:
            customer = (await response.json())["items"][0]["id"]
        idle: list[float] = []
        await poll_health(base, time.perf_counter() + seconds / 2, idle)
        phases.append(idle)
        for bodies in (ORDINARY, ATTACKS):
            statuses: Counter[int] = Counter()
            delays: list[float] = []
            until = time.perf_counter() + seconds
            await asyncio.gather(
                poll_health(base, until, delays),
                *(
                    attack(session, base, customer, until, statuses, bodies)
                    for _ in range(attackers)
                ),
            )
            print(f"  answers by status: {dict(sorted(statuses.items()))}")
            phases.append(delays)
    return phases


def percentile(values: list[float], share: float) -> float:
    """The value below which `share` of `values` lie."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


Figures = tuple[float, float, float, int]
PHASES = ("idle", "ordinary", "attack")


def figures(delays: list[float]) -> Figures:
    """p50, p99, max in ms, and how many answers."""
    ms = [delay * 1000 for delay in delays]
    return percentile(ms, 0.5), percentile(ms, 0.99), max(ms), len(ms)


def measure(url: str, seconds: float, attackers: int) -> list[Figures]:
    """One fresh gateway, idle, under ordinary traffic, under attack: their figures."""
    context = multiprocessing.get_context("spawn")
    ready, stop = context.Event(), context.Event()
    port = free_port()
    process = context.Process(target=serve, args=(url, port, ready, stop))
    process.start()
    try:
        if not ready.wait(60):
            raise RuntimeError("gateway did not start")
        phases = asyncio.run(one_round(f"http://127.0.0.1:{port}", seconds, attackers))
    finally:
        stop.set()
        process.join(30)
        if process.is_alive():
            process.kill()
    return [figures(delays) for delays in phases]


def main(argv: list[str] | None = None) -> None:
    """Run the rounds; print each and the medians."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--attackers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    rounds: list[list[Figures]] = []
    for run in range(args.rounds):
        url = create_postgres_database()
        try:
            rounds.append(measure(url, args.seconds, args.attackers))
        finally:
            drop_postgres_database(url)
        for name, (p50, p99, worst, answers) in zip(PHASES, rounds[-1], strict=True):
            print(
                f"round {run + 1} {name:8}: /health p50 {p50:7.1f} ms  p99 {p99:7.1f} ms"
                f"  max {worst:7.1f} ms  ({answers} answers)"
            )
    for index, name in enumerate(PHASES):
        p50, p99, worst = (statistics.median(r[index][i] for r in rounds) for i in range(3))
        print(
            f"/health {name:8}: p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {worst:.1f} ms"
            f" (medians of {len(rounds)} rounds; aim under attack: p99 <= 100 ms)"
        )
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
