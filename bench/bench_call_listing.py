"""Benchmark: what the operators' own-calls filter costs `GET /api/calls` on PostgreSQL.

Usage: python bench/bench_call_listing.py [CALLS] [--agents 50] [--pages 40] [--runs 3]

Loads CALLS (default 200,000) ended calls, one operator leg each, half of them one busy
operator's and the rest spread over AGENTS operators (one extension each), every tenth
call transferred to a second operator, into a throwaway database with COPY. Then times
one page (50, newest first) of the listing query exactly as the handler builds it
(gateway/calls/access.visible_calls, then the keyset page): an admin (no filter, what
every operator got before), an operator with half the calls, one with a small share and
one with none. Each case: PAGES first pages and PAGES second pages (cursor); median of
RUNS runs of each case's median page time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._telephony import AGENT_COLUMNS
from gateway.core.db.engine import Database
from gateway.core.db.models import Call
from gateway.core.http.access import visible_calls
from gateway.core.http.auth import Principal
from tests.support.databases import create_postgres_database, drop_postgres_database

PAGE = 50
CHUNK = 50_000


def pg(url: str) -> str:
    """The asyncpg form of a SQLAlchemy URL."""
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def load(url: str, calls: int, agents: int) -> None:
    """COPY agents, extensions, calls and legs in."""
    connection = await asyncpg.connect(pg(url))
    started = time.perf_counter()
    now = datetime.now(UTC).replace(tzinfo=None)  # the columns are naive UTC
    try:
        agent_rows = [
            (f"agt_{n}", f"agent-{n}", f"Agent {n}", "[]", "[]", "[]", True, now, now)
            for n in range(agents + 1)  # the last one has no calls
        ]
        await connection.copy_records_to_table(
            "agents",
            records=agent_rows,
            columns=AGENT_COLUMNS,
        )
        await connection.copy_records_to_table(
            "agent_extensions",
            records=[(str(200 + n), f"agt_{n}") for n in range(agents + 1)],
            columns=["extension", "agent_id"],
        )
        for start in range(0, calls, CHUNK):
            rows, legs = [], []
            for index in range(start, min(start + CHUNK, calls)):
                # Half the calls are agent-0's (a busy operator); the rest spread evenly.
                extension = str(200 + (0 if index % 2 == 0 else index % agents))
                at = now - timedelta(seconds=calls - index)
                call_id = f"call_{index:012d}"
                rows.append(
                    (
                        call_id,
                        "inbound",
                        "ended",
                        "+380501234567",
                        extension,
                        extension,
                        "none",
                        at,
                        at,
                        at,
                        30,
                        "{}",
                        at,
                        at,
                    )
                )
                legs.append((f"u{index}a", call_id, f"PJSIP/{extension}-1", "operator", extension))
                if index % 10 == 0:  # a transfer: a second operator's leg
                    other = str(200 + (index + 1) % agents)
                    legs.append((f"u{index}b", call_id, f"PJSIP/{other}-2", "operator", other))
            await connection.copy_records_to_table(
                "calls",
                records=rows,
                columns=[
                    "id",
                    "direction",
                    "state",
                    "caller",
                    "callee",
                    "extension",
                    "match",
                    "started_at",
                    "answered_at",
                    "ended_at",
                    "talk_seconds",
                    "details",
                    "created_at",
                    "updated_at",
                ],
            )
            await connection.copy_records_to_table(
                "call_legs",
                records=legs,
                columns=["uniqueid", "call_id", "channel", "role", "extension"],
            )
        await connection.execute("ANALYZE")
    finally:
        await connection.close()
    print(
        f"loaded {calls:,} calls over {agents} operators in {time.perf_counter() - started:.1f} s"
    )


async def page_times(database: Database, principal: Principal, pages: int) -> list[float]:
    """Milliseconds per page: `pages` first pages, then as many second pages."""
    timings = []
    cursor = None
    for second in (False, True):
        for _ in range(pages):
            after: str | None = cursor if second else None
            # As list_calls builds it (then keyset_page: cursor, order, limit).
            started = time.perf_counter()
            async with database.sessions() as session:
                query = await visible_calls(
                    session, select(Call), principal, after=after, limit=PAGE + 1
                )
            if after is not None:
                query = query.where(Call.id < after)
            query = query.order_by(Call.id.desc()).limit(PAGE + 1)
            async with database.sessions() as session:
                rows = (await session.scalars(query)).all()
            timings.append((time.perf_counter() - started) * 1000)
            if not second:
                cursor = rows[PAGE - 1].id if len(rows) >= PAGE else None
    return timings


async def run(calls: int, agents: int, pages: int, runs: int) -> None:
    """Load, then time each case RUNS times; print medians."""
    url = await asyncio.to_thread(create_postgres_database)
    try:
        await load(url, calls, agents)
        database = Database(url)
        cases = {
            "admin (no filter; every operator before)": Principal("admin"),
            "operator with half the calls": Principal("operator", "agent-0"),
            f"operator with 1/{agents} of the calls": Principal("operator", "agent-7"),
            "operator with no calls": Principal("operator", f"agent-{agents}"),
        }
        try:
            await page_times(database, Principal("admin"), 5)  # warm pool and caches
            results: dict[str, list[tuple[float, float]]] = {label: [] for label in cases}
            for _ in range(runs):
                for label, principal in cases.items():
                    timings = await page_times(database, principal, pages)
                    results[label].append(
                        (statistics.median(timings), statistics.quantiles(timings, n=20)[18])
                    )
        finally:
            await database.dispose()
    finally:
        await asyncio.to_thread(drop_postgres_database, url)
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"GET /api/calls page of {PAGE} on {calls:,} calls (median of {runs} runs):")
    for label, figures in results.items():
        median = statistics.median(m for m, _ in figures)
        p95 = statistics.median(p for _, p in figures)
        print(f"  {label:<44} median {median:7.2f} ms   p95 {p95:7.2f} ms")


def main(argv: list[str] | None = None) -> None:
    """Parse arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("calls", nargs="?", type=int, default=200_000)
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--pages", type=int, default=40)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    asyncio.run(run(args.calls, args.agents, args.pages, args.runs))


if __name__ == "__main__":
    main()
