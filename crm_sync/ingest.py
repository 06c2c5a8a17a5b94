"""Apply one verified CRM event inside the caller's transaction: dedupe, order, write."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

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
    TaskCreated,
)
from crm_sync.ingest_guards import (
    EventRejected,
    Outcome,
    claim,
    claim_and_advance,
    consent_entity,
    customer_row,
    live_customer,
    newer,
)
from crm_sync.ingest_payments import payment_paid, payment_scheduled
from crm_sync.ingest_people import agent_upserted, partner_upserted
from gateway.core.db.models import (
    Activity,
    Complaint,
    Customer,
    OutboundContact,
    StatusChange,
    Task,
    Template,
)
from gateway.core.db.states import DUE_CONTACT_STATES, ContactStatus, CustomerStatus, TaskStatus
from gateway.core.db.types import new_id

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
    customer = await customer_row(session, data.external_id)
    if customer is None:
        raise EventRejected("data.external_id", "unknown customer")
    if not await newer(session, f"customer:{data.external_id}", event.occurred_at):
        return "stale"
    if customer.deleted_at is not None:
        return "applied"
    # Soft delete: the row stays for history and the purge command; nobody is contacted.
    customer.deleted_at = now
    customer.updated_at = now
    if customer.status != CustomerStatus.CANCELLED:
        session.add(
            _status_change(customer, customer.status, CustomerStatus.CANCELLED, now, "crm: deleted")
        )
    await session.execute(
        update(Task)
        .where(Task.customer_id == customer.id, Task.status == TaskStatus.OPEN)
        .values(status=TaskStatus.CANCELLED, completed_at=now)
    )
    await session.execute(
        update(OutboundContact)
        .where(
            OutboundContact.customer_id == customer.id,
            OutboundContact.status.in_(DUE_CONTACT_STATES),
        )
        .values(status=ContactStatus.SKIPPED, reason="customer_deleted", updated_at=now)
    )
    return "applied"


async def _customer_activity(
    session: AsyncSession, event: Envelope, data: EventData, now: datetime
) -> Outcome:
    assert isinstance(data, CustomerActivity)
    customer = await live_customer(session, data.external_id)
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


async def _complaint_created(
    session: AsyncSession, event: Envelope, data: EventData, now: datetime
) -> Outcome:
    assert isinstance(data, ComplaintCreated)
    customer = await live_customer(session, data.external_id)
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
    customer = await live_customer(session, data.external_id)
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
    customer = await live_customer(session, data.external_id)
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
            status=ContactStatus.PENDING,
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
    customer = await live_customer(session, data.external_id)
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
            status=TaskStatus.OPEN,
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
    "payment.scheduled": payment_scheduled,
    "payment.paid": payment_paid,
    "complaint.created": _complaint_created,
    "consent.changed": _consent_changed,
    "contact.requested": _contact_requested,
    "task.created": _task_created,
    "agent.upserted": agent_upserted,
    "partner.upserted": partner_upserted,
}
