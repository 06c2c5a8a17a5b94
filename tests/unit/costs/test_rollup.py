"""The hourly ledger rollup gives exactly the sums of the ledger lines, after any write."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from alembic import command
from sqlalchemy import delete, func, insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection

from gateway.core.clock import parse_time_input
from gateway.core.db.engine import Database
from gateway.core.db.migrate import alembic_config
from gateway.core.db.models import CostEntry, CostLedgerHour
from gateway.costs import rollup
from gateway.costs.ledger import months_between
from tests.support.cost_population import insert_rows, ledger_row

FIRST = datetime(2026, 9, 25, tzinfo=UTC)
SPAN_SECONDS = 102 * 86_400  # to early January
CAMPAIGNS = (None, "cmpA", "cmpB")


def random_line(number: int, rng: random.Random) -> dict[str, Any]:
    """A ledger line at a random microsecond, with any campaign, channel, price and source."""
    at = FIRST + timedelta(seconds=rng.randrange(SPAN_SECONDS), microseconds=rng.randrange(10**6))
    row = ledger_row(
        number,
        f"c{rng.randrange(50)}",
        rng.choice(CAMPAIGNS),
        at,
        Decimal(rng.randrange(1, 200_000)) / 10_000,
        currency=rng.choice(("UAH", "USD")),
        channel=rng.choice(("sms", "email", "voice")),
        source=rng.choice(("configured", "provider")),
    )
    row["units"] = rng.randrange(1, 400)
    return row


def windows() -> list[tuple[str, datetime, datetime, list[str] | None]]:
    """(zone, start, stop, campaigns): whole-hour zones, half- and quarter-hour zones,
    a window starting at an odd instant, one inside a single hour, one campaign."""
    kyiv, kolkata, kathmandu = "Europe/Kyiv", "Asia/Kolkata", "Asia/Kathmandu"
    odd = datetime(2026, 10, 3, 7, 13, 22, 123_456, tzinfo=UTC)

    def day(text: str, zone: str) -> datetime:
        return parse_time_input(text, zone)

    return [
        (kyiv, day("2026-10-01", kyiv), day("2027-01-01", kyiv), None),
        (kolkata, day("2026-10-01", kolkata), day("2026-12-01", kolkata), None),
        (kathmandu, odd, day("2026-12-20", kathmandu), None),
        ("UTC", odd.replace(hour=10, minute=15), odd.replace(hour=10, minute=45), None),
        (kathmandu, FIRST, FIRST + timedelta(seconds=SPAN_SECONDS), ["cmpA"]),
        (kyiv, day("2026-11-01", kyiv), day("2026-12-01", kyiv), ["cmpB", "cmpA"]),
    ]


async def assert_rollup_matches_lines(database: Database) -> int:
    """Every window's sums from rollup plus edges equal one pass over the lines."""
    compared = 0
    async with database.sessions() as session:
        for zone, start, stop, campaigns in windows():
            months = months_between(start, stop, zone)
            from_lines = rollup.as_groups(
                await rollup.lines_grouped(session, [(start, stop)], months, campaigns)
            )
            assert await rollup.ledger_groups(session, months, campaigns) == from_lines
            compared += sum(group.lines for group in from_lines)
    await assert_table_is_the_lines_summed(database)
    return compared


async def assert_table_is_the_lines_summed(database: Database) -> None:
    """The rollup rows are the lines summed per hour and key, computed here in Python."""
    expected: dict[tuple[Any, ...], list[int]] = defaultdict(lambda: [0, 0, 0])
    async with database.sessions() as session:
        for line in await session.scalars(select(CostEntry)):
            hour = line.at.replace(minute=0, second=0, microsecond=0)
            key = (hour, line.campaign_id or "", line.channel, line.currency, line.source)
            sums = expected[key]
            sums[0] += int(line.amount * 10_000)
            sums[1] += 1
            sums[2] += line.units
        found = {
            (r.hour, r.campaign_key, r.channel, r.currency, r.source): [
                r.amount_e4,
                r.lines,
                r.units,
            ]
            for r in await session.scalars(select(CostLedgerHour).where(CostLedgerHour.lines != 0))
        }
        zeros = await session.scalars(select(CostLedgerHour).where(CostLedgerHour.lines == 0))
        assert all(r.amount_e4 == 0 and r.units == 0 for r in zeros)
    assert found == dict(expected)


