"""Benchmark: a 3-condition campaign segment compiled to SQL on a large PostgreSQL table,
against evaluating the same rule in Python.

Usage: python bench/bench_segment.py [CUSTOMERS] [--seed 7] [--sample 2000] [--explain]

Loads CUSTOMERS (default 1,000,000) customers (varied status and region, ~60 % with
1-5 activities over the last 120 days, ~40 % with 1-3 payments around today) with COPY
into a throwaway database, then times:
  * the segment: `segment()` executed and every id fetched (best of 3);
  * Python, bulk: the rows streamed (customers, activities, due payments), facts built
    and the rule evaluated per customer in a Python loop;
  * Python, per customer: `load_facts` + `evaluate` for a sample, extrapolated.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import asyncpg
from sqlalchemy import select, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.core.db.engine import Database
from gateway.core.db.models import Activity, Customer, Payment
from gateway.core.rules import CustomerFacts, evaluate, load_facts, segment, validate_rule
from tests.support.databases import create_postgres_database, drop_postgres_database

AS_OF = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
RULE = {
    "all": [
        {"field": "status", "op": "in", "value": ["active", "warm"]},
        {"field": "days_since_activity", "op": ">=", "value": 30},
        {"field": "days_until_payment", "op": "<=", "value": 5},
    ]
}
STATUSES = ("active",) * 10 + ("warm",) * 4 + ("cold",) * 3 + ("lost",) * 2 + ("cancelled",)
REGIONS = ("north", "south", "east", "west", "centre")
KINDS = ("card_use", "card_use", "order", "login")
CHUNK = 100_000
Rows = list[tuple[object, ...]]


def generate(size: int, seed: int) -> Iterator[tuple[Rows, Rows, Rows]]:
    """Chunks of (customer, activity, payment) rows for COPY."""
    rng = random.Random(seed)
    now = AS_OF.replace(tzinfo=None)
    today = AS_OF.date()
    empty_list, empty_dict = json.dumps([]), json.dumps({})
    for start in range(0, size, CHUNK):
        customers: Rows = []
        activities: Rows = []
        payments: Rows = []
        for index in range(start, min(start + CHUNK, size)):
            cid = f"cus_{index:012d}"
            customers.append(
                (cid, f"C{index}", f"Customer {index}", empty_list, empty_dict,
                 rng.choice(STATUSES), rng.choice(REGIONS),
                 False, False, False, False, now, now)
            )  # fmt: skip
            if rng.random() < 0.6:
                for number in range(rng.randint(1, 5)):
                    at = now - timedelta(minutes=rng.randrange(120 * 24 * 60))
                    activities.append((f"act_{index:012d}_{number}", cid, rng.choice(KINDS), at))
            if rng.random() < 0.4:
                for number in range(rng.randint(1, 3)):
                    due = today + timedelta(days=rng.randrange(-10, 30))
                    status = "due" if rng.random() < 0.8 else "paid"
                    amount = Decimal(rng.randrange(1000, 100000)) / 100
                    payments.append(
                        (f"pay_{index:012d}_{number}", cid, f"k{number}", due, amount,
                         "UAH", status, now)
                    )  # fmt: skip
        yield customers, activities, payments


async def load(url: str, size: int, seed: int) -> None:
    """COPY the generated rows in and ANALYZE."""
    connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    started = time.perf_counter()
    try:
        for customers, activities, payments in generate(size, seed):
            await connection.copy_records_to_table(
                "customers",
                records=customers,
                columns=["id", "external_id", "name", "products", "attributes", "status",
                         "region", "sms_opt_out", "email_opt_out", "voice_opt_out",
                         "do_not_contact", "created_at", "updated_at"],
            )  # fmt: skip
            await connection.copy_records_to_table(
                "activities", records=activities, columns=["id", "customer_id", "kind", "at"]
            )
            await connection.copy_records_to_table(
                "payments",
                records=payments,
                columns=["id", "customer_id", "contract_id", "due_date", "amount", "currency",
                         "status", "updated_at"],
            )  # fmt: skip
        await connection.execute("ANALYZE customers; ANALYZE activities; ANALYZE payments")
        counts = [
            await connection.fetchval(f"SELECT count(*) FROM {table}")
            for table in ("customers", "activities", "payments")
        ]
    finally:
        await connection.close()
    print(
        f"loaded {counts[0]:,} customers, {counts[1]:,} activities, {counts[2]:,} payments"
        f" in {time.perf_counter() - started:.1f} s"
    )


async def time_sql(database: Database, explain: bool) -> tuple[float, set[str]]:
    """Best of three: the segment executed and all ids fetched."""
    rule = validate_rule(RULE)
    best, ids = float("inf"), set[str]()
    for _ in range(3):
        async with database.sessions() as session:
            started = time.perf_counter()
            result = await session.execute(segment(session, rule, AS_OF))
            ids = set(result.scalars())
            best = min(best, time.perf_counter() - started)
    if explain:
        async with database.sessions() as session:
            query = segment(session, rule, AS_OF)
            compiled = query.compile(
                dialect=session.get_bind().dialect, compile_kwargs={"literal_binds": True}
            )
            plan = await session.execute(text(f"EXPLAIN (ANALYZE, BUFFERS) {compiled}"))
            print("\n".join(row[0] for row in plan))
    return best, ids


async def time_python_bulk(database: Database) -> tuple[float, set[str]]:
    """Stream the rows, build each customer's facts, evaluate the rule in a Python loop."""
    rule = validate_rule(RULE)
    today: date = AS_OF.date()
    started = time.perf_counter()
    last_activity: dict[str, datetime] = {}
    next_due: dict[str, date] = {}
    async with database.sessions() as session:
        activities = await session.stream(
            select(Activity.customer_id, Activity.at).where(Activity.at <= AS_OF)
        )
        async for customer_id, at in activities:
            if customer_id not in last_activity or at > last_activity[customer_id]:
                last_activity[customer_id] = at
        payments = await session.stream(
            select(Payment.customer_id, Payment.due_date).where(Payment.status == "due")
        )
        async for customer_id, due in payments:
            if customer_id not in next_due or due < next_due[customer_id]:
                next_due[customer_id] = due
        selected = set()
        customers = await session.stream(
            select(Customer.id, Customer.status).where(Customer.deleted_at.is_(None))
        )
        async for customer_id, status in customers:
            last = last_activity.get(customer_id)
            payment_due = next_due.get(customer_id)
            facts = CustomerFacts(
                customer_id=customer_id,
                status=status,
                days_since_activity=None if last is None else (AS_OF - last) // timedelta(days=1),
                days_until_payment=None if payment_due is None else (payment_due - today).days,
            )
            if evaluate(rule, facts):
                selected.add(customer_id)
    return time.perf_counter() - started, selected


