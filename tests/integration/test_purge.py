"""Retention on both databases: who is anonymised, what stays consistent, raw events,
idempotence, bad arguments, and the `purge` command."""

from __future__ import annotations

import argparse
import asyncio
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from gateway.calls.settings import PbxTopology
from gateway.core.cli import UsageError
from gateway.core.clock import SystemClock
from gateway.core.db.engine import Database
from gateway.core.db.models import (
    Activity,
    AmiRawEvent,
    Call,
    Complaint,
    CostEntry,
    Customer,
    CustomerPhone,
    EntityVersion,
    OutboundContact,
    Payment,
    ProcessedWebhook,
)
from gateway.core.db.types import new_id
from gateway.retention.cli import register
from gateway.retention.service import (
    PROCESSED_ID_MIN_DAYS,
    RetentionError,
    purge,
    purged_external_id,
)
from gateway.settings import Settings
from tests.support.databases import truncate_all
from tests.support.factories import START, make_call, make_customer

NOW = START


async def customer_with_history(
    database: Database, external_id: str, phone: str, *, gone_days: int | None, how: str
) -> str:
    """A customer with phones, e-mail, activity, payment, complaint, call, message, cost."""
    customer_id = await make_customer(database, NOW - timedelta(days=400), external_id, [phone])
    call_id = await make_call(
        database,
        started_at=NOW - timedelta(days=200),
        talk_seconds=60,
        caller=phone,
        customer_id=customer_id,
    )
    async with database.transaction() as session:
        customer = await session.get(Customer, customer_id)
        assert customer is not None
        customer.email = f"{external_id.lower()}@example.com"
        customer.attributes = {"passport": "AB123456"}
        customer.products = ["card"]
        if gone_days is not None:
            gone = NOW - timedelta(days=gone_days)
            if how == "deleted":
                customer.deleted_at = gone
            customer.status, customer.status_changed_at = "cancelled", gone
        at = NOW - timedelta(days=300)
        session.add_all(
            [
                Activity(id=new_id("act"), customer_id=customer_id, kind="order", at=at),
                Payment(
                    id=new_id("pay"),
                    customer_id=customer_id,
                    contract_id="K-1",
                    due_date=at.date(),
                    amount=Decimal("100.00"),
                    currency="UAH",
                    updated_at=at,
                ),
                Complaint(id=new_id("cmp"), customer_id=customer_id, at=at, topic="billing"),
                OutboundContact(
                    id=new_id("oc"),
                    idempotency_key=f"k:{external_id}",
                    channel="sms",
                    customer_id=customer_id,
                    body="Привіт, Олено",
                    to_address=phone,
                    status="delivered",
                    created_at=at,
                    updated_at=at,
                ),
                CostEntry(
                    id=new_id("cost"),
                    at=at,
                    channel="voice",
                    customer_id=customer_id,
                    call_id=call_id,
                    amount=Decimal("1.50"),
                    currency="UAH",
                    source="rate",
                ),
                EntityVersion(entity=f"customer:{external_id}", occurred_at=at),
            ]
        )
    return customer_id


async def count(database: Database, model: type, **where: object) -> int:
    """Rows of `model` matching equality filters."""
    async with database.transaction() as session:
        statement = select(func.count()).select_from(model)
        for key, value in where.items():
            statement = statement.where(getattr(model, key) == value)
        return int(await session.scalar(statement) or 0)


async def test_old_deleted_and_cancelled_customers_are_anonymised_and_records_stay(
    database: Database,
) -> None:
    deleted = await customer_with_history(
        database, "C-DEL", "+380671111111", gone_days=100, how="deleted"
    )
    cancelled = await customer_with_history(
        database, "C-CAN", "+380672222222", gone_days=45, how="cancelled"
    )
    recent = await customer_with_history(
        database, "C-NEW", "+380673333333", gone_days=10, how="deleted"
    )
    active = await customer_with_history(database, "C-ACT", "+380674444444", gone_days=None, how="")

    report = await purge(database, 30, NOW)

    assert report.customers_anonymised == 2
    assert (report.phones_deleted, report.activities_deleted) == (2, 2)
    assert (report.payments_deleted, report.complaints_deleted) == (2, 2)
    assert (report.calls_scrubbed, report.messages_scrubbed) == (2, 2)
    async with database.transaction() as session:
        for customer_id, external_id in ((deleted, "C-DEL"), (cancelled, "C-CAN")):
            customer = await session.get(Customer, customer_id)
            assert customer is not None
            assert customer.external_id == purged_external_id(external_id)
            assert (customer.name, customer.email) == ("", None)
            assert (customer.attributes, customer.products) == ({}, [])
            assert customer.status == "cancelled" and customer.do_not_contact
            assert customer.deleted_at is not None
            call = (
                await session.scalars(select(Call).where(Call.customer_id == customer_id))
            ).one()
            assert call.caller is None and call.talk_seconds == 60
            message = (
                await session.scalars(
                    select(OutboundContact).where(OutboundContact.customer_id == customer_id)
                )
            ).one()
            assert (message.to_address, message.body, message.status) == (None, None, "delivered")
            cost = (
                await session.scalars(select(CostEntry).where(CostEntry.call_id == call.id))
            ).one()
            assert cost.customer_id == customer_id and cost.amount == Decimal("1.50")
        cancelled_row = await session.get(Customer, cancelled)
        assert cancelled_row is not None and cancelled_row.deleted_at == NOW
    for customer_id in (deleted, cancelled):
        for model in (CustomerPhone, Activity, Payment, Complaint):
            assert await count(database, model, customer_id=customer_id) == 0
    assert await count(database, EntityVersion, entity="customer:C-DEL") == 0
    # Not yet due, or never gone: untouched.
    for customer_id, external_id in ((recent, "C-NEW"), (active, "C-ACT")):
        async with database.transaction() as session:
            customer = await session.get(Customer, customer_id)
            assert customer is not None and customer.external_id == external_id
            assert customer.email == f"{external_id.lower()}@example.com"
        for model in (CustomerPhone, Activity, Payment, Complaint):
            assert await count(database, model, customer_id=customer_id) == 1
    assert await count(database, EntityVersion, entity="customer:C-NEW") == 1

    again = await purge(database, 30, NOW)
    assert again.customers_anonymised == 0 and again.phones_deleted == 0
    later = await purge(database, 30, NOW + timedelta(days=21))
    assert later.customers_anonymised == 1  # C-NEW is now past the period


