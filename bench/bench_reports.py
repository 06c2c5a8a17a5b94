"""Benchmark: the savings report and the daily snapshot on a large PostgreSQL database.

Usage: python bench/bench_reports.py [--ledger N] [--calls N] [--customers N] [--contacts N]
    [--enrolled N] [--keep] [--reuse URL]

A throwaway database gets CUSTOMERS customers (INSERT … SELECT on the server), five
campaigns splitting them with a 10 % holdout each, then LEDGER cost lines and CALLS call
records over a year, generated on the server (a fifth of the ledger priced in USD, so
conversion is exercised; the ledger rollup triggers run as they do in production),
CONTACTS outbound contacts and a month of status moves. Times: the savings report over
the year (every campaign, measured mode, with months), one campaign alone, and a daily
snapshot (first day from a grouped count, the next chained).

--enrolled puts only the first N customers into the campaigns (a campaign treats a
segment, not the whole base); by default every customer is enrolled, the worst case for
the distinct-callers count. Building the data takes minutes: --keep leaves the database
in place and prints its URL, --reuse URL measures an existing one without loading.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import event, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.core.clock import FixedClock, parse_time_input
from gateway.core.db.engine import Database
from gateway.core.settings import CostRates
from gateway.costs.daily import daily_snapshot
from gateway.costs.model import CostModel
from gateway.costs.savings import SavingsQuery, savings_report
from gateway.settings import Settings
from tests.support.databases import create_postgres_database, drop_postgres_database

YEAR_START = datetime(2025, 12, 1, tzinfo=UTC)
SECONDS_IN_YEAR = 365 * 86_400
CAMPAIGNS = 5
TOPICS = ("payment_amount", "card_blocked", "complaint", "other")

CUSTOMERS = """
INSERT INTO customers (id, external_id, name, products, status, attributes, sms_opt_out,
    email_opt_out, voice_opt_out, do_not_contact, created_at, updated_at)
SELECT 'c' || i, 'e' || i, '', '[]'::jsonb,
    (ARRAY['active','warm','cold','lost'])[1 + i % 4], '{}'::jsonb, false, false, false, false,
    CAST(:at AS timestamp), CAST(:at AS timestamp)
FROM generate_series(0, :n - 1) AS i
"""
ASSIGNMENTS = """
INSERT INTO experiment_assignments (campaign_id, customer_id, arm, assigned_at)
SELECT 'cmp' || (i % 5), 'c' || i, CASE WHEN (i / 5) % 10 = 0 THEN 'holdout' ELSE 'sms' END,
    CAST(:at AS timestamp)
FROM generate_series(0, :n - 1) AS i
"""
CAMPAIGN_ROWS = """
INSERT INTO campaigns (id, name, current_version, enabled, created_at, updated_at)
VALUES (:id, :name, 1, true, CAST(:at AS timestamp), CAST(:at AS timestamp));
"""
VERSION_ROWS = """
INSERT INTO campaign_versions (id, campaign_id, version, definition, created_at)
VALUES (:id, :campaign, 1, CAST(:definition AS jsonb), CAST(:at AS timestamp))
"""


# Server-side generation: a tenth of the time of building rows in Python and COPYing
# them. setseed() makes random() repeat the same data from run to run.
LEDGER = """
INSERT INTO cost_ledger (id, at, channel, customer_id, campaign_id, contact_id, call_id,
    amount, currency, source, units)
SELECT 'cost' || i, $1::timestamp + make_interval(secs => floor(random() * $2)),
    CASE WHEN i % 7 = 0 THEN 'email' ELSE 'sms' END, 'c' || c, 'cmp' || (c % 5), 'oc' || i,
    NULL, CASE WHEN i % 5 = 0 THEN 0.0079 ELSE 0.3000 END,
    CASE WHEN i % 5 = 0 THEN 'USD' ELSE 'UAH' END,
    CASE WHEN i % 5 = 0 THEN 'provider' ELSE 'configured' END, 1
