"""The send pipeline's rules on both databases: each contact reaches the provider once."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import select

from gateway.core.clock import FixedClock
from gateway.core.db.engine import Database
from gateway.core.db.models import CostEntry, CustomerPhone, OutboundContact, OutboxItem
from gateway.core.db.types import new_id
from gateway.messages.pipeline import SendWorker
from gateway.messages.prepare import Preparer
from gateway.settings import Settings
from tests.support.factories import make_customer
from tests.support.recording_channel import RecordingChannel


async def add_contact(database: Database, clock: FixedClock, customer_id: str, key: str) -> str:
    async with database.transaction() as session:
        contact = OutboundContact(
            id=new_id("msg"),
            idempotency_key=key,
            channel="sms",
            customer_id=customer_id,
            body="Нагадуємо: платіж 25.11",
            variables={},
            status="pending",
            attempts=0,
            created_at=clock.now(),
            updated_at=clock.now(),
        )
        session.add(contact)
        return contact.id


async def states(database: Database) -> dict[str, OutboundContact]:
    async with database.sessions() as session:
        rows = (await session.execute(select(OutboundContact))).scalars().all()
    return {row.idempotency_key: row for row in rows}


def worker(
    database: Database, settings: Settings, clock: FixedClock, channel: RecordingChannel
) -> SendWorker:
    return SendWorker(database, settings, clock, {"sms": channel}, Preparer(settings))


async def test_a_due_message_is_sent_once_costed_and_not_sent_again(
    database: Database, settings: Settings, clock: FixedClock
) -> None:
    customer = await make_customer(database, clock.now(), "C-1", ["+380671234567"])
    await add_contact(database, clock, customer, "crm:e1")
    channel = RecordingChannel()
    sender = worker(database, settings, clock, channel)
    assert await sender.run_once() == 1
    assert await sender.run_once() == 0
    row = (await states(database))["crm:e1"]
    assert (row.status, row.to_address, row.segments) == ("sent", "+380671234567", 1)
    assert channel.deliveries["crm:e1"] == 1
    async with database.sessions() as session:
        (cost,) = (await session.execute(select(CostEntry))).scalars().all()
    assert (str(cost.amount), cost.source, cost.contact_id) == ("0.3000", "configured", row.id)


async def test_opted_out_customer_is_skipped_and_nothing_is_sent(
    database: Database, settings: Settings, clock: FixedClock
) -> None:
    customer = await make_customer(database, clock.now(), "C-1", ["+380671234567"])
    async with database.transaction() as session:
        from gateway.core.db.models import Customer

        (await session.get(Customer, customer)).sms_opt_out = True  # type: ignore[union-attr]
    await add_contact(database, clock, customer, "crm:e1")
    channel = RecordingChannel()
    await worker(database, settings, clock, channel).run_once()
    row = (await states(database))["crm:e1"]
    assert (row.status, row.reason) == ("skipped", "opted_out")
    assert not channel.deliveries


async def test_a_retryable_refusal_comes_back_after_the_backoff(
    database: Database, settings: Settings, clock: FixedClock
) -> None:
    customer = await make_customer(database, clock.now(), "C-1", ["+380671234567"])
    await add_contact(database, clock, customer, "crm:e1")
    channel = RecordingChannel()
    channel.script["+380671234567"] = ["retry"]
    sender = worker(database, settings, clock, channel)
    await sender.run_once()
    row = (await states(database))["crm:e1"]
    assert row.status == "pending" and row.not_before is not None and row.error_code == "429"
    assert await sender.run_once() == 0  # not due yet
    clock.advance(timedelta(minutes=2))
    await sender.run_once()
    assert (await states(database))["crm:e1"].status == "sent"
    assert channel.deliveries["crm:e1"] == 1


async def test_an_unknown_outcome_is_resolved_by_asking_the_provider_first(
    database: Database, settings: Settings, clock: FixedClock
) -> None:
    took_it = await make_customer(database, clock.now(), "C-1", ["+380671234567"])
    never_got_it = await make_customer(database, clock.now(), "C-2", ["+380501112233"])
    await add_contact(database, clock, took_it, "crm:took")
    await add_contact(database, clock, never_got_it, "crm:lost")
    channel = RecordingChannel()
    channel.script["+380671234567"] = ["unknown_after_accept"]
    channel.script["+380501112233"] = ["unknown_lost"]
    sender = worker(database, settings, clock, channel)
    await sender.run_once()
    rows = await states(database)
    assert rows["crm:took"].status == "sent"
    # Not found right away: the provider may just not list it yet. Look again later.
    assert rows["crm:lost"].status == "sending" and not channel.deliveries["crm:lost"]
    clock.advance(timedelta(minutes=3))
    await sender.run_once()
    assert (await states(database))["crm:lost"].status == "sending"
    clock.advance(timedelta(minutes=10))
    await sender.run_once()
    rows = await states(database)
    assert rows["crm:lost"].status == "sent"
    assert channel.deliveries == {"crm:took": 1, "crm:lost": 1}


async def test_a_contact_stranded_in_sending_by_a_crash_is_resolved_not_resent(
    database: Database, settings: Settings, clock: FixedClock
) -> None:
    customer = await make_customer(database, clock.now(), "C-1", ["+380671234567"])
    contact = await add_contact(database, clock, customer, "crm:e1")
    channel = RecordingChannel()
    # The crashed worker had committed `sending`, and the provider had taken the message.
    async with database.transaction() as session:
        row = await session.get(OutboundContact, contact)
        assert row is not None
        row.status, row.to_address, row.attempts = "sending", "+380671234567", 1
        row.locked_until = clock.now() + timedelta(minutes=2)
    await channel.send(SendWorker._stored_message(row))
    sender = worker(database, settings, clock, channel)
    assert await sender.run_once() == 0  # the lease still holds
    clock.advance(timedelta(minutes=3))
    assert await sender.run_once() == 1
    assert (await states(database))["crm:e1"].status == "sent"
    assert channel.deliveries["crm:e1"] == 1


async def test_an_invalid_number_fails_marks_the_phone_and_tells_the_crm(
    database: Database, settings: Settings, clock: FixedClock
) -> None:
    customer = await make_customer(database, clock.now(), "C-1", ["+380671234567"])
    await add_contact(database, clock, customer, "crm:e1")
    channel = RecordingChannel()
    channel.script["+380671234567"] = ["invalid"]
    await worker(database, settings, clock, channel).run_once()
    row = (await states(database))["crm:e1"]
    assert (row.status, row.reason, row.error_code) == ("failed", "invalid_number", "21614")
    async with database.sessions() as session:
        phone = (await session.execute(select(CustomerPhone))).scalar_one()
        pushed = (await session.execute(select(OutboxItem.type))).scalars().all()
    assert phone.invalid and pushed == ["message.failed"]
    await add_contact(database, clock, customer, "crm:e2")
    await worker(database, settings, clock, channel).run_once()
    assert (await states(database))["crm:e2"].reason == "invalid_number"  # not tried again


async def test_concurrent_workers_send_each_contact_once(
    database: Database, settings: Settings, clock: FixedClock
) -> None:
    channel = RecordingChannel()
    for index in range(60):
        customer = await make_customer(
            database, clock.now(), f"C-{index}", [f"+38067123{index:04d}"]
        )
        await add_contact(database, clock, customer, f"crm:{index}")
    workers = [
        SendWorker(
            Database(database.url), settings, clock, {"sms": channel}, Preparer(settings), batch=7
        )
        for _ in range(3)
    ]
    try:
        for _ in range(12):
            await asyncio.gather(*(w.run_once() for w in workers))
    finally:
        for w in workers:
            await w.database.dispose()
    assert len(channel.deliveries) == 60 and set(channel.deliveries.values()) == {1}
    assert {row.status for row in (await states(database)).values()} == {"sent"}


async def test_outside_the_sending_window_a_message_waits_for_it(
    database: Database, settings: Settings, clock: FixedClock
) -> None:
    from datetime import UTC, datetime

    clock.set(datetime(2026, 11, 3, 0, 30, tzinfo=UTC))  # 02:30 in Kyiv, a Tuesday
    customer = await make_customer(database, clock.now(), "C-1", ["+380671234567"])
    await add_contact(database, clock, customer, "crm:e1")
    channel = RecordingChannel()
    sender = worker(database, settings, clock, channel)
    await sender.run_once()
    row = (await states(database))["crm:e1"]
    assert (row.status, row.reason) == ("deferred", "sending_window")
    assert row.not_before == datetime(2026, 11, 3, 7, 0, tzinfo=UTC)  # 09:00 Kyiv
    clock.set(row.not_before)
    await sender.run_once()
    assert (await states(database))["crm:e1"].status == "sent"
    assert channel.deliveries["crm:e1"] == 1


async def test_a_template_with_a_missing_variable_is_skipped_never_half_sent(
    database: Database, settings: Settings, clock: FixedClock
) -> None:
    from gateway.core.db.models import Template

    customer = await make_customer(database, clock.now(), "C-1", ["+380671234567"])
    async with database.transaction() as session:
        session.add(
            Template(
                name="bonus",
                channel="sms",
                subject={},
                body={"uk": "На вашому рахунку {{ bonus_points }} балів"},
                variables=["bonus_points"],
                version=1,
                created_at=clock.now(),
                updated_at=clock.now(),
            )
        )
    contact = await add_contact(database, clock, customer, "crm:e1")
    async with database.transaction() as session:
        row = await session.get(OutboundContact, contact)
        assert row is not None
        row.template, row.body = "bonus", None
    channel = RecordingChannel()
    await worker(database, settings, clock, channel).run_once()
    row = (await states(database))["crm:e1"]
    assert (row.status, row.reason) == ("skipped", "missing_variable")
    assert not channel.deliveries
