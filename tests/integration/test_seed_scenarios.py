"""The shipped campaign definitions (config/campaigns) end to end, replayed day by day.

Everything enters through the real paths: the YAML files through `load_directory`,
customers, activity, complaints and payments through the CRM ingest, time through
`as_of` (ticks and the daily jobs), SMS through a SendWorker on sandbox channels.

PostgreSQL only: these replays are long and the engine's dialect differences are
already covered on both databases by test_journeys; see the skip in `seeded`.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select, update

from channels.sandbox import SandboxChannel
from gateway.campaigns.scheduler import run_campaign, tick
from gateway.campaigns.store import load_directory, save_definition
from gateway.core.clock import FixedClock, isoformat_z
from gateway.core.db.engine import Database
from gateway.core.db.models import (
    Call,
    Campaign,
    Customer,
    OutboundContact,
    OutboxItem,
    StatusChange,
    Task,
)
from gateway.core.scheduler import DailyReport
from gateway.core.scheduler import run_daily as run_jobs
from gateway.messages.pipeline import SendWorker
from gateway.messages.prepare import Preparer
from gateway.plugins import DAILY_JOBS
from gateway.settings import Settings
from gateway.tasks.service import CallTooShort, complete_task
from tests.support.factories import make_call
from tests.support.journeys import crm, customer

SEEDS = Path(__file__).resolve().parents[2] / "config" / "campaigns"
# 12:00 UTC is 14:00 (15:00 in summer) in Kyiv: after every shipped schedule of the day.
T0 = datetime(2027, 1, 4, 12, 0, tzinfo=UTC)
PHONE = "+380501234567"


async def run_daily(database: Database, settings: Settings, as_of: datetime) -> DailyReport:
    """Every plugin's daily job, as the gateway's scheduler runs them."""
    return await run_jobs(DAILY_JOBS, database, settings, as_of)


def day(n: float, hours: float = 0) -> datetime:
    """T0 plus `n` days and `hours` hours."""
    return T0 + timedelta(days=n, hours=hours)


@pytest.fixture
async def seeded(database: Database) -> Database:
    """The database with every shipped campaign and template loaded from the files."""
    if database.is_sqlite:
        pytest.skip("seed scenarios replay on PostgreSQL; SQLite is covered by test_journeys")
    report = await load_directory(database, SEEDS, day(-400))
    assert report.ok, report.refused
    assert len(report.loaded) == 8  # five campaigns, three templates
    return database


async def new_customer(database: Database, external_id: str, now: datetime, **extra: Any) -> str:
    """A customer as the CRM creates one; returns our id."""
    data = {
        "external_id": external_id,
        "name": external_id.title(),
        "region": "north",
        "responsible_agent": "agent-7",
        "phones": [PHONE],
        **extra,
    }
    await crm(database, "customer.upserted", data, now)
    async with database.sessions() as session:
        row = (
            await session.scalars(select(Customer).where(Customer.external_id == external_id))
        ).one()
        return row.id


async def activity(database: Database, external_id: str, kind: str, at: datetime) -> None:
    """A card use / order / login reported by the CRM when it happened."""
    data = {"external_id": external_id, "kind": kind, "at": isoformat_z(at)}
    await crm(database, "customer.activity", data, at)


async def topic_call(database: Database, customer_id: str, at: datetime, topic: str) -> str:
    """An answered call from the customer, wrapped up with `topic`."""
    call_id = await make_call(
        database, started_at=at, talk_seconds=60, caller=PHONE, customer_id=customer_id
    )
    async with database.transaction() as session:
        await session.execute(update(Call).where(Call.id == call_id).values(topic=topic))
    return call_id


async def contacts_of(database: Database, customer_id: str) -> list[OutboundContact]:
    async with database.sessions() as session:
        query = (
            select(OutboundContact)
            .where(OutboundContact.customer_id == customer_id)
            .order_by(OutboundContact.created_at)
        )
        return list(await session.scalars(query))


async def tasks_of(
    database: Database, customer_id: str, *, campaign: str | None = None
) -> list[Task]:
    async with database.sessions() as session:
        query = select(Task).where(Task.customer_id == customer_id).order_by(Task.created_at)
        if campaign is not None:
            query = query.join(Campaign, Campaign.id == Task.campaign_id).where(
                Campaign.name == campaign
            )
        return list(await session.scalars(query))


async def status_of(database: Database, customer_id: str) -> str:
    async with database.sessions() as session:
        row = await session.get(Customer, customer_id)
        assert row is not None
        return row.status


async def _send_pending(database: Database, settings: Settings, now: datetime) -> None:
    channels: dict[str, Any] = {"sms": SandboxChannel("sms"), "email": SandboxChannel("email")}
    sender = SendWorker(database, settings, FixedClock(now), channels, Preparer(settings))
    while await sender.run_once():
        pass


async def _outbox(database: Database, type_: str) -> list[OutboxItem]:
    async with database.sessions() as session:
        return list(await session.scalars(select(OutboxItem).where(OutboxItem.type == type_)))


async def test_payment_reminder_three_days_before_each_payment(
    seeded: Database, settings: Settings
) -> None:
    database = seeded
    caller = await new_customer(database, "c-caller", day(-10))
    once = await new_customer(database, "c-once", day(-10))
    for external_id in ("c-caller", "c-once"):
        for due in ("2027-01-14", "2027-02-14"):  # day 10 and day 41
            data = {
                "external_id": external_id,
                "contract_id": "loan-1",
                "due_date": due,
                "amount": "120.50",
                "currency": "UAH",
            }
            await crm(database, "payment.scheduled", data, day(-10))
    # Two calls about the amount within 30 days before each reminder; `once` calls once.
    for at in (day(1), day(2), day(30), day(31)):
        await topic_call(database, caller, at, "payment_amount")
    await topic_call(database, once, day(1), "payment_amount")
    await topic_call(database, once, day(2), "billing")  # another topic does not count

    created: list[datetime] = []
    for n in range(0, 45):
        if n == 10:
            # Paid on the day. An unpaid one stays the "next payment" (days_until_payment
            # goes negative) and no later payment would be reminded.
            for external_id in ("c-caller", "c-once"):
                paid = {
                    "external_id": external_id,
                    "contract_id": "loan-1",
                    "due_date": "2027-01-14",
                }
                await crm(database, "payment.paid", paid, day(n))
        await tick(database, settings, day(n))
        await tick(database, settings, day(n, hours=8))  # later that day: nothing new
        again = await run_campaign(database, settings, "payment-reminder", day(n, hours=9))
        assert (again.enrolled, again.advance.contacts) == (0, 0)  # even run by hand
        await _send_pending(database, settings, day(n, hours=1))
        sent = await contacts_of(database, caller)
        expected = [day(7)] if 7 <= n < 38 else [day(7), day(38)] if n >= 38 else []
        assert [c.created_at for c in sent] == expected, f"day {n}"
        created = [c.created_at for c in sent]
    assert created == [day(7), day(38)]  # 11 Jan and 11 Feb: three days before each
    sent = await contacts_of(database, caller)
    assert [(c.channel, c.template, c.status) for c in sent] == [
        ("sms", "payment-reminder", "delivered")
    ] * 2
    # Each rendered with its own payment (the one three days ahead), in uk by default.
    assert [c.body for c in sent] == [
        f"Нагадуємо: {due} платіж 120,50 грн за договором loan-1. Відповідь STOP - відписатися."
        for due in ("14.01.2027", "14.02.2027")
    ]
    assert await contacts_of(database, once) == []


async def test_reactivation_offer_reaction_call_and_cancellation(
    seeded: Database, settings: Settings
) -> None:
    database = seeded
    reacts = await new_customer(database, "c-reacts", day(-5), bonus_balance="250.00")
    silent = await new_customer(database, "c-silent", day(-5), bonus_balance="80.00")
    for external_id in ("c-reacts", "c-silent"):
        await activity(database, external_id, "card_use", day(0, hours=-2))

    reaction_at = day(100, hours=-4)
    for n in range(0, 182):
        if n == 100:
            await activity(database, "c-reacts", "card_use", reaction_at)
        await run_daily(database, settings, day(n))
        await tick(database, settings, day(n))
        await _send_pending(database, settings, day(n, hours=1))
        offers = await contacts_of(database, silent)
        # The offer goes out on the 90th day of silence, not a day before.
        assert len(offers) == (0 if n < 90 else 1), f"day {n}"
        if n == 95:
            assert await status_of(database, reacts) == "lost"  # silent 90 days
        if n == 100:
            # Active again (inactivity takes it down again later: warm on day 130).
            assert await status_of(database, reacts) == "active"
        cancels = await _outbox(database, "contract.cancel_requested")
        assert len(cancels) == (0 if n < 180 else 1), f"day {n}"

    offer, thanks = await contacts_of(database, reacts)
    assert (offer.template, offer.created_at) == ("reactivation-bonus", day(90))
    assert offer.status == "delivered"  # the sandbox reports delivery at once
    # Rendered in the default language (uk) with the customer's own balance.
    assert (
        offer.body
        == "На вашому бонусному рахунку 250,00 грн. Скористайтеся карткою, щоб їх витратити!"
    )
    (silent_offer,) = await contacts_of(database, silent)
    assert silent_offer.body is not None and "рахунку 80,00 грн." in silent_offer.body
    # The reaction (card use within 30 days) ends the wait at its own moment.
    async with database.sessions() as session:
        back = await session.execute(
            select(StatusChange.at, StatusChange.reason)
            .where(StatusChange.customer_id == reacts, StatusChange.to_status == "active")
            .order_by(StatusChange.at)
        )
        # The daily jobs run before the tick: the lifecycle's activity rule moved it
        # (at the card use), so the campaign's set_status found it active already.
        assert [tuple(r) for r in back] == [(day(-5), "created"), (reaction_at, "reactivation")]
    assert (thanks.template, thanks.created_at, thanks.status) == (
        "reactivation-thanks",
        reaction_at,
        "delivered",
    )
    assert await tasks_of(database, reacts, campaign="reactivation") == []

    (call,) = await tasks_of(database, silent, campaign="reactivation")
    assert (call.assignee, call.min_call_seconds, call.created_at) == ("agent-7", 20, day(120))
    assert call.due_at == day(123)
    (cancel,) = await _outbox(database, "contract.cancel_requested")
    assert cancel.payload["external_id"] == "c-silent"
    assert cancel.payload["reason"] == "silent_180_days"
    assert cancel.occurred_at == day(180)
    assert await status_of(database, silent) == "lost"


async def test_monitoring_call_task_at_one_in_the_morning(
    seeded: Database, settings: Settings
) -> None:
    database = seeded
    busy = await new_customer(database, "c-busy", day(-3))
    await new_customer(database, "c-quiet", day(-3))
    # Four orders within 24 h: the new-active detector plans monitoring (daily jobs).
    for hours in (-6, -5, -4, -3):
        await activity(database, "c-busy", "order", day(0, hours=hours))

    # Hour by hour from day -1 to the end of 5 Jan (local), the daily jobs at noon UTC.
    hour = day(-1)
    while hour <= datetime(2027, 1, 5, 21, 59, tzinfo=UTC):
        if hour.hour == 12:
            await run_daily(database, settings, hour)
        await tick(database, settings, hour)
        hour += timedelta(hours=1)

    async with database.sessions() as session:
        row = await session.get(Customer, busy)
        assert row is not None and row.next_monitoring_at == day(0)
        every = list(await session.scalars(select(Task)))
    # 5 Jan 01:00 in Kyiv (UTC+2): the first 01:00 run after the date was planned.
    one_am = datetime(2027, 1, 4, 23, 0, tzinfo=UTC)
    assert [(t.customer_id, t.assignee, t.created_at) for t in every] == [(busy, "agent-7", one_am)]
    assert every[0].min_call_seconds == 20 and every[0].due_at == one_am + timedelta(days=1)


async def test_a_completed_monitoring_call_plans_the_next_one(
    seeded: Database, settings: Settings
) -> None:
    database = seeded
    busy = await new_customer(database, "c-busy", day(-3))
    async with database.transaction() as session:
        await session.execute(
            update(Customer).where(Customer.id == busy).values(next_monitoring_at=day(0))
        )
    await tick(database, settings, day(0, hours=11))  # 01:00 on 5 Jan in Kyiv
    (task,) = await tasks_of(database, busy)
    call = await make_call(
        database, started_at=day(1, hours=-4), talk_seconds=40, caller=PHONE, customer_id=busy
    )
    async with database.transaction() as session:
        await complete_task(session, task.id, call, day(1, hours=-3))
    await run_daily(database, settings, day(1))
    await tick(database, settings, day(1, hours=11))  # 01:00 on 6 Jan
    assert len(await tasks_of(database, busy)) == 1
    async with database.sessions() as session:
        row = await session.get(Customer, busy)
        assert row is not None and row.next_monitoring_at is not None
        assert row.next_monitoring_at > day(20)


async def test_warm_and_cold_cadence_from_the_daily_jobs(
    seeded: Database, settings: Settings
) -> None:
    database = seeded
    # Silent since creation 30 days ago: warm today, cold on day 30, lost on day 60.
    fading = await new_customer(database, "c-fading", day(-30))
    unhappy = await new_customer(database, "c-unhappy", day(-1))
    complaint_at = day(5, hours=-3)
    data = {"external_id": "c-unhappy", "at": isoformat_z(complaint_at), "topic": "service"}
    await crm(database, "complaint.created", data, complaint_at)

    for n in range(0, 66):
        await run_daily(database, settings, day(n))
        await tick(database, settings, day(n))  # lost-customers is shipped disabled

    async with database.sessions() as session:
        moves = list(
            await session.scalars(
                select(StatusChange.to_status)
                .where(StatusChange.customer_id == fading)
                .order_by(StatusChange.at)
            )
        )
        unhappy_moves = list(
            await session.execute(
                select(StatusChange.to_status, StatusChange.at, StatusChange.reason).where(
                    StatusChange.customer_id == unhappy
                )
            )
        )
    assert moves == ["active", "warm", "cold", "lost"]
    assert [tuple(m) for m in unhappy_moves] == [
        ("active", day(-1), "created"),
        ("cold", complaint_at, "complaint"),
    ]
    # Warm: every 14 days from the move; cold: every 30; lost: none.
    fading_tasks = await tasks_of(database, fading)
    assert [t.due_at for t in fading_tasks] == [day(0), day(14), day(28), day(30)]
    unhappy_tasks = await tasks_of(database, unhappy)
    assert [t.due_at for t in unhappy_tasks] == [
        complaint_at + timedelta(days=30 * k) for k in range(3)
    ]
    assert {(t.assignee, t.min_call_seconds, t.campaign_id) for t in fading_tasks} == {
        ("agent-7", 20, None)
    }

    # Closing needs a verified call longer than 20 s with that customer.
    task = fading_tasks[0]
    short = await make_call(
        database, started_at=day(1), talk_seconds=10, caller=PHONE, customer_id=fading
    )
    with pytest.raises(CallTooShort):
        async with database.transaction() as session:
            await complete_task(session, task.id, short, day(1, hours=1))
    assert (await tasks_of(database, fading))[0].status == "open"
    enough = await make_call(
        database, started_at=day(1, hours=2), talk_seconds=25, caller=PHONE, customer_id=fading
    )
    async with database.transaction() as session:
        done = await complete_task(session, task.id, enough, day(1, hours=3))
    assert (done.status, done.completed_by_call_id) == ("done", enough)


async def test_recession_detector_calls_a_silent_weekly_buyer(
    seeded: Database, settings: Settings
) -> None:
    database = seeded
    weekly = await new_customer(database, "c-weekly", day(-200))
    await new_customer(database, "c-other", day(-200))
    last_order = day(-1)
    for week in range(26, -1, -1):  # weekly for six months, the last one yesterday
        await activity(database, "c-weekly", "order", last_order - timedelta(weeks=week))

    for n in range(0, 25):
        await run_daily(database, settings, day(n))
        report = await tick(database, settings, day(n))
        recession_runs = [r for r in report.runs if r.campaign == "recession"]
        # The shipped campaign reads attributes.recession, which nothing sets.
        assert [r.audience for r in recession_runs] == [0]
        recovery = [t for t in await tasks_of(database, weekly) if t.kind == "recovery_call"]
        # More than 3 x 7 days of silence since the last order, not a day sooner.
        assert len(recovery) == (0 if n < 21 else 1), f"day {n}"

    (task,) = [t for t in await tasks_of(database, weekly) if t.kind == "recovery_call"]
    assert (task.assignee, task.min_call_seconds, task.created_at) == ("agent-7", 20, day(21))
    assert await tasks_of(database, weekly, campaign="recession") == []


async def test_lost_customers_campaign_enabled_calls_on_its_cadence(
    seeded: Database, settings: Settings
) -> None:
    database = seeded
    raw = await asyncio.to_thread((SEEDS / "lost-customers.yaml").read_text, "utf-8")
    definition = yaml.safe_load(raw)
    assert definition["enabled"] is False  # shipped off: the lifecycle cadence does this
    await save_definition(database, {**definition, "enabled": True}, "test", day(-1))
    warm = await customer(database, "c-warm", day(-1), status="warm")
    cold = await customer(database, "c-cold", day(-1), status="cold")

    for n in range(0, 61):  # campaigns only: the daily jobs' cadence would double these
        await tick(database, settings, day(n))

    warm_tasks = await tasks_of(database, warm, campaign="lost-customers")
    cold_tasks = await tasks_of(database, cold, campaign="lost-customers")
    assert [t.created_at for t in warm_tasks] == [day(14 * k) for k in range(5)]
    assert [t.created_at for t in cold_tasks] == [day(30 * k) for k in range(3)]
