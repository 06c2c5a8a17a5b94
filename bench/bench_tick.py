"""Benchmark: one tick enrolling a large audience into a journey on a throwaway PostgreSQL.

Usage: python bench/bench_tick.py [CUSTOMERS] [--extra N]

Loads CUSTOMERS (default 100,000) customers in the audience plus `--extra` outside it,
saves a journey (send an SMS, wait 3 days until a reply or an order, branch) and times:
  * the first tick: the cron fired, the whole audience enrolled, every first message
    written as a pending outbound contact, every enrollment parked in its wait;
  * the same tick again (nothing new: every insert collides, nothing is due);
  * the tick at the wait's poll an hour later (every enrollment looks for its events).
Prints seconds, rates and the process's peak RSS (the aim is at most 300 MB).
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.campaigns.run_reports import TickReport
from gateway.campaigns.scheduler import tick
from gateway.campaigns.store import save_definition
from gateway.core.db.engine import Database
from gateway.core.db.models import Enrollment, OutboundContact
from gateway.settings import Settings
from tests.support.databases import create_postgres_database, drop_postgres_database

AS_OF = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)  # 11:00 in Kyiv, after the 10:00 fire

POPULATE = """
INSERT INTO customers (id, external_id, name, products, status, attributes, sms_opt_out,
    email_opt_out, voice_opt_out, do_not_contact, created_at, updated_at, region,
    responsible_agent)
SELECT 'cus_' || lpad(i::text, 24, '0'), 'B' || i, '', '[]'::jsonb,
    CASE WHEN i <= :n THEN 'cold' ELSE 'active' END,
    '{}'::jsonb, false, false, false, false, CAST(:start AS timestamp),
    CAST(:start AS timestamp), 'north', 'agent-' || (i % 40)
FROM generate_series(1, :total) AS i
"""

JOURNEY = {
    "name": "winback-bench",
    "schedule": "0 10 * * *",
    "audience": {"field": "status", "op": "==", "value": "cold"},
    "steps": [
        {"id": "hello", "type": "send", "channel": "sms", "template": "winback"},
        {"id": "wait", "type": "wait", "until": ["replied", "order"], "timeout": "3d"},
        {
            "id": "check",
            "type": "branch",
            "cases": [{"outcome": "timeout", "goto": "call"}],
            "otherwise": "end",
        },
        {"id": "call", "type": "call_task"},
    ],
}


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def timed(database: Database, settings: Settings, label: str, at: datetime) -> TickReport:
    started = time.perf_counter()
    report = await tick(database, settings, at)
    elapsed = time.perf_counter() - started
    enrolled = sum(run.enrolled for run in report.runs)
    advanced = report.advance.enrollments
    rate = (advanced or enrolled) / elapsed if elapsed else 0.0
    print(
        f"{label:<34} {elapsed:8.2f} s  enrolled {enrolled:>8,}  advanced {advanced:>8,}  "
        f"contacts {report.advance.contacts:>8,}  {rate:>9,.0f}/s  peak RSS {peak_rss_mb():.0f} MB"
    )
    return report


async def run(url: str, customers: int, extra: int) -> None:
    """Load, tick, print."""
    database = Database(url)
    settings = Settings(database_url=url)
    try:
        started = time.perf_counter()
        async with database.transaction() as session:
            await session.execute(
                text(POPULATE),
                {
                    "n": customers,
                    "total": customers + extra,
                    "start": (AS_OF - timedelta(days=400)).replace(tzinfo=None),
                },
            )
        async with database.engine.connect() as connection:
            await connection.execute(text("COMMIT"))
            await connection.execute(text("ANALYZE customers"))
        await save_definition(database, JOURNEY, "bench", AS_OF - timedelta(days=1))
        print(f"loaded {customers + extra:,} customers in {time.perf_counter() - started:.1f} s")
        print(f"peak RSS before the tick {peak_rss_mb():.0f} MB")

        await timed(database, settings, "first tick (enroll + first send)", AS_OF)
        await timed(database, settings, "same tick again", AS_OF)
        await timed(database, settings, "wait poll an hour later", AS_OF + timedelta(hours=1))
        async with database.sessions() as session:
            contacts = await session.scalar(select(func.count()).select_from(OutboundContact))
            states = dict(
                (
                    await session.execute(
                        select(Enrollment.state, func.count()).group_by(Enrollment.state)
                    )
                ).all()
            )
        print(f"outbound contacts {contacts:,}; enrollments {states}")
    finally:
        await database.dispose()


def main() -> None:
    """Parse arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("customers", nargs="?", type=int, default=100_000)
    parser.add_argument("--extra", type=int, default=20_000, help="customers outside the audience")
    args = parser.parse_args()
    url = create_postgres_database()
    try:
        asyncio.run(run(url, args.customers, args.extra))
    finally:
        drop_postgres_database(url)


if __name__ == "__main__":
    main()
