"""Benchmark: stream a large customers CSV into a throwaway PostgreSQL database.

Usage: python bench/bench_csv_import.py [ROWS] [--batch-size N] [--keep-file] [--portable]
Prints rows/s for a first import and for a re-import (nothing changes), and peak RSS.
--portable writes each batch with the portable statements (executemany of INSERT … ON
CONFLICT, as on SQLite) instead of PostgreSQL's UNNEST ones, to measure what they buy.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from crm_sync.csv_import import import_customers
from crm_sync.csv_rows import COLUMNS
from crm_sync.csv_source import BATCH_ROWS
from gateway.core.clock import SystemClock
from gateway.core.db.engine import Database
from tests.support.databases import (
    create_postgres_database,
    drop_postgres_database,
)

FIRST = ["Олена", "Тарас", "Ірина", "Andrii", "Mariia", "Петро", "Оксана", "Dmytro", "Мар'яна"]
LAST = ["Коваленко", "Шевченко", "Бондаренко", "Tkachenko", "Kravchuk", "Мельник", "Бойко"]
PREFIXES = ["50", "63", "66", "67", "68", "73", "93", "95", "96", "97", "98", "99"]
FORMS = ["+380{p}{n}", "0{p}{n}", "+38 (0{p}) {a}-{b}-{c}", "00380{p}{n}", "0{p} {a} {b} {c}"]
REGIONS = ["Київ", "Львівська", "Харківська", "Одеська", "Дніпропетровська", "Полтавська"]
ZONES = ["Europe/Kyiv", "Europe/Kyiv", "Europe/Kyiv", "Europe/Warsaw", ""]


def phone(rng: random.Random) -> str:
    """One Ukrainian mobile number in a random written form."""
    number = f"{rng.randrange(10**7):07d}"
    return rng.choice(FORMS).format(
        p=rng.choice(PREFIXES), n=number, a=number[:3], b=number[3:5], c=number[5:]
    )


def generate(path: Path, rows: int, seed: int = 7) -> None:
    """Write `rows` valid customers (1-3 phones each) to `path`."""
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for index in range(rows):
            phones = ";".join(phone(rng) for _ in range(rng.choice((1, 1, 2, 3))))
            writer.writerow(
                [
                    f"C{index:08d}",
                    f"{rng.choice(FIRST)} {rng.choice(LAST)}",
                    phones,
                    f"client{index}@example.com" if rng.random() < 0.7 else "",
                    rng.choice(ZONES),
                    rng.choice(("uk", "uk", "ru", "en")),
                    rng.choice(REGIONS),
                    f"agent-{rng.choice((201, 202, 203))}",
                ]
            )


async def run(path: Path, batch_size: int) -> None:
    """Import twice into a fresh database and print the figures."""
    url = await asyncio.to_thread(create_postgres_database)
    database = Database(url)
    try:
        for label in ("first import", "re-import"):
            started = time.perf_counter()
            report = await import_customers(
                database, path, "UA", SystemClock(), progress=False, batch_size=batch_size
            )
            seconds = time.perf_counter() - started
            print(
                f"{label}: {report.rows_read} rows in {seconds:.1f} s = "
                f"{report.rows_read / seconds:,.0f} rows/s (created {report.created}, "
                f"updated {report.updated}, unchanged {report.unchanged}, "
                f"rejected {report.rejected})"
            )
    finally:
        await database.dispose()
        await asyncio.to_thread(drop_postgres_database, url)


def main() -> None:
    """Generate, import, report."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("rows", nargs="?", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=BATCH_ROWS)
    parser.add_argument("--keep-file", action="store_true")
    parser.add_argument(
        "--portable", action="store_true", help="the portable statements, not UNNEST"
    )
    args = parser.parse_args()
    if args.portable:
        from bench._portable import portable_csv_write

        portable_csv_write()
    print(f"statements: {'portable (executemany)' if args.portable else 'PostgreSQL (UNNEST)'}")
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "customers.csv"
        started = time.perf_counter()
        generate(path, args.rows)
        size = path.stat().st_size
        print(
            f"generated {args.rows} rows ({size / 2**20:.0f} MiB) "
            f"in {time.perf_counter() - started:.1f} s"
        )
        rss_before = psutil.Process().memory_info().rss
        asyncio.run(run(path, args.batch_size))
        if args.keep_file:
            kept = Path("bench-customers.csv")
            path.replace(kept)
            print(f"kept the file as {kept}")
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        f"RSS before import {rss_before / 2**20:.0f} MiB, "
        f"peak RSS {peak_kib / 1024:.0f} MiB (Linux ru_maxrss)"
    )
    print("load average: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
