"""The same rule gives the same customers in SQL and in Python, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from itertools import cycle
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.core.db.engine import Database
from gateway.core.db.models import (
    Activity,
    Call,
    Customer,
    OutboundContact,
    Payment,
)
from gateway.core.rules import (
    CustomerFacts,
    CustomerNotFound,
    evaluate,
    load_facts,
    segment,
    validate_rule,
)
from gateway.core.rules.fields import local_today
from tests.support.databases import truncate_all
from tests.support.rule_strategies import (
    AMOUNTS,
    DAY_CHOICES,
    INTEGER_FIELDS,
    ORDERED,
    PRODUCTS,
    REGIONS,
    leaf,
    rules,
)

START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
# (as_of, timezone): the second is late evening UTC, already the next day in Kyiv.
MOMENTS = (
    (START, "UTC"),
    (START + timedelta(days=3, hours=13, minutes=30), "Europe/Kyiv"),
    (START - timedelta(days=10), "UTC"),
)
JITTERS = (
    timedelta(0),
    timedelta(microseconds=1),
    timedelta(microseconds=-1),
    timedelta(seconds=1),
    timedelta(seconds=-1),
    timedelta(hours=3),
    timedelta(hours=-3),
)
TOPICS = ("billing", "cancel")
POPULATION = 80


def near_boundary(rng: random.Random, days: range) -> datetime:
    """A time a whole number of days before one of the moments, give or take a little."""
    moment = rng.choice(MOMENTS)[0]
    count = rng.choice(DAY_CHOICES) if rng.random() < 0.7 else rng.choice(days)
    return moment - timedelta(days=count) + rng.choice(JITTERS)


def make_customer(rng: random.Random, index: int) -> list[Any]:
    """One customer and its rows, with edge cases near every boundary."""
    cid = f"cus_{index:04d}"
    attributes: dict[str, Any] = {}
    for name in ("score", "tier", "vip"):
        roll = rng.random()
        if roll < 0.25:
            continue
        attributes[name] = rng.choice(
            [0, 3, 7, 3.5, -1, 10**12, "3", "gold", "silver", True, False, None]
        )
    customer = Customer(
        id=cid,
        external_id=f"ext-{index}",
        name=f"Customer {index}",
        status=rng.choice(("active", "warm", "cold", "lost", "cancelled")),
        region=rng.choice((*REGIONS, None)),
        language=rng.choice(("uk", "en", None)),
        timezone=rng.choice(("Europe/Kyiv", None)),
        responsible_agent=rng.choice(("agent-1", "agent-2", None)),
        products=rng.sample(PRODUCTS, rng.randrange(4)),
        bonus_balance=rng.choice((*AMOUNTS, None)),
        attributes=attributes,
        contract_started_at=rng.choice((near_boundary(rng, range(-2, 40)), None)),
        next_monitoring_at=rng.choice((near_boundary(rng, range(-10, 10)), None)),
        deleted_at=START if index % 17 == 16 else None,
        created_at=START,
        updated_at=START,
    )
    rows: list[Any] = [customer]
    for number in range(rng.randrange(6)):
        rows.append(
            Activity(
                id=f"act_{index:04d}_{number}",
                customer_id=cid,
                kind=rng.choice(("order", "order", "card_use", "login")),
                at=near_boundary(rng, range(-3, 40)),
            )
        )
    for number in range(rng.randrange(4)):
        moment, zone = rng.choice(MOMENTS)
        rows.append(
            Payment(
                id=f"pay_{index:04d}_{number}",
                customer_id=cid,
                contract_id=f"k{number}",
                due_date=local_today(moment, zone) + timedelta(days=rng.choice((-1, 0, 2, 5))),
                amount=rng.choice((*AMOUNTS[1:], Decimal("0.0001"), Decimal("150.2"))),
                currency="UAH",
                status=rng.choice(("due", "due", "paid")),
                updated_at=START,
            )
        )
    for number in range(rng.randrange(5)):
        rows.append(
            Call(
                id=f"call_{index:04d}_{number}",
                customer_id=cid,
                topic=rng.choice((*TOPICS, None)),
                started_at=rng.choice((near_boundary(rng, range(-1, 32)), None)),
                created_at=START,
                updated_at=START,
            )
        )
    for number in range(rng.randrange(5)):
        rows.append(
            OutboundContact(
                id=f"oc_{index:04d}_{number}",
                idempotency_key=f"test:{cid}:{number}",
                channel=rng.choice(("sms", "email", "voice")),
                customer_id=cid,
                status=rng.choice(("sent", "delivered", "failed", "pending")),
                sent_at=rng.choice((near_boundary(rng, range(-2, 40)), None)),
                created_at=START,
                updated_at=START,
            )
        )
    if index % 4 == 0:
        rows += exact_boundaries(cid, MOMENTS[index // 4 % len(MOMENTS)][0])
    return rows


def exact_boundaries(cid: str, moment: datetime) -> list[Any]:
    """Rows exactly on the edges of the time windows, which random times rarely hit."""
    return [
        Activity(
            id=f"act_{cid}_edge", customer_id=cid, kind="order", at=moment - timedelta(days=1)
        ),
        Call(
            id=f"call_{cid}_edge",
            customer_id=cid,
            topic="billing",
            started_at=moment - timedelta(days=30),
            created_at=START,
            updated_at=START,
        ),
        OutboundContact(
            id=f"oc_{cid}_edge",
            idempotency_key=f"edge:{cid}",
            channel="sms",
            customer_id=cid,
            status="delivered",
            sent_at=moment - timedelta(days=7),
            created_at=START,
            updated_at=START,
        ),
    ]


async def populate(database: Database, seed: int) -> list[str]:
    """A fixed random population; returns every customer id (deleted ones included)."""
    rng = random.Random(seed)
    ids = []
    async with database.transaction() as session:
        for index in range(POPULATION):
            rows = make_customer(rng, index)
            ids.append(rows[0].id)
            session.add(rows[0])
            await session.flush()
            session.add_all(rows[1:])
    return ids


async def all_facts(
    database: Database, ids: list[str], as_of: datetime, zone: str
) -> dict[str, CustomerFacts]:
    """Facts of every live customer at one moment."""
    facts = {}
    async with database.sessions() as session:
        for cid in ids:
            try:
                facts[cid] = await load_facts(session, cid, as_of, timezone=zone)
            except CustomerNotFound:
                continue
    return facts


async def segment_ids(database: Database, raw: Any, as_of: datetime, zone: str) -> set[str]:
    """The ids the SQL segment returns."""
    rule = validate_rule(raw)
    async with database.sessions() as session:
        result = await session.execute(segment(session, rule, as_of, timezone=zone))
        return set(result.scalars())


# --- rule strategies -------------------------------------------------------------------


def test_sql_segment_equals_python_evaluation(database_url: str) -> None:
    """For random rules and moments, SQL selects exactly the customers Python accepts."""
    with asyncio.Runner() as runner:
        database = Database(database_url)
        try:
            if not database.is_sqlite:
                runner.run(truncate_all(database))
            ids = runner.run(populate(database, seed=20261102))
            facts = {moment: runner.run(all_facts(database, ids, *moment)) for moment in MOMENTS}
            assert len(facts[MOMENTS[0]]) == POPULATION - (POPULATION + 1) // 17
            chosen: list[int] = []

            @settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
            @given(raw=rules(), moment=st.sampled_from(MOMENTS))
            def check(raw: Any, moment: tuple[datetime, str]) -> None:
                rule = validate_rule(raw)
                expected = {cid for cid, item in facts[moment].items() if evaluate(rule, item)}
                got = runner.run(segment_ids(database, raw, *moment))
                assert got == expected, (raw, moment, got ^ expected)
                chosen.append(len(got))

            check()
            # The population and rules are rich enough that segments are neither always
            # empty nor always everybody.
            assert any(0 < size < len(facts[MOMENTS[0]]) for size in chosen)
        finally:
            runner.run(database.dispose())


def test_single_conditions_on_derived_facts(database_url: str) -> None:
    """Many single conditions on the derived facts, where every boundary matters."""
    with asyncio.Runner() as runner:
        database = Database(database_url)
        try:
            if not database.is_sqlite:
                runner.run(truncate_all(database))
            ids = runner.run(populate(database, seed=7))
            facts = {moment: runner.run(all_facts(database, ids, *moment)) for moment in MOMENTS}
            days = st.one_of(st.sampled_from(DAY_CHOICES), st.integers(-2, 32))
            ops = (*ORDERED, "in", "not_in")
            condition = st.one_of(
                *(leaf(field, days, ops) for field in INTEGER_FIELDS if "calls" not in field),
                leaf("orders_last_day", st.integers(0, 3), ops),
                leaf("topic_calls_30d.billing", st.integers(0, 3), ops),
            )

            @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
            @given(raw=condition, moment=st.sampled_from(MOMENTS))
            def check(raw: Any, moment: tuple[datetime, str]) -> None:
                rule = validate_rule(raw)
                expected = {cid for cid, item in facts[moment].items() if evaluate(rule, item)}
                assert runner.run(segment_ids(database, raw, *moment)) == expected, raw

            check()
        finally:
            runner.run(database.dispose())


# --- documented semantics on fixed data -----------------------------------------------


async def _add(session: AsyncSession, *rows: Any) -> None:
    for row in rows:
        session.add(row)
        await session.flush()


def _customer(cid: str, **values: Any) -> Customer:
    return Customer(id=cid, external_id=cid, name=cid, created_at=START, updated_at=START, **values)


async def _selected(database: Database, raw: Any, as_of: datetime = START) -> set[str]:
    return await segment_ids(database, raw, as_of, "UTC")


async def test_missing_data_makes_comparisons_false_and_not_true(database: Database) -> None:
    """A never-active customer: every comparison false, `exists` false, `not` true."""
    async with database.transaction() as session:
        await _add(session, _customer("never"), _customer("active"))
        await _add(
            session,
            Activity(id="a1", customer_id="active", kind="login", at=START - timedelta(days=2)),
        )
    for op, value in (("<", 30), (">=", 0), ("!=", 5), ("not_in", [1, 2])):
        condition = {"field": "days_since_activity", "op": op, "value": value}
        assert "never" not in await _selected(database, condition)
        assert "never" in await _selected(database, {"not": condition})
    assert await _selected(database, {"field": "days_since_activity", "op": "exists"}) == {"active"}
    assert await _selected(
        database, {"field": "days_since_activity", "op": "exists", "value": False}
    ) == {"never"}
    async with database.sessions() as session:
        never = await load_facts(session, "never", START)
    assert never.days_since_activity is None
    assert not evaluate(
        validate_rule({"field": "days_since_activity", "op": "<", "value": 30}), never
    )


async def test_day_counts_are_whole_days_before_as_of(database: Database) -> None:
    """30 days exactly is 30; one microsecond less is 29; later activity is ignored."""
    async with database.transaction() as session:
        await _add(session, _customer("exact"), _customer("almost"), _customer("future"))
        await _add(
            session,
            Activity(id="e", customer_id="exact", kind="order", at=START - timedelta(days=30)),
            Activity(
                id="a",
                customer_id="almost",
                kind="order",
                at=START - timedelta(days=30) + timedelta(microseconds=1),
            ),
            Activity(id="f", customer_id="future", kind="order", at=START + timedelta(hours=1)),
        )
    rule = {"field": "days_since_order", "op": ">=", "value": 30}
    assert await _selected(database, rule) == {"exact"}
    assert await _selected(database, {"field": "days_since_order", "op": "==", "value": 29}) == {
        "almost"
    }
    assert await _selected(database, {"field": "days_since_order", "op": "exists"}) == {
        "exact",
        "almost",
    }
    async with database.sessions() as session:
        future = await load_facts(session, "future", START)
        later = await load_facts(session, "future", START + timedelta(days=3))
    assert future.days_since_order is None
    assert later.days_since_order == 2
    assert later.orders_last_day == 0


async def test_next_payment_is_the_earliest_unpaid_one(database: Database) -> None:
    """Overdue counts (negative days); two payments on that day are added up; paid ones not."""
    today: date = START.date()
    async with database.transaction() as session:
        await _add(session, _customer("debtor"))
        await _add(
            session,
            *(
                Payment(
                    id=f"p{number}",
                    customer_id="debtor",
                    contract_id=f"k{number}",
                    due_date=today + timedelta(days=days),
                    amount=Decimal(amount),
                    currency="UAH",
                    status=status,
                    updated_at=START,
                )
                for number, (days, amount, status) in enumerate(
                    [(-5, "1.00", "paid"), (-2, "0.1", "due"), (-2, "0.2", "due"), (4, "7", "due")]
                )
            ),
        )
    async with database.sessions() as session:
        facts = await load_facts(session, "debtor", START)
    assert facts.days_until_payment == -2
    assert facts.payment_amount == Decimal("0.3")
    # 0.1 + 0.2 is not 0.3 in floats (SQLite adds money as floats): still equal here.
    for op in ("==", "<=", ">="):
        selected = await _selected(database, {"field": "payment_amount", "op": op, "value": "0.3"})
        assert selected == {"debtor"}, op
    assert await _selected(database, {"field": "days_until_payment", "op": "<", "value": 0}) == {
        "debtor"
    }


async def test_load_facts_of_unknown_or_deleted_customer(database: Database) -> None:
    """Unknown and deleted customers have no facts and never appear in a segment."""
    async with database.transaction() as session:
        await _add(session, _customer("gone", deleted_at=START))
    async with database.sessions() as session:
        for cid in ("gone", "nobody"):
            with pytest.raises(CustomerNotFound):
                await load_facts(session, cid, START)
    assert await _selected(database, {"field": "status", "op": "exists"}) == set()


# --- long value lists ------------------------------------------------------------------


def long_lists(rng: random.Random) -> list[tuple[str, list[Any]]]:
    """(field, 1,000 values) for every field that takes a list: runs, gaps, strays."""
    runs = list(range(-3, 997))
    evens = list(range(-40, 1960, 2))
    scattered = rng.sample(range(-100_000, 100_000), 990) + list(DAY_CHOICES) + [3, 4]
    money = [str(Decimal(n) / 4) for n in range(990)] + [str(a) for a in AMOUNTS] + ["150.2"] * 3
    words = [f"w{n}" for n in range(995)] + ["north", "uk", "agent-1", "Europe/Kyiv", "gold"]
    lists: list[tuple[str, list[Any]]] = []
    for field in INTEGER_FIELDS:
        lists += [(field, runs), (field, evens), (field, scattered)]
    lists += [(field, words) for field in ("region", "language", "timezone", "responsible_agent")]
    lists.append(("status", ["warm", "lost"] * 500))
    lists += [("bonus_balance", money), ("payment_amount", money)]
    for name in ("score", "tier", "vip"):
        lists += [(f"attributes.{name}", [*range(995), 3, 7, -1, 10**9, 0])]
        lists += [(f"attributes.{name}", [n / 2 for n in range(-2, 998)])]
        lists += [(f"attributes.{name}", words), (f"attributes.{name}", [True, False] * 500)]
    return lists


def test_thousand_value_lists_equal_python(database_url: str) -> None:
    """`in` / `not_in` over 1,000 values (also under `not`): one parameter per list,
    the same customers as Python on both databases."""
    with asyncio.Runner() as runner:
        database = Database(database_url)
        try:
            if not database.is_sqlite:
                runner.run(truncate_all(database))
            ids = runner.run(populate(database, seed=11))
            facts = {moment: runner.run(all_facts(database, ids, *moment)) for moment in MOMENTS}
            sizes = []
            for (field, values), moment in zip(long_lists(random.Random(5)), cycle(MOMENTS)):
                for op in ("in", "not_in"):
                    raw = {"field": field, "op": op, "value": values}
                    for shape in (raw, {"not": raw}):
                        rule = validate_rule(shape)
                        expected = {
                            cid for cid, item in facts[moment].items() if evaluate(rule, item)
                        }
                        got = runner.run(segment_ids(database, shape, *moment))
                        assert got == expected, (field, op, list(shape), moment)
                        sizes.append(len(got))
            assert any(0 < size < len(facts[MOMENTS[0]]) for size in sizes)
        finally:
            runner.run(database.dispose())
