"""Benchmark: a campaign preview whose rule holds 1,000-value `in` lists, /health polled.

Usage: python bench/bench_rule_lists.py [--customers N] [--runs 3]

A throwaway SQLite file and PostgreSQL database each get N customers with two activities
(0-3,000 days old). Over real HTTP on loopback, the app previews a draft whose audience
is `days_since_activity in [0, 2, …, 1998]` and `not region in [1,000 names]` while a
second client asks /health every 20 ms. Prints, per database, the median of the runs:
the preview's time and the slowest /health answer during it (the event loop is shared,
so a slow /health means the preview held the loop). Issue 14 item 9 saw 51 s with
/health blocked; a rule like this one failed on SQLite (expression depth).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import insert

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.app import create_app
from gateway.core.clock import FixedClock
from gateway.core.db.engine import Database
from gateway.core.db.models import Activity, Customer
from gateway.core.http.auth import TokenRegistry
from gateway.settings import Settings
from tests.support.databases import (
    copy_sqlite,
    create_postgres_database,
    create_sqlite_template,
    drop_postgres_database,
    truncate_all,
)

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
TOKEN = "bench-admin-token-0123456789"
AUDIENCE = {
    "all": [
        {"field": "days_since_activity", "op": "in", "value": list(range(0, 2000, 2))},
        {"not": {"field": "region", "op": "in", "value": [f"r{n}" for n in range(1000)]}},
    ]
}
DRAFT = {
    "name": "bench",
    "schedule": "0 10 * * *",
    "audience": AUDIENCE,
    "steps": [{"id": "hello", "type": "send", "channel": "sms", "template": "hello"}],
}


async def load(database: Database, customers: int) -> None:
    """N customers, two activities each."""
    if not database.is_sqlite:
        await truncate_all(database)
    rng = random.Random(7)
    rows = [
        {
            "id": f"cus_{n:07d}",
            "external_id": f"ext-{n}",
            "name": f"Customer {n}",
            "status": "active",
            "products": [],
            "attributes": {},
            "created_at": NOW,
            "updated_at": NOW,
        }
        for n in range(customers)
    ]
    activities = [
        {
            "id": f"act_{n}_{k}",
            "customer_id": f"cus_{n:07d}",
            "kind": "login",
            "at": NOW - timedelta(days=rng.randrange(3000), seconds=rng.randrange(86400)),
        }
        for n in range(customers)
        for k in range(2)
    ]
    async with database.engine.begin() as conn:
        await conn.execute(insert(Customer), rows)
        await conn.execute(insert(Activity), activities)


async def poll(client: TestClient[Any, Any], stop: asyncio.Event) -> list[float]:
    """Seconds each /health took until `stop`."""
    latencies = []
    while not stop.is_set():
        started = time.perf_counter()
        response = await client.get("/health")
        await response.read()
        latencies.append(time.perf_counter() - started)
        await asyncio.sleep(0.02)
    return latencies


async def measure(url: str, customers: int, runs: int) -> tuple[float, float, Any]:
    """Median preview seconds and median slowest /health over `runs` previews."""
    database = Database(url)
    await load(database, customers)
    await database.dispose()
    tokens = TokenRegistry()
    tokens.add(TOKEN, "admin")
    settings = Settings(database_url=url, default_region="UA")
    app = create_app(settings, clock=FixedClock(NOW), tokens=tokens, workers=False)
    previews, slowest = [], []
    answer: Any = None
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        for _ in range(runs):
            stop = asyncio.Event()
            polling = asyncio.create_task(poll(client, stop))
            await asyncio.sleep(0.1)
            started = time.perf_counter()
            response = await client.post(
                "/api/campaigns/bench/preview",
                json={"definition": DRAFT},
                headers={"Authorization": f"Bearer {TOKEN}"},
            )
            answer = (await response.json()).get("count", f"HTTP {response.status}")
            previews.append(time.perf_counter() - started)
            stop.set()
            slowest.append(max(await polling))
    return statistics.median(previews), statistics.median(slowest), answer


def main() -> None:
    """Build both databases, measure, print."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory() as directory:
        (Path(directory) / "template").mkdir()
        template = create_sqlite_template(Path(directory) / "template")
        targets = [("sqlite", copy_sqlite(template, Path(directory)))]
        postgres = create_postgres_database()
        targets.append(("postgresql", postgres))
        try:
            for name, url in targets:
                preview, health, count = asyncio.run(measure(url, args.customers, args.runs))
                print(
                    f"{name}: {args.customers} customers, preview {preview:.2f} s "
                    f"(count {count}), slowest /health during it {health * 1000:.0f} ms "
                    f"(medians of {args.runs})"
                )
        finally:
            drop_postgres_database(postgres)
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