FROM (SELECT i, floor(random() * $3)::int AS c FROM generate_series($4::int, $5 - 1) AS i) AS g
"""
CALLS = """
INSERT INTO calls (id, direction, state, customer_id, match, started_at, answered_at,
    talk_seconds, topic, created_at, updated_at, details)
SELECT 'call' || i, CASE WHEN i % 5 = 0 THEN 'outbound' ELSE 'inbound' END, 'ended',
    'c' || floor(random() * $3)::int, 'exact', t, CASE WHEN talk > 0 THEN t END,
    NULLIF(talk, 0), (ARRAY['payment_amount', 'card_blocked', 'complaint', 'other'])[1 + i % 4],
    t, t, '{}'::jsonb
FROM (SELECT i, $1::timestamp + make_interval(secs => floor(random() * $2)) AS t,
        (ARRAY[0, 90, 150, 240])[1 + floor(random() * 4)::int] AS talk
      FROM generate_series($4::int, $5 - 1) AS i) AS g
"""
CHUNK = 1_000_000


async def generate(
    connection: asyncpg.Connection, statement: str, what: str, n: int, customers: int
) -> None:
    """Run a generating INSERT in chunks, showing progress."""
    started = time.perf_counter()
    for first in range(0, n, CHUNK):
        await connection.execute(
            statement,
            YEAR_START.replace(tzinfo=None),
            float(SECONDS_IN_YEAR),
            float(customers),
            first,
            min(n, first + CHUNK),
        )
        done = min(n, first + CHUNK)
        print(f"\r{what}: {done:>11,} / {n:,}", end="", flush=True)
    print(f"\r{what}: {n:>11,} rows {time.perf_counter() - started:8.1f} s")


async def load(url: str, args: argparse.Namespace) -> None:
    """Fill the database; prints how long each part took."""
    started = time.perf_counter()
    database = Database(url)
    at = YEAR_START.replace(tzinfo=None)
    async with database.transaction() as session:
        await session.execute(text(CUSTOMERS), {"n": args.customers, "at": at})
        for k in range(CAMPAIGNS):
            await session.execute(
                text(CAMPAIGN_ROWS), {"id": f"cmp{k}", "name": f"campaign-{k}", "at": at}
            )
            topic = TOPICS[k % len(TOPICS)]
            audience = (
                f'{{"audience": {{"field": "topic_calls_30d.{topic}", "op": ">=", "value": 1}}}}'
            )
            await session.execute(
                text(VERSION_ROWS),
                {"id": f"cv{k}", "campaign": f"cmp{k}", "definition": audience, "at": at},
            )
        enrolled = args.customers if args.enrolled is None else args.enrolled
        await session.execute(text(ASSIGNMENTS), {"n": enrolled, "at": at})
    await database.dispose()
    print(f"customers, campaigns, arms    {time.perf_counter() - started:8.1f} s")
    connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await connection.execute("SELECT setseed($1)", args.seed / 1000)
        await generate(connection, LEDGER, "ledger lines", args.ledger, args.customers)
        await generate(connection, CALLS, "call records", args.calls, args.customers)
        started = time.perf_counter()
        await connection.execute(
            """
            INSERT INTO outbound_contacts (id, idempotency_key, channel, customer_id, status,
                variables, attempts, sandbox, source, created_at, updated_at, sent_at)
            SELECT 'oc' || i, 'k' || i, 'sms', 'c' || (i % $1), 'sent', '{}'::jsonb, 1, false,
                'bench', t, t, t
            FROM (SELECT i, $2::timestamp + make_interval(mins => i % 43200) AS t
                  FROM generate_series(0, $3 - 1) AS i) AS g
            """,
            args.customers,
            datetime(2026, 11, 1),
            args.contacts,
        )
        await connection.execute(
            """
            INSERT INTO status_changes (id, customer_id, from_status, to_status, at, reason)
            SELECT 'sc' || i, 'c' || (i * 7 % $1), 'warm', 'active',
                $2::timestamp + make_interval(secs => i * 86400.0 * 30 / 300000), 'bench'
            FROM generate_series(0, 299999) AS i
            """,
            args.customers,
            datetime(2026, 11, 1),
        )
        # VACUUM as autovacuum would after a bulk load: index-only scans need the
        # visibility map it sets.
        await connection.execute("VACUUM ANALYZE")
        print(f"contacts, moves, VACUUM ANALYZE  {time.perf_counter() - started:6.1f} s")
    finally:
        await connection.close()


def statement_stages(database: Database) -> list[tuple[str, float]]:
    """(statement's first words, seconds) of every statement run, appended as they end."""
    stages: list[tuple[str, float]] = []
    engine = database.engine.sync_engine

    @event.listens_for(engine, "before_cursor_execute")
    def _before(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        conn.info["bench_started"] = time.perf_counter()

    @event.listens_for(engine, "after_cursor_execute")
    def _after(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        words = " ".join(statement.split())
        stages.append((words[:70], time.perf_counter() - conn.info.pop("bench_started")))

    return stages


def print_stages(stages: list[tuple[str, float]], at_least: float = 0.05) -> None:
    """The statements that took at least `at_least` seconds, and the load average."""
    for words, seconds in stages:
        if seconds >= at_least:
            print(f"    {seconds:6.2f} s  {words}")
    print(f"    load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    stages.clear()


async def measure(url: str) -> None:
    """Time the reports, and the slow statements inside them."""
    settings = Settings(database_url=url, costs=CostRates(conversion={"USD": Decimal("41.3")}))
    database = Database(url)
    stages = statement_stages(database)
    try:
        zone = settings.timezone
        year = SavingsQuery(
            start=parse_time_input("2025-12-01", zone),
            end=parse_time_input("2026-11-30", zone, end_of_day=True),
        )
        for label, query in (
            ("savings report, year, all campaigns", year),
            ("savings report, year, one campaign", SavingsQuery(
                start=year.start, end=year.end, campaign="campaign-0")),
        ):  # fmt: skip
            started = time.perf_counter()
            report = await savings_report(database, settings, query)
            elapsed = time.perf_counter() - started
            first = report["campaigns"][0]
            print(
                f"{label:<38} {elapsed:8.2f} s   net {report['totals']['net_savings']} "
                f"{report['currency']}; {first['campaign']} deflection "
                f"{first['deflection']['value']:.4f} [{first['deflection']['low']:.4f}, "
                f"{first['deflection']['high']:.4f}]"
            )
            print_stages(stages)
        model = CostModel.from_settings(settings)
        clock = FixedClock(datetime(2026, 12, 5, tzinfo=UTC))
        for day, label in ((date(2026, 11, 14), "first"), (date(2026, 11, 15), "chained")):
            started = time.perf_counter()
            snapshot = await daily_snapshot(database, model, zone, clock, day)
            elapsed = time.perf_counter() - started
            print(
                f"daily snapshot ({label:<7}) {day}        {elapsed:8.2f} s   "
                f"{snapshot['status_method']}; sent "
                f"{snapshot['contacts'].get('sms', {}).get('sent', 0)}"
            )
            print_stages(stages)
    finally:
        await database.dispose()


def main() -> None:
    """Parse sizes, load, measure, drop the database."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ledger", type=int, default=10_000_000)
    parser.add_argument("--calls", type=int, default=5_000_000)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--enrolled", type=int, default=None, help="default: every customer")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="leave the database in place")
    parser.add_argument("--reuse", metavar="URL", help="measure this database, load nothing")
    args = parser.parse_args()
    if args.reuse:
        asyncio.run(measure(args.reuse))
        return
    url = create_postgres_database()
    try:
        asyncio.run(load(url, args))
        asyncio.run(measure(url))
    finally:
        if args.keep:
            print(f"kept: --reuse {url}")
        else:
            drop_postgres_database(url)


if __name__ == "__main__":
    main()
