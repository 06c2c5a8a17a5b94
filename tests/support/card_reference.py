"""The customer card's lists read the plain way (four ORM queries), as the reference the
one-statement `card_query.card_lists` is checked against on both databases."""

from __future__ import annotations

from datetime import date

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.core.db.models import Call, OutboundContact, Payment, Task
from gateway.customers.card_query import CARD_OPEN_TASKS, CARD_RECENT
from gateway.customers.schemas import CallItem, MessageItem, PaymentItem, TaskItem, iso, money
from gateway.customers.service import task_item


async def card_lists_by_orm(
    session: AsyncSession, customer_id: str, today: date
) -> tuple[list[TaskItem], list[MessageItem], list[CallItem], PaymentItem | None]:
    """The card's lists with four plain ORM queries: the reference `card_lists` must equal."""
    tasks = await session.execute(
        select(Task)
        .where(Task.customer_id == customer_id, Task.status == "open")
        .order_by(Task.due_at.is_(None), Task.due_at, Task.created_at)
        .limit(CARD_OPEN_TASKS)
    )
    messages = await session.execute(
        select(OutboundContact)
        .where(OutboundContact.customer_id == customer_id)
        .order_by(OutboundContact.created_at.desc(), OutboundContact.id.desc())
        .limit(CARD_RECENT)
    )
    calls = await session.execute(
        select(Call)
        .where(Call.customer_id == customer_id)
        .order_by(func.coalesce(Call.started_at, Call.created_at).desc(), Call.id.desc())
        .limit(CARD_RECENT)
    )
    payment = (
        await session.execute(
            select(Payment)
            .where(
                Payment.customer_id == customer_id,
                Payment.status == "due",
                Payment.due_date >= today,
            )
            .order_by(Payment.due_date, Payment.contract_id)
            .limit(1)
        )
    ).scalar_one_or_none()
    return (
        [task_item(task) for task in tasks.scalars()],
        [message_item(m) for m in messages.scalars()],
        [call_item(c) for c in calls.scalars()],
        None if payment is None else payment_item(payment),
    )


def message_item(contact: OutboundContact) -> MessageItem:
    return MessageItem(
        id=contact.id,
        channel=contact.channel,
        status=contact.status,
        template=contact.template,
        created_at=iso(contact.created_at) or "",
        sent_at=iso(contact.sent_at),
        delivered_at=iso(contact.delivered_at),
        reason=contact.reason,
        error=contact.error,
    )


def call_item(call: Call) -> CallItem:
    return CallItem(
        id=call.id,
        direction=call.direction,
        started_at=iso(call.started_at),
        extension=call.extension,
        talk_seconds=call.talk_seconds,
        disposition=call.disposition,
        topic=call.topic,
    )


def payment_item(payment: Payment) -> PaymentItem:
    return PaymentItem(
        contract_id=payment.contract_id,
        due_date=payment.due_date.isoformat(),
        amount=money(payment.amount) or "0.00",
        currency=payment.currency,
        status=payment.status,
    )
