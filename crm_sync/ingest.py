"""Apply one verified CRM event inside the caller's transaction: dedupe, order, write."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import raiseload

from crm_sync.customer_write import write_customer
from crm_sync.events import (
    ComplaintCreated,
    ConsentChanged,
    ContactRequested,
    CustomerActivity,
    CustomerDeleted,
    CustomerUpserted,
    Envelope,
    EventData,
    PaymentScheduled,
    TaskCreated,
)
from crm_sync.ingest_guards import (
    EventRejected,
    Outcome,
    claim,
    claim_and_advance,
    consent_entity,
    newer,
)
from crm_sync.ingest_people import agent_upserted, partner_upserted
from gateway.db.models import (
    Activity,
    Complaint,
    Customer,
    OutboundContact,
    Payment,
    StatusChange,
    Task,
    Template,
)
from gateway.db.types import new_id

__all__ = ["EventRejected", "Outcome", "apply_customer_upserted", "apply_event"]


async def apply_event(
    session: AsyncSession, event: Envelope, data: EventData, now: datetime
) -> Outcome:
    """Record the event id, drop it if older than what we hold, else apply it.

    Everything happens in the caller's transaction, so the id is recorded if and only
    if the changes are; raising EventRejected must roll the whole transaction back.
    """
    if isinstance(data, CustomerUpserted):
        return await apply_customer_upserted(await session.connection(), event, data, now)
    if not await claim(session, event, now):
        return "duplicate"
    apply = _APPLIERS[event.type]
    return await apply(session, event, data, now)


_CUSTOMER_BY_EXTERNAL_ID = (
    select(Customer)
    .where(Customer.external_id == bindparam("external_id"))
    .options(raiseload(Customer.phones))
)


async def _customer_row(session: AsyncSession, external_id: str) -> Customer | None:
    result = await session.execute(_CUSTOMER_BY_EXTERNAL_ID, {"external_id": external_id})
    return result.scalar_one_or_none()


async def _live_customer(session: AsyncSession, external_id: str) -> Customer:
    """The customer an event refers to; unknown or deleted ones refuse the event."""
    customer = await _customer_row(session, external_id)
    if customer is None or customer.deleted_at is not None:
        raise EventRejected("data.external_id", "unknown customer")
    return customer


def _status_change(
    customer: Customer, from_status: str | None, to_status: str, now: datetime, reason: str
) -> StatusChange:
    change = StatusChange(
        id=new_id("stc"),
        customer_id=customer.id,
        from_status=from_status,
        to_status=to_status,
        at=now,
        reason=reason,
    )
    customer.status = to_status
    customer.status_changed_at = now
    return change


async def apply_customer_upserted(
    conn: AsyncConnection, event: Envelope, data: CustomerUpserted, now: datetime
) -> Outcome:
    """`apply_event` for the CRM's bulk of traffic, in Core statements on a connection.

    Id, version, customer row, status change and phones: two statements on PostgreSQL.
    """
    outcome = await claim_and_advance(conn, event, f"customer:{data.external_id}", now)
    if outcome == "applied":
        await write_customer(
            conn, data.external_id, data.fields(), data.phones, now, record_status=True
        )
    return outcome


async def _customer_deleted(
    session: AsyncSession, event: Envelope, data: EventData, now: datetime
) -> Outcome:
    assert isinstance(data, CustomerDeleted)
    customer = await _customer_row(session, data.external_id)
    if customer is None:
        raise EventRejected("data.external_id", "unknown customer")
    if not await newer(session, f"customer:{data.external_id}", event.occurred_at):
        return "stale"
    if customer.deleted_at is not None:
        return "applied"
    # Soft delete: the row stays for history and the purge command; nobody is contacted.
    customer.deleted_at = now
    customer.updated_at = now
    if customer.status != "cancelled":
        session.add(_status_change(customer, customer.status, "cancelled", now, "crm: deleted"))
    await session.execute(
        update(Task)
        .where(Task.customer_id == customer.id, Task.status == "open")
        .values(status="cancelled", completed_at=now)
    )
    await session.execute(
        update(OutboundContact)
        .where(
            OutboundContact.customer_id == customer.id,
            OutboundContact.status.in_(("pending", "deferred")),
        )
        .values(status="skipped", reason="customer_deleted", updated_at=now)
    )
    return "applied"


async def _customer_activity(
    session: AsyncSession, event: Envelope, data: EventData, now: datetime
) -> Outcome:
    assert isinstance(data, CustomerActivity)
    customer = await _live_customer(session, data.external_id)
    session.add(
        Activity(
            id=new_id("act"),
            customer_id=customer.id,
            kind=data.kind,
            at=data.at,
            amount=data.amount,
            source_event_id=event.id,
        )
    )
    if customer.last_activity_at is None or data.at > customer.last_activity_at:
        customer.last_activity_at = data.at
    if data.kind == "order" and (
        customer.last_order_at is None or data.at > customer.last_order_at
    ):
        customer.last_order_at = data.at
    return "applied"


async def _payment_scheduled(
    session: AsyncSession, event: Envelope, data: EventData, now: datetime
) -> Outcome:
    assert isinstance(data, PaymentScheduled)
    customer = await _live_customer(session, data.external_id)
    key = f"payment:{data.external_id}:{data.contract_id}:{data.due_date.isoformat()}"
    if not await newer(session, key, event.occurred_at):
        return "stale"
    result = await session.execute(
        select(Payment).where(
            Payment.customer_id == customer.id,
            Payment.contract_id == data.contract_id,
            Payment.due_date == data.due_date,
        )
    )
    payment = result.scalar_one_or_none()
    if payment is None:
        payment = Payment(
            id=new_id("pay"),
            customer_id=customer.id,
            contract_id=data.contract_id,
            due_date=data.due_date,
        )
        session.add(payment)
    payment.amount = data.amount
    payment.currency = data.currency
    payment.status = "due"
    payment.updated_at = now
    return "applied"


async def _complaint_created(
    session: AsyncSession, event: Envelope, data: EventData, now: datetime
) -> Outcome:
    assert isinstance(data, ComplaintCreated)
    customer = await _live_customer(session, data.external_id)
    session.add(
        Complaint(
            id=new_id("cmp"),
            customer_id=customer.id,
            at=data.at,
            topic=data.topic,
            source_event_id=event.id,
        )
    )
    return "applied"


async def _consent_changed(
    session: AsyncSession, event: Envelope, data: EventData, now: datetime
) -> Outcome:
    assert isinstance(data, ConsentChanged)
    customer = await _live_customer(session, data.external_id)
    key = consent_entity(data.external_id, data.channel)
    if not await newer(session, key, event.occurred_at):
        return "stale"
    setattr(customer, f"{data.channel}_opt_out", data.opted_out)
    customer.updated_at = now
    return "applied"


async def _contact_requested(
    session: AsyncSession, event: Envelope, data: EventData, now: datetime
) -> Outcome:
    assert isinstance(data, ContactRequested)
    customer = await _live_customer(session, data.external_id)
    if data.template is not None:
        template = await session.get(Template, data.template)
        if template is None:
            raise EventRejected("data.template", "no saved template has this name")
        if template.channel != data.channel:
            raise EventRejected("data.template", f"the template is for {template.channel}")
    # The durable intent only: the send pipeline claims pending rows and sends them.
    session.add(
        OutboundContact(
            id=new_id("msg"),
            idempotency_key=f"crm:{event.id}",
            channel=data.channel,
            customer_id=customer.id,
            source="crm",
            template=data.template,
            subject=data.subject,
            body=data.body,
            variables=data.variables,
            status="pending",
            not_before=data.send_at,
            created_at=now,
            updated_at=now,
        )
    )
    return "applied"


async def _task_created(
    session: AsyncSession, event: Envelope, data: EventData, now: datetime
) -> Outcome:
    assert isinstance(data, TaskCreated)
    customer = await _live_customer(session, data.external_id)
    if not await newer(session, f"task:{data.task_id}", event.occurred_at):
        return "stale"
    result = await session.execute(select(Task).where(Task.task_id == data.task_id))
    task = result.scalar_one_or_none()
    if task is None:
        # Created when the CRM created it (never in our future): a call made in between
        # still counts towards completing it.
        task = Task(
            id=new_id("tsk"),
            task_id=data.task_id,
            status="open",
            created_at=min(event.occurred_at, now),
        )
        session.add(task)
    task.customer_id = customer.id
    task.kind = data.kind
    task.assignee = data.assignee
    task.due_at = data.due_at
    task.min_call_seconds = data.min_call_seconds
    return "applied"


Applier = Callable[[AsyncSession, Envelope, EventData, datetime], Awaitable[Outcome]]

_APPLIERS: dict[str, Applier] = {
    "customer.deleted": _customer_deleted,
    "customer.activity": _customer_activity,
    "payment.scheduled": _payment_scheduled,
    "complaint.created": _complaint_created,
    "consent.changed": _consent_changed,
    "contact.requested": _contact_requested,
    "task.created": _task_created,
    "agent.upserted": agent_upserted,
    "partner.upserted": partner_upserted,
}
