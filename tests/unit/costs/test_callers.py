"""Distinct callers per arm and month from the one masked pass equal a plain count."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, literal, select

from gateway.core.clock import parse_time_input
from gateway.core.db.engine import Database
from gateway.core.db.models import Call, ExperimentAssignment
from gateway.costs.callers import MONTHS_PER_MASK, CampaignTopic, callers_by_month
from gateway.costs.ledger import Month, months_between
from gateway.costs.savings import SavingsQuery, savings_report
from gateway.settings import Settings
from tests.support.cost_population import add_campaign, add_customers, assign, call_row, insert_rows

FIRST = datetime(2021, 1, 1, tzinfo=UTC)
LAST = datetime(2027, 1, 1, tzinfo=UTC)
TOPICS = ("payment_amount", "card_blocked", "other", None)


async def population(database: Database) -> list[CampaignTopic]:
    """Three campaigns (two topics and one without) over overlapping customers, and
    calls of every topic, direction and kind over six years."""
    rng = random.Random(61)
    ids = await add_customers(database, 300, FIRST)
    a = await add_campaign(database, "a", FIRST, "payment_amount")
    b = await add_campaign(database, "b", FIRST, "card_blocked")
    c = await add_campaign(database, "c", FIRST, None)
    await assign(database, a, {"holdout": ids[:50], "sms": ids[50:200]}, FIRST)
    await assign(database, b, {"holdout": ids[100:140], "email": ids[140:300]}, FIRST)
    await assign(
        database, c, {"holdout": ids[::3], "sms": [i for i in ids if i not in ids[::3]]}, FIRST
    )
    span = int((LAST - FIRST).total_seconds())
    rows = [
        call_row(
            n,
            rng.choice([*ids[:250], None]),
            FIRST + timedelta(seconds=rng.randrange(span), microseconds=rng.randrange(10**6)),
            topic=rng.choice(TOPICS),
            direction=rng.choice(("inbound", "inbound", "outbound")),
        )
        for n in range(3_000)
    ]
    await insert_rows(database, Call, rows)
    return [(a, "payment_amount"), (b, "card_blocked"), (c, None)]


async def plain_count(
    database: Database, campaigns: list[CampaignTopic], months: list[Month]
) -> dict[tuple[str, str, str], int]:
    """Sets of customers per (campaign, arm, month), counted in Python."""
    async with database.sessions() as session:
        calls = (await session.scalars(select(Call))).all()
        arms = (await session.scalars(select(ExperimentAssignment))).all()
    start, stop = months[0].start, months[-1].stop
    callers: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    for campaign_id, topic in campaigns:
        members = {x.customer_id: x.arm for x in arms if x.campaign_id == campaign_id}
        for call in calls:
            at = call.started_at
            if call.direction != "inbound" or call.customer_id not in members or at is None:
                continue
            if (topic is not None and call.topic != topic) or not start <= at < stop:
                continue
            arm = members[call.customer_id]
            month = next(m.label for m in months if m.start <= at < m.stop)
            callers[(campaign_id, arm, "")].add(call.customer_id)
            callers[(campaign_id, arm, month)].add(call.customer_id)
    return {key: len(found) for key, found in callers.items()}


async def test_masked_counts_equal_plain_counts_in_every_window(database: Database) -> None:
    campaigns = await population(database)
    kolkata = "Asia/Kolkata"
    odd = datetime(2025, 3, 17, 9, 41, 7, 250_000, tzinfo=UTC)
    windows = [
        ("Europe/Kyiv", parse_time_input("2026-01-01", "Europe/Kyiv"), LAST),
        (kolkata, odd, parse_time_input("2026-02-01", kolkata)),
        ("UTC", datetime(2026, 5, 1, tzinfo=UTC), datetime(2026, 6, 1, tzinfo=UTC)),
        ("UTC", FIRST, LAST),  # 72 months: more than one mask holds
    ]
    assert len(months_between(FIRST, LAST, "UTC")) > MONTHS_PER_MASK
    for zone, start, stop in windows:
        months = months_between(start, stop, zone)
        async with database.sessions() as session:
            found = await callers_by_month(session, campaigns, start, stop, months)
        expected = await plain_count(database, campaigns, months)
        assert {k: n for k, n in found.items() if n} == expected
        assert sum(n for (_, _, month), n in expected.items() if month == "") > 20


async def test_each_campaign_counts_callers_on_its_own_topic(
    database: Database, settings: Settings
) -> None:
    """All campaigns in one report give each the figures of its report alone."""
    await population(database)
    year = SavingsQuery(
        start=datetime(2026, 1, 1, tzinfo=UTC), end=LAST - timedelta(microseconds=1)
    )
    together = await savings_report(database, settings, year)
    assert len(together["campaigns"]) == 3
    for campaign in together["campaigns"]:
        alone = SavingsQuery(start=year.start, end=year.end, campaign=campaign["campaign"])
        [single] = (await savings_report(database, settings, alone))["campaigns"]
        assert campaign["deflection"] == single["deflection"]
        assert campaign["months"] == single["months"]
        assert int(str(campaign["deflection"]["control_callers"])) > 0


async def test_repeated_counts_agree_and_leave_the_transaction_settings_as_they_were(
    database: Database,
) -> None:
    """Past the five runs after which PostgreSQL may plan a statement once for all
    values, counts stay the same; the planner settings the count takes for itself are
    back to what the transaction had, even values set earlier in it."""
    campaigns = await population(database)
    start, stop = datetime(2025, 1, 1, tzinfo=UTC), datetime(2026, 7, 1, tzinfo=UTC)
    months = months_between(start, stop, "UTC")
    expected = await plain_count(database, campaigns, months)
    names = ("max_parallel_workers_per_gather", "plan_cache_mode")
    postgres = database.engine.dialect.name == "postgresql"
    async with database.sessions() as session:
        if postgres:
            await session.execute(
                select(func.set_config("max_parallel_workers_per_gather", "1", literal(True)))
            )
            before = [await session.scalar(select(func.current_setting(n))) for n in names]
        for _ in range(7):
            found = await callers_by_month(session, campaigns, start, stop, months)
            assert {k: n for k, n in found.items() if n} == expected
        if postgres:
            after = [await session.scalar(select(func.current_setting(n))) for n in names]
            assert after == before == ["1", "auto"]
