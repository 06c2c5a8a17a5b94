"""Benchmark: the savings report and the daily snapshot on a large PostgreSQL database.

Usage: python bench/bench_reports.py [--ledger N] [--calls N] [--customers N] [--contacts N]

A throwaway database gets CUSTOMERS customers (INSERT … SELECT on the server), five
campaigns splitting them with a 10 % holdout each, then LEDGER cost lines and CALLS call
records over a year (COPY from generated rows; a fifth of the ledger priced in USD, so
conversion is exercised), CONTACTS outbound contacts and a month of status moves. Times:
the savings report over the year (every campaign, measured mode, with months), one
campaign alone, and a daily snapshot (first day from a grouped count, the next chained).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.clock import FixedClock, parse_time_input
from gateway.costs.daily import daily_snapshot
from gateway.costs.model import CostModel
from gateway.costs.savings import SavingsQuery, savings_report
from gateway.db.engine import Database
from gateway.settings import CostRates, Settings
from tests.support.databases import create_postgres_database, drop_postgres_database

YEAR_START = datetime(2025, 12, 1, tzinfo=UTC)
SECONDS_IN_YEAR = 365 * 86_400
CAMPAIGNS = 5
TOPICS = ("payment_amount", "card_blocked", "complaint", "other")
CHUNK = 250_000

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


def ledger_rows(n: int, customers: int, rng: random.Random) -> Iterator[list[tuple[Any, ...]]]:
    """Chunks of cost_ledger records."""
    chunk: list[tuple[Any, ...]] = []
    for i in range(n):
        c = rng.randrange(customers)
        at = YEAR_START + timedelta(seconds=rng.randrange(SECONDS_IN_YEAR))
        usd = i % 5 == 0
        chunk.append(
            (
                f"cost{i}",
                at.replace(tzinfo=None),
                "sms" if i % 7 else "email",
                f"c{c}",
                f"cmp{c % CAMPAIGNS}",
                f"oc{i}",
                None,
                Decimal("0.0079") if usd else Decimal("0.3000"),
                "USD" if usd else "UAH",
                "provider" if usd else "configured",
                1,
            )
        )
        if len(chunk) == CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def call_rows(n: int, customers: int, rng: random.Random) -> Iterator[list[tuple[Any, ...]]]:
    """Chunks of calls records."""
    chunk: list[tuple[Any, ...]] = []
    for i in range(n):
        at = (YEAR_START + timedelta(seconds=rng.randrange(SECONDS_IN_YEAR))).replace(tzinfo=None)
        talk = rng.choice((0, 90, 150, 240))
        chunk.append(
            (
                f"call{i}",
                "inbound" if i % 5 else "outbound",
                "ended",
                f"c{rng.randrange(customers)}",
                "exact",
                at,
                at if talk else None,
                talk or None,
                TOPICS[i % len(TOPICS)],
                at,
                at,
                "{}",
            )
        )
        if len(chunk) == CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


LEDGER_COLUMNS = [
    "id", "at", "channel", "customer_id", "campaign_id", "contact_id", "call_id",
    "amount", "currency", "source", "units",
]  # fmt: skip
CALL_COLUMNS = [
    "id", "direction", "state", "customer_id", "match", "started_at", "answered_at",
    "talk_seconds", "topic", "created_at", "updated_at", "details",
]  # fmt: skip


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
        await session.execute(text(ASSIGNMENTS), {"n": args.customers, "at": at})
    await database.dispose()
    print(f"customers, campaigns, arms    {time.perf_counter() - started:8.1f} s")
    rng = random.Random(args.seed)
    connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        started = time.perf_counter()
        for chunk in ledger_rows(args.ledger, args.customers, rng):
            await connection.copy_records_to_table(
                "cost_ledger", records=chunk, columns=LEDGER_COLUMNS
            )
        print(f"COPY {args.ledger:>11,} ledger rows {time.perf_counter() - started:8.1f} s")
        started = time.perf_counter()
        for chunk in call_rows(args.calls, args.customers, rng):
            await connection.copy_records_to_table("calls", records=chunk, columns=CALL_COLUMNS)
        print(f"COPY {args.calls:>11,} call rows   {time.perf_counter() - started:8.1f} s")
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
        await connection.execute("ANALYZE")
        print(f"contacts, status moves, ANALYZE {time.perf_counter() - started:6.1f} s")
    finally:
        await connection.close()


async def measure(url: str) -> None:
    """Time the reports."""
    settings = Settings(database_url=url, costs=CostRates(conversion={"USD": Decimal("41.3")}))
    database = Database(url)
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
    finally:
        await database.dispose()


def main() -> None:
    """Parse sizes, load, measure, drop the database."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ledger", type=int, default=10_000_000)
    parser.add_argument("--calls", type=int, default=5_000_000)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    url = create_postgres_database()
    try:
        asyncio.run(load(url, args))
        asyncio.run(measure(url))
    finally:
        drop_postgres_database(url)


if __name__ == "__main__":
    main()