async def add_raw_events(database: Database, ages_days: list[float]) -> None:
    """Raw AMI events received that many days before NOW."""
    async with database.transaction() as session:
        session.add_all(
            AmiRawEvent(
                received_at=NOW - timedelta(days=age),
                linkedid=f"lnk-{i}",
                name="Hangup",
                fields={"Event": "Hangup", "CallerIDNum": "+380671111111"},
            )
            for i, age in enumerate(ages_days)
        )


async def test_raw_events_follow_their_own_retention(database: Database) -> None:
    await add_raw_events(database, [40, 8, 7.5, 6.9, 0.01])
    untouched = await purge(database, 30, NOW)
    assert untouched.raw_events_deleted == 0
    assert await count(database, AmiRawEvent) == 5

    stages: list[tuple[str, int]] = []
    report = await purge(
        database, 30, NOW, raw_event_retention_days=7, progress=lambda s, n: stages.append((s, n))
    )
    assert report.raw_events_deleted == 3
    assert stages == [("raw_events", 3)]
    async with database.transaction() as session:
        kept = sorted(await session.scalars(select(AmiRawEvent.linkedid)), key=str)
    assert kept == ["lnk-3", "lnk-4"]
    assert (await purge(database, 30, NOW, raw_event_retention_days=0)).raw_events_deleted == 2


async def test_processed_webhook_ids_are_forgotten_after_the_period_never_sooner(
    database: Database,
) -> None:
    ages = {"evt-400": 400, "evt-90": 90, "evt-29": PROCESSED_ID_MIN_DAYS - 1, "evt-1": 1}
    async with database.transaction() as session:
        session.add_all(
            ProcessedWebhook(
                event_id=event_id,
                source="crm",
                type="customer.upserted",
                received_at=NOW - timedelta(days=age),
            )
            for event_id, age in ages.items()
        )

    async def remembered() -> list[str]:
        async with database.transaction() as session:
            return sorted(await session.scalars(select(ProcessedWebhook.event_id)))

    assert (await purge(database, 365, NOW)).processed_ids_deleted == 1
    assert await remembered() == ["evt-1", "evt-29", "evt-90"]
    # A short customer period does not shorten replay protection below its floor.
    assert (await purge(database, 0, NOW)).processed_ids_deleted == 1
    assert await remembered() == ["evt-1", "evt-29"]


async def test_a_negative_period_is_refused_and_changes_nothing(database: Database) -> None:
    await customer_with_history(database, "C-DEL", "+380671111111", gone_days=100, how="deleted")
    await add_raw_events(database, [40])
    with pytest.raises(RetentionError):
        await purge(database, -1, NOW)
    with pytest.raises(RetentionError):
        await purge(database, 30, NOW, raw_event_retention_days=-1)
    assert await count(database, CustomerPhone) == 1
    assert await count(database, Customer, external_id="C-DEL") == 1
    assert await count(database, AmiRawEvent) == 1


def run_command(argv: list[str], settings: Settings) -> int:
    """Parse `argv` with the module's own registration and run its handler."""
    parser = argparse.ArgumentParser(prog="switchboard")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    status: int = args.handler(args, settings)
    return status


def test_the_purge_command_prints_a_summary(
    settings: Settings, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    settings.section(PbxTopology).raw_event_retention_days = 7
    now = SystemClock().now()  # the command runs on the system clock

    async def prepare() -> str:
        database = Database(database_url)
        try:
            if not database.is_sqlite:
                await truncate_all(database)  # this test does not take the `database` fixture
            customer_id = await make_customer(database, now, "C-CLI", ["+380675555555"])
            async with database.transaction() as session:
                customer = await session.get(Customer, customer_id)
                assert customer is not None
                customer.deleted_at = now - timedelta(days=90)
                session.add(
                    AmiRawEvent(received_at=now - timedelta(days=9), name="Hangup", fields={})
                )
            return customer_id
        finally:
            await database.dispose()

    customer_id = asyncio.run(prepare())
    assert run_command(["purge", "--older-than", "60", "--no-progress"], settings) == 0
    out = capsys.readouterr().out
    assert "customers anonymised (deleted or cancelled over 60 days ago): 1" in out
    assert "raw AMI events deleted (older than 7 days): 1" in out
    assert "processed webhook ids forgotten (older than 60 days): " in out

    async def external_id() -> str | None:
        database = Database(database_url)
        try:
            async with database.transaction() as session:
                return await session.scalar(
                    select(Customer.external_id).where(Customer.id == customer_id)
                )
        finally:
            await database.dispose()

    assert asyncio.run(external_id()) == purged_external_id("C-CLI")
    # Again, with the progress bar (on stderr): nothing left to do.
    assert run_command(["purge", "--older-than", "60"], settings) == 0
    assert "customers anonymised (deleted or cancelled over 60 days ago): 0" in (
        capsys.readouterr().out
    )
    with pytest.raises(UsageError):
        run_command(["purge", "--older-than", "-5"], settings)
    with pytest.raises(SystemExit):
        run_command(["purge", "--older-than", "soon"], settings)
