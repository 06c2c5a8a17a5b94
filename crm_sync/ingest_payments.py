"""Apply `payment.scheduled` and `payment.paid`: the payments reminders are about.

Both name one payment by customer, contract and due date and share its entity version,
so whichever the CRM said last wins: an older `payment.scheduled` arriving after a
`payment.paid` cannot make the payment due again, nor an old `payment.paid` a
rescheduled payment paid.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_sync.events import Envelope, EventData, PaymentPaid, PaymentScheduled
from crm_sync.ingest_guards import Outcome, live_customer, newer
from gateway.core.db.models import CampaignVersion, Enrollment, OutboundContact, Payment
from gateway.core.db.states import DUE_CONTACT_STATES, ContactStatus, PaymentStatus
from gateway.core.db.types import new_id


def payment_entity(external_id: str, contract_id: str, due_date: date) -> str:
    """The entity-version key of one payment."""
    return f"payment:{external_id}:{contract_id}:{due_date.isoformat()}"


async def _payment(
    session: AsyncSession, customer_id: str, contract_id: str, due_date: date
) -> Payment | None:
    result = await session.execute(
        select(Payment).where(
            Payment.customer_id == customer_id,
            Payment.contract_id == contract_id,
            Payment.due_date == due_date,
        )
    )
    return result.scalar_one_or_none()


async def _stored(
    session: AsyncSession, event: Envelope, data: PaymentScheduled | PaymentPaid
) -> tuple[str, Payment | None] | None:
    """The customer's id and the payment as stored; None when the event is stale."""
    customer = await live_customer(session, data.external_id)
    entity = payment_entity(data.external_id, data.contract_id, data.due_date)
    if not await newer(session, entity, event.occurred_at):
        return None
    return customer.id, await _payment(session, customer.id, data.contract_id, data.due_date)


async def payment_scheduled(
    session: AsyncSession, event: Envelope, data: EventData, now: datetime
) -> Outcome:
    """Create or update the payment, due."""
    assert isinstance(data, PaymentScheduled)
    stored = await _stored(session, event, data)
    if stored is None:
        return "stale"
    customer_id, payment = stored
    if payment is None:
        payment = Payment(
            id=new_id("pay"),
            customer_id=customer_id,
            contract_id=data.contract_id,
            due_date=data.due_date,
        )
        session.add(payment)
    payment.amount = data.amount
    payment.currency = data.currency
    payment.status = PaymentStatus.DUE
    payment.updated_at = now
    return "applied"


async def payment_paid(
    session: AsyncSession, event: Envelope, data: EventData, now: datetime
) -> Outcome:
    """Mark the payment paid and stop reminders of it not sent yet.

    A payment we have not been told about yet is still "applied": its version moves,
    so the `payment.scheduled` the CRM sent before (delivered late) is then stale.
    """
    assert isinstance(data, PaymentPaid)
    stored = await _stored(session, event, data)
    if stored is None:
        return "stale"
    customer_id, payment = stored
    if payment is None:
        return "applied"
    if payment.status != PaymentStatus.PAID:
        payment.status = PaymentStatus.PAID
        payment.updated_at = now
        await session.flush()
    await _skip_unsent_reminders(session, customer_id, data.due_date, now)
    return "applied"


async def _skip_unsent_reminders(
    session: AsyncSession, customer_id: str, due_date: date, now: datetime
) -> None:
    """Skip unsent contacts of journeys for this due date once nothing is due on it.

    A `payment` campaign's enrollment is for every payment of the customer due that
    day (its occurrence is the due date), so it stops only when all of them are paid.
    Journeys not yet at their send step are stopped by the engine when they get there.
    """
    still_due = await session.scalar(
        select(
            exists().where(
                Payment.customer_id == customer_id,
                Payment.due_date == due_date,
                Payment.status == PaymentStatus.DUE,
            )
        )
    )
    if still_due:
        return
    rows = await session.execute(
        select(Enrollment.id, CampaignVersion.definition)
        .join(
            CampaignVersion,
            (CampaignVersion.campaign_id == Enrollment.campaign_id)
            & (CampaignVersion.version == Enrollment.version),
        )
        .where(Enrollment.customer_id == customer_id, Enrollment.occurrence == due_date.isoformat())
    )
    # A `run` campaign's occurrence is a date too: only `payment` ones are about payments.
    enrollments = [
        enrollment_id
        for enrollment_id, definition in rows.all()
        if isinstance(definition, dict) and definition.get("occurrence") == "payment"
    ]
    if not enrollments:
        return
    await session.execute(
        update(OutboundContact)
        .where(
            OutboundContact.enrollment_id.in_(enrollments),
            # not yet handed to a provider: a paid payment's reminder may still be stopped
            OutboundContact.status.in_(DUE_CONTACT_STATES),
        )
        .values(status=ContactStatus.SKIPPED, reason="payment_paid", updated_at=now)
        .execution_options(synchronize_session=False)
    )
