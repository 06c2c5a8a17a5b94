"""Two gateway processes ticking the same moment: every contact exists exactly once.

Each "process" has its own Database engine (its own connection pool) and its own
RedisBus on the real Redis; they tick concurrently on the real PostgreSQL.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from gateway.campaigns.journey import contact_key
from gateway.campaigns.run_reports import TickReport
from gateway.campaigns.scheduler import run_campaign, tick
from gateway.campaigns.store import save_definition
from gateway.core.bus import RedisBus
from gateway.core.db.engine import Database
from gateway.core.db.models import Customer, Enrollment, OutboundContact
from gateway.settings import Settings
from tests.support.databases import truncate_all

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)  # after the 10:00 Kyiv fire
CUSTOMERS = 1200

JOURNEY = {
    "name": "two-step",
    "schedule": "0 10 * * *",
    "audience": {"field": "region", "op": "==", "value": "north"},
    "steps": [
        {"id": "first", "type": "send", "channel": "sms", "template": "first"},
        {"id": "pause", "type": "wait", "duration": "1d"},
        {"id": "second", "type": "send", "channel": "email", "template": "second"},
    ],
}


@pytest.fixture
async def two_databases(postgres_url: str) -> AsyncIterator[tuple[Database, Database]]:
    """Two engines on one emptied PostgreSQL database, as two processes would have."""
    first, second = Database(postgres_url, pool_size=4), Database(postgres_url, pool_size=4)
    await truncate_all(first)
    yield first, second
    await first.dispose()
    await second.dispose()


@pytest.fixture
def pg_settings(postgres_url: str) -> Settings:
    """Settings on the PostgreSQL test database (this file is PostgreSQL only)."""
    return Settings(database_url=postgres_url)


@pytest.fixture
async def two_buses(redis_url: str) -> AsyncIterator[tuple[RedisBus, RedisBus]]:
    """Two Redis buses on the real server."""
    buses = RedisBus(redis_url), RedisBus(redis_url)
    for bus in buses:
        await bus.start()
    yield buses
    for bus in buses:
        await bus.close()


async def seed(database: Database) -> None:
    """Customers in the audience, plus some outside it."""
    async with database.transaction() as session:
        for n in range(CUSTOMERS + 100):
            session.add(
                Customer(
                    id=f"cus_two{n:06d}",
                    external_id=f"ext-{n}",
                    name=f"Customer {n}",
                    region="north" if n < CUSTOMERS else "south",
                    status="active",
                    products=[],
                    attributes={},
                    created_at=T0 - timedelta(days=30),
                    updated_at=T0 - timedelta(days=30),
                )
            )
    await save_definition(database, JOURNEY, "test", T0 - timedelta(days=1))


async def keys(database: Database) -> Counter[str]:
    async with database.sessions() as session:
        return Counter(await session.scalars(select(OutboundContact.idempotency_key)))


async def test_two_instances_ticking_together_make_each_contact_once(
    two_databases: tuple[Database, Database],
    two_buses: tuple[RedisBus, RedisBus],
    pg_settings: Settings,
) -> None:
    settings = pg_settings
    one, two = two_databases
    await seed(one)
    customers = [f"cus_two{n:06d}" for n in range(CUSTOMERS)]
    for as_of in (T0, T0 + timedelta(days=1), T0 + timedelta(days=1, minutes=1)):
        reports: tuple[TickReport, TickReport] = await asyncio.gather(
            tick(one, settings, as_of, two_buses[0]), tick(two, settings, as_of, two_buses[1])
        )
        if as_of == T0:
            # Exactly one process enrolled; the other found the run held or already done.
            assert sorted(sum(r.enrolled for r in rep.runs) for rep in reports) == [0, CUSTOMERS]
        if as_of == T0 + timedelta(days=1):
            # Each due enrollment was advanced by exactly one of the two processes.
            assert sum(r.advance.enrollments for r in reports) == CUSTOMERS
            assert sum(r.advance.contacts for r in reports) == CUSTOMERS

    counted = await keys(one)
    expected = {
        contact_key("two-step", c, step, "once") for c in customers for step in ("first", "second")
    }
    assert set(counted) == expected
    assert max(counted.values()) == 1
    async with one.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(OutboundContact)) == len(
            expected
        )
        states = Counter(await session.scalars(select(Enrollment.state)))
        leased = await session.scalar(
            select(func.count()).select_from(Enrollment).where(Enrollment.locked_until.is_not(None))
        )
    assert states == {"done": CUSTOMERS}
    assert leased == 0


async def test_without_any_lock_the_database_still_keeps_it_exactly_once(
    two_databases: tuple[Database, Database], pg_settings: Settings
) -> None:
    settings = pg_settings
    one, two = two_databases
    await seed(one)
    # No bus at all (two CLI runs at once): only the constraints and row locks guard.
    await asyncio.gather(
        run_campaign(one, settings, "two-step", T0), run_campaign(two, settings, "two-step", T0)
    )
    await asyncio.gather(
        tick(one, settings, T0 + timedelta(days=1)), tick(two, settings, T0 + timedelta(days=1))
    )
    counted = await keys(one)
    assert len(counted) == 2 * CUSTOMERS
    assert max(counted.values()) == 1
    async with one.sessions() as session:
        enrollments = await session.scalar(select(func.count()).select_from(Enrollment))
    assert enrollments == CUSTOMERS
