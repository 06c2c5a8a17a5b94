"""Benchmark: screen-pop phone lookups through `find_by_phone` on a large PostgreSQL table.

Usage: python bench/bench_phone_lookup.py [CUSTOMERS] [--lookups 10000] [--seed 7]

Loads CUSTOMERS (default 1,000,000) customers with ~1.3 phones each (some numbers shared
by two customers) into a throwaway database with COPY, then times LOOKUPS calls of the
service function (session checkout included), mixing exact hits in several written
forms, trunk-prefixed numbers (suffix step), shared numbers and unknown numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.core.db.engine import Database
from gateway.customers.service import find_by_phone
from tests.support.databases import (
    create_postgres_database,
    drop_postgres_database,
)

CODES = ("50", "63", "66", "67", "68", "73", "93", "95", "96", "97", "98", "99")
CHUNK = 100_000


def national(rng: random.Random) -> str:
    """A random Ukrainian mobile national number (9 digits)."""
    return rng.choice(CODES) + f"{rng.randrange(10**7):07d}"


def generate(
    size: int, seed: int
) -> tuple[list[str], Iterator[tuple[list[tuple[object, ...]], list[tuple[object, ...]]]]]:
    """Numbers to look up later, and chunks of (customer rows, phone rows) for COPY."""
    rng = random.Random(seed)
    now = datetime.now(UTC).replace(tzinfo=None)
    sample: list[str] = []
    empty_list, empty_dict = json.dumps([]), json.dumps({})

    def chunks() -> Iterator[tuple[list[tuple[object, ...]], list[tuple[object, ...]]]]:
        previous: list[str] = []
        for start in range(0, size, CHUNK):
            customers: list[tuple[object, ...]] = []
            phones: list[tuple[object, ...]] = []
            for index in range(start, min(start + CHUNK, size)):
                cid = f"cus_{index:012d}"
                customers.append(
                    (
                        cid,
                        f"C{index}",
                        f"Клієнт {index}",
                        empty_list,
                        empty_dict,
                        "active",
                        False,
                        False,
                        False,
                        False,
                        now,
                        now,
                    )
                )
                numbers = [national(rng)]
                roll = rng.random()
                if roll < 0.27:
                    numbers.append(national(rng))
                elif roll < 0.30 and previous:
                    numbers.append(rng.choice(previous))  # a number another customer has
                for position, number in enumerate(dict.fromkeys(numbers)):
                    phones.append((cid, f"+380{number}", number, position, False))
                previous = [*previous[-999:], numbers[0]]
                if len(sample) < 50_000 and rng.random() < 0.05:
                    sample.append(numbers[-1])
            yield customers, phones

    return sample, chunks()


async def load(url: str, size: int, seed: int) -> list[str]:
    """COPY the generated rows in; returns sample numbers that exist."""
    connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    sample, chunks = generate(size, seed)
    started = time.perf_counter()
    try:
        for customers, phones in chunks:
            await connection.copy_records_to_table(
                "customers",
                records=customers,
                columns=[
                    "id",
                    "external_id",
                    "name",
                    "products",
                    "attributes",
                    "status",
                    "sms_opt_out",
                    "email_opt_out",
                    "voice_opt_out",
                    "do_not_contact",
                    "created_at",
                    "updated_at",
                ],
            )
            await connection.copy_records_to_table(
                "customer_phones",
                records=phones,
                columns=["customer_id", "e164", "last_digits", "position", "invalid"],
            )
        await connection.execute("ANALYZE customers; ANALYZE customer_phones")
        phones_count = await connection.fetchval("SELECT count(*) FROM customer_phones")
    finally:
        await connection.close()
    print(
        f"loaded {size:,} customers, {phones_count:,} phones"
        f" in {time.perf_counter() - started:.1f} s"
    )
    return sample


def queries(sample: list[str], lookups: int, rng: random.Random) -> list[str]:
    """A mix of written forms: exact hits, trunk-prefixed, and unknown numbers."""
    forms = []
    for _ in range(lookups):
        number = rng.choice(sample)
        roll = rng.random()
        if roll < 0.6:
            forms.append(
                rng.choice(
                    (
                        f"+380{number}",
                        f"0{number}",
                        f"+38 (0{number[:2]}) {number[2:5]}-{number[5:7]}-{number[7:]}",
                    )
                )
            )
        elif roll < 0.8:
            forms.append(f"80{number}")  # trunk prefix: invalid as written, suffix step
        else:
            forms.append(f"0{national(rng)}")  # almost surely nobody's
    return forms


async def run(size: int, lookups: int, seed: int) -> None:
    """Load, warm up, time the lookups, print p50/p99."""
    url = await asyncio.to_thread(create_postgres_database)
    try:
        sample = await load(url, size, seed)
        database = Database(url)
        try:
            numbers = queries(sample, lookups, random.Random(seed + 1))
            for number in numbers[:500]:  # warm the pool, caches and statement cache
                async with database.sessions() as session:
                    await find_by_phone(session, number, "UA")
            outcomes: Counter[str] = Counter()
            in_session: list[float] = []
            async with database.sessions() as session:
                for number in numbers:
                    started = time.perf_counter()
                    match = await find_by_phone(session, number, "UA")
                    in_session.append((time.perf_counter() - started) * 1000)
                    outcomes[match.match] += 1
            with_checkout: list[float] = []
            for number in numbers:
                started = time.perf_counter()
                async with database.sessions() as session:
                    await find_by_phone(session, number, "UA")
                with_checkout.append((time.perf_counter() - started) * 1000)
        finally:
            await database.dispose()
    finally:
        await asyncio.to_thread(drop_postgres_database, url)
    print(f"{lookups:,} lookups through find_by_phone on {size:,} customers (PostgreSQL):")
    for label, timings in (
        ("in an open session", in_session),
        ("session per lookup", with_checkout),
    ):
        cuts = statistics.quantiles(timings, n=100)
        print(
            f"  {label:<19} p50 {cuts[49]:.3f} ms   p99 {cuts[98]:.3f} ms"
            f"   max {max(timings):.3f} ms   (aim p99 <= 2 ms)"
        )
    print(f"  outcomes: {dict(sorted(outcomes.items()))}")


def main(argv: list[str] | None = None) -> None:
    """Parse arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("customers", nargs="?", type=int, default=1_000_000)
    parser.add_argument("--lookups", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    asyncio.run(run(args.customers, args.lookups, args.seed))


if __name__ == "__main__":
    main()
