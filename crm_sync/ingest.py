"""Apply one verified CRM event inside the caller's transaction: dedupe, order, write."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import bindparam, delete, inspect, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import raiseload

from crm_sync.events import (
    AgentUpserted,
    ComplaintCreated,
    ConsentChanged,
    ContactRequested,
    CustomerActivity,
    CustomerDeleted,
    CustomerUpserted,
    Envelope,
    EventData,
    PartnerUpserted,
    PaymentScheduled,
    TaskCreated,
)
from gateway.customers.repository import upsert_customer
from gateway.db.models import (
    Activity,
    Agent,
    AgentExtension,
    Complaint,
    Customer,
    EntityVersion,
    OutboundContact,
    Partner,
    Payment,
    ProcessedWebhook,
    StatusChange,
    Task,
    Template,
)
from gateway.db.types import UtcDateTime, new_id

SOURCE = "crm"
Outcome = Literal["applied", "duplicate", "stale"]


class EventRejected(ValueError):
    """The event is well formed but cannot apply; `field` names the culprit (→ 422)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


async def apply_event(
    session: AsyncSession, event: Envelope, data: EventData, now: datetime
) -> Outcome:
    """Record the event id, drop it if older than what we hold, else apply it.

    Everything happens in the caller's transaction, so the id is recorded if and only
    if the changes are; raising EventRejected must roll the whole transaction back.
    """
    if not await _claim(session, event, now):
        return "duplicate"
    apply = _APPLIERS[event.type]
    return await apply(session, event, data, now)


def _claim_statement(insert: Any) -> Any:
    """Insert the event id unless it is there (bound per call)."""
    return (
        insert(ProcessedWebhook.__table__)
        .values(
            event_id=bindparam("event_id"),
            source=SOURCE,
            type=bindparam("type"),
            received_at=bindparam("received_at", type_=UtcDateTime()),
        )
        .on_conflict_do_nothing(index_elements=["event_id", "source"])
    )


def _version_statement(insert: Any) -> Any:
    """Advance an entity's version unless it holds a later one (bound per call)."""
    table = EntityVersion.__table__
    statement = insert(table).values(
        entity=bindparam("entity"), occurred_at=bindparam("occurred_at", type_=UtcDateTime())
    )
    return statement.on_conflict_do_update(
        index_elements=["entity"],
        set_={"occurred_at": statement.excluded.occurred_at},
        where=table.c.occurred_at <= statement.excluded.occurred_at,
    )


# Built once per dialect: constructing these costs more than executing them.
_CLAIM = {"postgresql": _claim_statement(pg_insert), "sqlite": _claim_statement(sqlite_insert)}
_VERSION = {
    "postgresql": _version_statement(pg_insert),
    "sqlite": _version_statement(sqlite_insert),
}
_CUSTOMER_BY_EXTERNAL_ID = (
    select(Customer)
    .where(Customer.external_id == bindparam("external_id"))
    .options(raiseload(Customer.phones))
)


async def _claim(session: AsyncSession, event: Envelope, now: datetime) -> bool:
    """Insert the event id; False when it is already there.

    ON CONFLICT DO NOTHING also settles two concurrent identical deliveries: on
    PostgreSQL the second insert waits for the first transaction and then does nothing.
    """
    statement = _CLAIM[session.get_bind().dialect.name]
    params = {"event_id": event.id, "type": event.type, "received_at": now}
    result = await session.execute(statement, params)
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def _newer(session: AsyncSession, entity: str, occurred_at: datetime) -> bool:
    """Advance the entity's version to `occurred_at` unless it already holds a later one.

    The upsert row-locks the version until commit, so concurrent events for one entity
    apply one after the other in occurred_at order, never interleaved.
    """
    statement = _VERSION[session.get_bind().dialect.name]
    params = {"entity": entity, "occurred_at": occurred_at}
    result = await session.execute(statement, params)
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


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