async def test_split_keeps_whole_hours_and_leaves_the_edges() -> None:
    start = datetime(2026, 10, 31, 18, 15, tzinfo=UTC)  # Kolkata midnight on 1 Nov is 18:30
    months = months_between(start, datetime(2026, 11, 2, 0, 30, tzinfo=UTC), "Asia/Kolkata")
    split = rollup.split_months(months)
    assert split.whole_hours == [
        (datetime(2026, 10, 31, 19, tzinfo=UTC), datetime(2026, 11, 2, tzinfo=UTC)),
    ]
    assert split.partial == [
        (start, datetime(2026, 10, 31, 18, 30, tzinfo=UTC)),
        (datetime(2026, 10, 31, 18, 30, tzinfo=UTC), datetime(2026, 10, 31, 19, tzinfo=UTC)),
        (datetime(2026, 11, 2, tzinfo=UTC), datetime(2026, 11, 2, 0, 30, tzinfo=UTC)),
    ]


async def test_rollup_equals_the_lines_after_inserts_late_edits_and_deletes(
    database: Database,
) -> None:
    rng = random.Random(6)
    await insert_rows(database, CostEntry, (random_line(i, rng) for i in range(800)))
    assert await assert_rollup_matches_lines(database) > 1_000  # windows overlap

    # New lines arrive one by one, as the send pipeline and call recorder write them.
    for number in range(800, 830):
        async with database.transaction() as session:
            await session.execute(insert(CostEntry).values(**random_line(number, rng)))
    ids = [f"cost{i:08d}" for i in rng.sample(range(830), 200)]
    async with database.transaction() as session:
        dialect_insert = (
            pg_insert if database.engine.dialect.name == "postgresql" else sqlite_insert
        )
        # A second line for the same contact is refused and must count for nothing.
        duplicate = random_line(801, rng) | {"id": "cost-duplicate"}
        await session.execute(
            dialect_insert(CostEntry).values(**duplicate).on_conflict_do_nothing()
        )
        # The provider's price replaces the configured estimate (late edit, upsert).
        price = random_line(802, rng) | {"id": "cost-price"}
        await session.execute(
            dialect_insert(CostEntry)
            .values(**price)
            .on_conflict_do_update(
                index_elements=[CostEntry.contact_id],
                set_={"amount": Decimal("0.0079"), "currency": "USD", "source": "provider"},
            )
        )
        await session.execute(
            update(CostEntry)
            .where(CostEntry.id.in_(ids[:60]))
            .values(amount=CostEntry.amount + Decimal("0.0101"), units=CostEntry.units + 1)
        )
        # Lines moved to another hour and month, and out of their campaign.
        for line in await session.scalars(select(CostEntry).where(CostEntry.id.in_(ids[60:100]))):
            line.at += timedelta(days=31, minutes=7)
            line.campaign_id = None
        await session.flush()
        await session.execute(delete(CostEntry).where(CostEntry.id.in_(ids[100:160])))
    async with database.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(CostEntry)) == 770
        edited = await session.get(CostEntry, "cost00000802")
        assert edited is not None and edited.source == "provider"
    assert await assert_rollup_matches_lines(database) > 1_000


async def test_rollup_is_empty_after_the_ledger_is_emptied(database: Database) -> None:
    rng = random.Random(7)
    await insert_rows(database, CostEntry, (random_line(i, rng) for i in range(50)))
    async with database.transaction() as session:
        if database.engine.dialect.name == "postgresql":
            await session.execute(text("TRUNCATE cost_ledger"))
        else:  # SQLite has no TRUNCATE; its DELETE without WHERE skips row triggers
            await session.execute(delete(CostEntry))  # unless, as here, there are some
    async with database.sessions() as session:
        months = months_between(FIRST, FIRST + timedelta(seconds=SPAN_SECONDS), "UTC")
        assert await rollup.ledger_groups(session, months, None) == []
        assert await session.scalar(select(func.coalesce(func.sum(CostLedgerHour.lines), 0))) == 0


async def test_upgrade_sums_the_lines_written_before_the_rollup(database: Database) -> None:
    def migrate(connection: Connection, down: bool) -> None:
        config = alembic_config(database.url)
        config.attributes["connection"] = connection
        (command.downgrade if down else command.upgrade)(config, "0002" if down else "head")

    async with database.engine.begin() as connection:
        await connection.run_sync(migrate, True)
    try:
        rng = random.Random(8)
        await insert_rows(database, CostEntry, (random_line(i, rng) for i in range(300)))
    finally:
        async with database.engine.begin() as connection:
            await connection.run_sync(migrate, False)
    assert await assert_rollup_matches_lines(database) > 300
