"""`payment.paid` (an extension to the contract): the payment is marked paid and its
reminders stop, whether the journey has not reached its send, has written the contact
but not sent it, or waits to call; replayed and older events change nothing."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import func, select

from channels.sandbox import SandboxChannel
from gateway.campaigns.scheduler import tick
from gateway.campaigns.store import save_template
from gateway.core.clock import FixedClock
from gateway.core.db.engine import Database
from gateway.core.db.models import (
    Enrollment,
    EntityVersion,
    OutboundContact,
    Payment,
    ProcessedWebhook,
    Task,
)
from gateway.messages.pipeline import SendWorker
from gateway.messages.prepare import Preparer
from gateway.settings import Settings
from tests.support.crm_webhooks import Client, post_event, upsert
from tests.support.journeys import campaign, crm, customer, day

TEMPLATE = Path(__file__).resolve().parents[2] / "config" / "templates" / "payment-reminder.yaml"
DUE = "2026-11-05"  # three days after day(0), the day the reminders go
REMINDER = {
    "name": "payment-reminder",
    "schedule": "0 10 * * *",
    "occurrence": "payment",
    "audience": {"field": "days_until_payment", "op": "==", "value": 3},
    "steps": [{"id": "remind", "type": "send", "channel": "sms", "template": "payment-reminder"}],
}
REMIND_THEN_CALL = {
    **REMINDER,
    "name": "remind-then-call",
    "steps": [
        {"id": "remind", "type": "send", "channel": "sms", "template": "payment-reminder"},
        {"id": "wait", "type": "wait", "duration": "2d"},
        {"id": "call", "type": "call_task", "min_call_seconds": 30, "due_in": "1d"},
    ],
}


def payment(external_id: str, due_date: str = DUE, contract_id: str = "loan-1") -> dict[str, Any]:
    """`data` naming one payment, as `payment.scheduled` and `payment.paid` do."""
    return {"external_id": external_id, "contract_id": contract_id, "due_date": due_date}


def scheduled(external_id: str, due_date: str = DUE) -> dict[str, Any]:
    """`payment.scheduled` data for a payment of 120.50 UAH."""
    return {**payment(external_id, due_date), "amount": "120.50", "currency": "UAH"}


async def setup(database: Database, definition: dict[str, Any], *names: str) -> list[str]:
    """The template, the campaign, and customers with a payment due on DUE each."""
    async with database.transaction() as session:
        await save_template(session, yaml.safe_load(TEMPLATE.read_text()), day(-3))
    await campaign(database, definition, day(-3))
    ids = []
    for name in names:
        ids.append(await customer(database, name, day(-3)))
        await crm(database, "payment.scheduled", scheduled(name), day(-3))
    return ids


async def send_pending(database: Database, settings: Settings, now: datetime) -> None:
    """Run the real send pipeline (sandbox channel) until nothing is left to send."""
    channels: dict[str, Any] = {"sms": SandboxChannel("sms")}
    sender = SendWorker(database, settings, FixedClock(now), channels, Preparer(settings))
    while await sender.run_once():
        pass


async def contacts(database: Database) -> list[tuple[str | None, str, str | None]]:
    """(customer, status, reason) of every outbound contact."""
    async with database.sessions() as session:
        rows = await session.execute(
            select(
                OutboundContact.customer_id, OutboundContact.status, OutboundContact.reason
            ).order_by(OutboundContact.customer_id)
        )
        return [(customer_id, status, reason) for customer_id, status, reason in rows.all()]


async def payment_status(database: Database, due_date: str = DUE) -> str | None:
    """The status of the (only) payment due on `due_date`, None if there is none."""
    async with database.sessions() as session:
        return await session.scalar(
            select(Payment.status).where(Payment.due_date == date.fromisoformat(due_date))
        )


async def guard_rows(database: Database) -> tuple[int, int]:
    """How many event ids and entity versions are recorded: a refused event adds neither."""
    async with database.sessions() as session:
        ids = await session.scalar(select(func.count()).select_from(ProcessedWebhook))
        versions = await session.scalar(select(func.count()).select_from(EntityVersion))
    return int(ids or 0), int(versions or 0)


async def test_reminder_goes_for_the_unpaid_payment_only(
    database: Database, settings: Settings
) -> None:
    unpaid, paid = await setup(database, REMINDER, "c-unpaid", "c-paid")
    await crm(database, "payment.paid", payment("c-paid"), day(-1))

    await tick(database, settings, day(0))
    await send_pending(database, settings, day(0, hours=1))

    assert await contacts(database) == [(unpaid, "delivered", None)]
    async with database.sessions() as session:
        rows = await session.execute(select(Payment.customer_id, Payment.status))
        statuses = {customer_id: status for customer_id, status in rows.all()}
    assert statuses == {unpaid: "due", paid: "paid"}


async def test_paid_after_the_contact_was_written_is_not_sent(
    database: Database, settings: Settings
) -> None:
    unpaid, paid = await setup(database, REMINDER, "c-unpaid", "c-paid")
    await tick(database, settings, day(0))  # both reminders written, not sent yet
    await crm(database, "payment.paid", payment("c-paid"), day(0, hours=0.5))

    await send_pending(database, settings, day(0, hours=1))

    assert sorted(await contacts(database)) == sorted(
        [(paid, "skipped", "payment_paid"), (unpaid, "delivered", None)]
    )


async def test_paid_leaves_a_run_campaign_on_the_same_date_alone(
    database: Database, settings: Settings
) -> None:
    # A `run` campaign's occurrence is its run's local date: here the payment's due date.
    newsletter = {
        "name": "newsletter",
        "schedule": "0 10 * * *",
        "occurrence": "run",
        "audience": {"field": "status", "op": "==", "value": "active"},
        "steps": [{"id": "news", "type": "send", "channel": "sms", "template": "payment-reminder"}],
    }
    (payer,) = await setup(database, newsletter, "c-payer")
    await tick(database, settings, day(3))  # 5 November, the due date
    await crm(database, "payment.paid", payment("c-payer"), day(3, hours=0.5))

    assert await contacts(database) == [(payer, "pending", None)]


async def test_a_journey_waiting_to_call_stops_once_paid(
    database: Database, settings: Settings
) -> None:
    unpaid, paid = await setup(database, REMIND_THEN_CALL, "c-unpaid", "c-paid")
    await tick(database, settings, day(0))
    await send_pending(database, settings, day(0, hours=1))
    await crm(database, "payment.paid", payment("c-paid"), day(1))

    await tick(database, settings, day(2))

    async with database.sessions() as session:
        tasks = list(await session.scalars(select(Task.customer_id)))
        rows = await session.execute(select(Enrollment.customer_id, Enrollment.state))
        states = {customer_id: state for customer_id, state in rows.all()}
        stopped = await session.scalar(
            select(Enrollment.context).where(Enrollment.customer_id == paid)
        )
    assert tasks == [unpaid]
    assert states == {unpaid: "done", paid: "stopped"}
    assert stopped is not None and stopped["stopped"] == "payment paid"
    # Both reminders went: the payment was paid only after.
    assert [status for _, status, _ in await contacts(database)] == ["delivered", "delivered"]


async def test_replayed_and_older_payment_paid_change_nothing(
    client: Client, clock: FixedClock, database: Database
) -> None:
    async def paid(at: datetime, event_id: str | None = None) -> str:
        answer = await post_event(
            client, clock, "payment.paid", payment("C1"), occurred_at=at, event_id=event_id
        )
        return str(answer["status"])

    await upsert(client, clock)
    t0 = clock.now()
    await post_event(client, clock, "payment.scheduled", scheduled("C1"), occurred_at=t0)
    assert await paid(t0 + timedelta(minutes=1), "paid-1") == "applied"
    assert await payment_status(database) == "paid"
    # The CRM reschedules it (the payment bounced): due again, later than the payment.
    await post_event(
        client, clock, "payment.scheduled", scheduled("C1"), occurred_at=t0 + timedelta(minutes=2)
    )
    assert await payment_status(database) == "due"

    assert await paid(t0 + timedelta(minutes=1), "paid-1") == "duplicate"
    assert await paid(t0 + timedelta(seconds=90)) == "stale"
    assert await payment_status(database) == "due"


async def test_payment_paid_before_its_schedule_arrives_wins(
    client: Client, clock: FixedClock, database: Database
) -> None:
    await upsert(client, clock)
    t0 = clock.now()
    early = await post_event(
        client, clock, "payment.paid", payment("C1"), occurred_at=t0 + timedelta(minutes=1)
    )
    late = await post_event(client, clock, "payment.scheduled", scheduled("C1"), occurred_at=t0)
    assert (early["status"], late["status"]) == ("applied", "stale")
    assert await payment_status(database) is None  # never became due: nothing to remind


async def test_bad_payment_paid_is_refused_and_changes_nothing(
    client: Client, clock: FixedClock, database: Database
) -> None:
    await upsert(client, clock)
    await post_event(client, clock, "payment.scheduled", scheduled("C1"))
    before = await guard_rows(database)
    bad = {
        "no due date": {"external_id": "C1", "contract_id": "loan-1"},
        "not a date": payment("C1", due_date="5 Nov"),
        "no contract": {"external_id": "C1", "due_date": DUE},
        "empty contract": payment("C1", contract_id=""),
    }
    for name, data in bad.items():
        answer = await post_event(client, clock, "payment.paid", data, expect=422)
        assert answer["status"] == 422, name
    unknown = await post_event(client, clock, "payment.paid", payment("nobody"), expect=422)
    assert "external_id" in str(unknown)
    assert await payment_status(database) == "due"
    assert await guard_rows(database) == before