async def _customer_upserted(
    session: AsyncSession, event: Envelope, data: EventData, now: datetime
) -> Outcome:
    assert isinstance(data, CustomerUpserted)
    if not await _newer(session, f"customer:{data.external_id}", event.occurred_at):
        return "stale"
    customer, created = await upsert_customer(
        session, data.external_id, data.fields(), data.phones, now
    )
    restored = any(old is not None for old in inspect(customer).attrs.deleted_at.history.deleted)
    if created:
        # Built before the flush so the customer row is inserted with its status time
        # (no extra UPDATE); added after it because the change references that row.
        change = _status_change(customer, None, "active", now, "created")
        await session.flush()
        session.add(change)
    elif restored:
        session.add(_status_change(customer, customer.status, "active", now, "crm: restored"))
    return "applied"


async def _customer_deleted(
    session: AsyncSession, event: Envelope, data: EventData, now: datetime
) -> Outcome:
    assert isinstance(data, CustomerDeleted)
    customer = await _customer_row(session, data.external_id)
    if customer is None:
        raise EventRejected("data.external_id", "unknown customer")
    if not await _newer(session, f"customer:{data.external_id}", event.occurred_at):
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
    if not await _newer(session, key, event.occurred_at):
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
    key = f"consent:{data.external_id}:{data.channel}"
    if not await _newer(session, key, event.occurred_at):
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
    if not await _newer(session, f"task:{data.task_id}", event.occurred_at):
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


async def _agent_upserted(
    session: AsyncSession, event: Envelope, data: EventData, now: datetime
) -> Outcome:
    assert isinstance(data, AgentUpserted)
    if not await _newer(session, f"agent:{data.agent_id}", event.occurred_at):
        return "stale"
    extensions = list(dict.fromkeys(data.extensions))
    agent = (
        await session.execute(select(Agent).where(Agent.agent_id == data.agent_id))
    ).scalar_one_or_none()
    if agent is None:
        agent = Agent(id=new_id("agt"), agent_id=data.agent_id, created_at=now)
        session.add(agent)
    agent.name = data.name
    agent.crm_user_id = data.crm_user_id
    agent.extensions = extensions
    agent.updated_at = now
    await session.flush()  # extensions reference the agent row
    await session.execute(
        delete(AgentExtension).where(
            AgentExtension.agent_id == agent.id, AgentExtension.extension.not_in(extensions)
        )
    )
    taken = (
        await session.execute(
            select(AgentExtension).where(AgentExtension.extension.in_(extensions))
        )
    ).scalars()
    held = {row.extension: row for row in taken}
    for extension in extensions:
        row = held.get(extension)
        if row is None:
            session.add(AgentExtension(extension=extension, agent_id=agent.id))
        elif row.agent_id != agent.id:
            previous = await session.get(Agent, row.agent_id)
            if previous is not None:
                previous.extensions = [e for e in previous.extensions if e != extension]
                previous.updated_at = now
            row.agent_id = agent.id
    return "applied"


async def _partner_upserted(
    session: AsyncSession, event: Envelope, data: EventData, now: datetime
) -> Outcome:
    assert isinstance(data, PartnerUpserted)
    if not await _newer(session, f"partner:{data.partner_id}", event.occurred_at):
        return "stale"
    partner = (
        await session.execute(select(Partner).where(Partner.partner_id == data.partner_id))
    ).scalar_one_or_none()
    if partner is None:
        partner = Partner(id=new_id("prt"), partner_id=data.partner_id, created_at=now)
        session.add(partner)
    partner.name = data.name
    partner.capacity_per_day = data.capacity
    partner.cost_per_contact = data.cost_per_contact
    partner.currency = data.currency
    partner.eligibility = data.eligibility
    partner.performance = data.performance
    partner.updated_at = now
    return "applied"


Applier = Callable[[AsyncSession, Envelope, EventData, datetime], Awaitable[Outcome]]

_APPLIERS: dict[str, Applier] = {
    "customer.upserted": _customer_upserted,
    "customer.deleted": _customer_deleted,
    "customer.activity": _customer_activity,
    "payment.scheduled": _payment_scheduled,
    "complaint.created": _complaint_created,
    "consent.changed": _consent_changed,
    "contact.requested": _contact_requested,
    "task.created": _task_created,
    "agent.upserted": _agent_upserted,
    "partner.upserted": _partner_upserted,
}
