"""Benchmark: lifecycle ticks over a large customer base on a throwaway PostgreSQL database.

Usage: python bench/bench_lifecycle.py [CUSTOMERS] [--reactivated SHARE] [--batch-size N]

The population is loaded in SQL: every customer's silence is spread evenly over 0..119
days and their status is already the one that silence implies, as after months of daily
ticks; a share of the lost customers bought within the last day. One day later a tick
therefore moves about 1/120 of the customers per threshold plus the reactivations — a
normal day's work — which is what the figures describe. Then the same tick again (all
scanning, nothing moves), and the cadence tick that follows (call tasks for warm/cold).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.core.db.engine import Database
from gateway.core.db.models import Customer, OutboxItem, Task
from gateway.lifecycle.cadence import due_call_tasks
from gateway.lifecycle.policy import LifecyclePolicy
from gateway.lifecycle.transitions import refresh_statuses
from tests.support.databases import create_postgres_database, drop_postgres_database

AS_OF = datetime(2026, 6, 1, 3, 0, tzinfo=UTC)

POPULATE = """
INSERT INTO customers (id, external_id, name, products, status, attributes, sms_opt_out,
    email_opt_out, voice_opt_out, do_not_contact, created_at, updated_at,
    last_activity_at, status_changed_at, next_contact_at, responsible_agent)
SELECT 'cus_' || lpad(i::text, 24, '0'), 'B' || i, '', '[]'::jsonb,
    CASE WHEN s < 30 THEN 'active' WHEN s < 60 THEN 'warm' WHEN s < 90 THEN 'cold'
         ELSE 'lost' END,
    '{}'::jsonb, false, false, false, false, CAST(:start AS timestamp), CAST(:start AS timestamp),
    CASE WHEN s >= 90 AND (i / 120) % 1000 < :reactivated_per_mille
         THEN CAST(:as_of AS timestamp) - interval '6 hours'
         ELSE CAST(:as_of AS timestamp) - make_interval(days => s, hours => i % 24) END,
    CAST(:as_of AS timestamp) - make_interval(days => s, hours => i % 24)
        + make_interval(days => CASE WHEN s < 30 THEN 0 WHEN s < 60 THEN 30
                                     WHEN s < 90 THEN 60 ELSE 90 END),
    CASE WHEN s BETWEEN 30 AND 89
         THEN CAST(:as_of AS timestamp) + make_interval(days => (i % 14)) END,
    'agent-' || (i % 40)
FROM (SELECT i, (i % 120) AS s FROM generate_series(1, :n) AS i) AS population
"""


async def timed(
    database: Database, label: str, work: Callable[[AsyncSession], Awaitable[object]]
) -> float:
    """Run one tick in its own transaction and print its time."""
    started = time.perf_counter()
    async with database.transaction() as session:
        result = await work(session)
    elapsed = time.perf_counter() - started
    print(f"{label:<44} {elapsed:8.2f} s   {result}")
    return elapsed


async def run(url: str, customers: int, reactivated: float, batch_size: int) -> None:
    """Load, tick, print."""
    database = Database(url)
    policy = LifecyclePolicy(batch_size=batch_size)
    try:
        started = time.perf_counter()
        async with database.transaction() as session:
            await session.execute(
                text(POPULATE),
                {
                    "n": customers,
                    "start": (AS_OF - timedelta(days=400)).replace(tzinfo=None),
                    "as_of": AS_OF.replace(tzinfo=None),
                    "reactivated_per_mille": round(reactivated * 1000),
                },
            )
        async with database.engine.connect() as connection:
            await connection.execute(text("COMMIT"))
            await connection.execute(text("ANALYZE customers"))
        print(f"loaded {customers:,} customers in {time.perf_counter() - started:.1f} s")

        tick = AS_OF + timedelta(days=1)
        first = await timed(
            database,
            "refresh_statuses (a day's moves)",
            lambda s: refresh_statuses(s, tick, policy),
        )
        async with database.transaction() as session:
            moved = await session.scalar(select(func.count()).select_from(OutboxItem))
        print(f"  {moved:,} moves, {moved / first:,.0f} moves/s" if moved else "  no moves")
        await timed(
            database,
            "refresh_statuses again (nothing moves)",
            lambda s: refresh_statuses(s, tick, policy),
        )
        await timed(database, "due_call_tasks", lambda s: _count(due_call_tasks(s, tick, policy)))
        await timed(
            database, "due_call_tasks again", lambda s: _count(due_call_tasks(s, tick, policy))
        )
        async with database.transaction() as session:
            tasks = await session.scalar(select(func.count()).select_from(Task))
            statuses = dict(
                (
                    await session.execute(
                        select(Customer.status, func.count()).group_by(Customer.status)
                    )
                ).all()
            )
        print(f"tasks {tasks:,}; statuses {statuses}")
    finally:
        await database.dispose()


async def _count(work: Awaitable[list[Any]]) -> str:
    created = await work
    return f"{len(created):,} tasks"


def main() -> None:
    """Parse arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("customers", nargs="?", type=int, default=1_000_000)
    parser.add_argument("--reactivated", type=float, default=0.01, help="share of lost who bought")
    parser.add_argument("--batch-size", type=int, default=1000)
    args = parser.parse_args()
    url = create_postgres_database()
    try:
        asyncio.run(run(url, args.customers, args.reactivated, args.batch_size))
    finally:
        drop_postgres_database(url)


if __name__ == "__main__":
    main()