async def time_python_per_customer(database: Database, size: int, sample: int) -> float:
    """`load_facts` + `evaluate` for `sample` customers, extrapolated to all of them."""
    rule = validate_rule(RULE)
    rng = random.Random(1)
    ids = [f"cus_{rng.randrange(size):012d}" for _ in range(sample)]
    async with database.sessions() as session:
        started = time.perf_counter()
        for customer_id in ids:
            evaluate(rule, await load_facts(session, customer_id, AS_OF))
        elapsed = time.perf_counter() - started
    return elapsed / sample * size


async def run(size: int, seed: int, sample: int, explain: bool) -> None:
    """Load, time SQL and both Python ways, print the figures."""
    url = await asyncio.to_thread(create_postgres_database)
    try:
        await load(url, size, seed)
        database = Database(url)
        try:
            sql_seconds, sql_ids = await time_sql(database, explain)
            bulk_seconds, bulk_ids = await time_python_bulk(database)
            per_customer = await time_python_per_customer(database, size, sample)
        finally:
            await database.dispose()
    finally:
        await asyncio.to_thread(drop_postgres_database, url)
    assert sql_ids == bulk_ids, "SQL and Python disagree"
    print(f"segment {json.dumps(RULE)} on {size:,} customers (PostgreSQL):")
    print(
        f"  SQL segment            {sql_seconds:7.2f} s  -> {len(sql_ids):,} customers (aim <= 3 s)"
    )
    print(
        f"  Python, bulk rows      {bulk_seconds:7.2f} s  ratio {bulk_seconds / sql_seconds:5.1f}x"
        " (aim >= 20x)"
    )
    print(
        f"  Python, load_facts     {per_customer:7.0f} s  ratio {per_customer / sql_seconds:5.0f}x"
        f" (extrapolated from {sample:,} customers)"
    )


def main(argv: list[str] | None = None) -> None:
    """Parse arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("customers", nargs="?", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--sample", type=int, default=2000)
    parser.add_argument("--explain", action="store_true")
    args = parser.parse_args(argv)
    asyncio.run(run(args.customers, args.seed, args.sample, args.explain))


if __name__ == "__main__":
    main()
