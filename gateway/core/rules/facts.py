"""Derived customer facts for one customer (Python evaluation) and segments (SQL)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.core.clock import as_utc
from gateway.core.db.dialect import dialect_of
from gateway.core.db.models import Activity, Call, Customer, OutboundContact, Payment
from gateway.core.db.states import SENT_CONTACT_STATES, PaymentStatus
from gateway.core.rules.compile_sql import segment_query
from gateway.core.rules.fields import local_today
from gateway.core.rules.validate import Rule

DAY = timedelta(days=1)


class CustomerNotFound(LookupError):
    """No live customer with that id."""


@dataclass(frozen=True, slots=True)
class CustomerFacts:
    """Everything a rule can ask about one customer at one moment; None means missing."""

    customer_id: str
    status: str
    region: str | None = None
    language: str | None = None
    timezone: str | None = None
    responsible_agent: str | None = None
    products: tuple[object, ...] = ()
    bonus_balance: Decimal | None = None
    attributes: Mapping[str, object] = field(default_factory=dict)
    days_since_activity: int | None = None
    days_since_order: int | None = None
    days_until_payment: int | None = None
    payment_amount: Decimal | None = None
    orders_last_day: int = 0
    contract_age_days: int | None = None
    days_until_monitoring: int | None = None
    # Only topics and channels that have something; others count 0 / missing.
    topic_calls_30d: Mapping[str, int] = field(default_factory=dict)
    last_contact_days: Mapping[str, int] = field(default_factory=dict)


def whole_days(as_of: datetime, moment: datetime | None) -> int | None:
    """Whole days elapsed from `moment` to `as_of` (floored; negative if in the future)."""
    if moment is None:
        return None
    return (as_of - as_utc(moment)) // DAY


async def load_facts(
    session: AsyncSession, customer_id: str, as_of: datetime, *, timezone: str = "UTC"
) -> CustomerFacts:
    """The facts of one live customer as of `as_of` (calendar dates in `timezone`)."""
    as_of = as_utc(as_of)
    row = (
        await session.execute(
            select(
                Customer.status,
                Customer.region,
                Customer.language,
                Customer.timezone,
                Customer.responsible_agent,
                Customer.products,
                Customer.bonus_balance,
                Customer.attributes,
                Customer.contract_started_at,
                Customer.next_monitoring_at,
            ).where(Customer.id == customer_id, Customer.deleted_at.is_(None))
        )
    ).one_or_none()
    if row is None:
        raise CustomerNotFound(customer_id)
    mine = Activity.customer_id == customer_id
    last_activity, last_order, orders = (
        await session.execute(
            select(
                func.max(Activity.at),
                func.max(Activity.at).filter(Activity.kind == "order"),
                func.count(Activity.id).filter(Activity.kind == "order", Activity.at > as_of - DAY),
            ).where(mine, Activity.at <= as_of)
        )
    ).one()
    topics = await session.execute(
        select(Call.topic, func.count(Call.id))
        .where(
            Call.customer_id == customer_id,
            Call.topic.is_not(None),
            Call.started_at > as_of - 30 * DAY,
            Call.started_at <= as_of,
        )
        .group_by(Call.topic)
    )
    contacts = await session.execute(
        select(OutboundContact.channel, func.max(OutboundContact.sent_at))
        .where(
            OutboundContact.customer_id == customer_id,
            OutboundContact.status.in_(SENT_CONTACT_STATES),
            OutboundContact.sent_at <= as_of,
        )
        .group_by(OutboundContact.channel)
    )
    due = (
        await session.execute(
            select(Payment.due_date, Payment.amount).where(
                Payment.customer_id == customer_id, Payment.status == PaymentStatus.DUE
            )
        )
    ).all()
    next_due, amount = _next_payment(due)
    today = local_today(as_of, timezone)
    products = row.products
    return CustomerFacts(
        customer_id=customer_id,
        status=row.status,
        region=row.region,
        language=row.language,
        timezone=row.timezone,
        responsible_agent=row.responsible_agent,
        products=tuple(products) if isinstance(products, list) else (),
        bonus_balance=row.bonus_balance,
        attributes=row.attributes if isinstance(row.attributes, dict) else {},
        days_since_activity=whole_days(as_of, last_activity),
        days_since_order=whole_days(as_of, last_order),
        days_until_payment=None if next_due is None else (next_due - today).days,
        payment_amount=amount,
        orders_last_day=int(orders),
        contract_age_days=whole_days(as_of, row.contract_started_at),
        days_until_monitoring=(
            None if row.next_monitoring_at is None else -whole_days(as_of, row.next_monitoring_at)  # type: ignore[operator]
        ),
        topic_calls_30d={str(topic): int(count) for topic, count in topics.all()},
        last_contact_days={
            channel: days
            for channel, sent in contacts.all()
            if (days := whole_days(as_of, sent)) is not None
        },
    )


def _next_payment(rows: Sequence[Any]) -> tuple[date | None, Decimal | None]:
    """The earliest unpaid due date and what is due that day in total."""
    if not rows:
        return None, None
    first = min(row.due_date for row in rows)
    return first, sum((row.amount for row in rows if row.due_date == first), Decimal(0))


def segment(
    session: AsyncSession, rule: Rule, as_of: datetime, *, timezone: str = "UTC"
) -> Select[str]:
    """`SELECT customers.id` of the live customers the rule selects as of `as_of`."""
    as_of = as_utc(as_of)
    dialect = dialect_of(session)
    return segment_query(rule, as_of=as_of, today=local_today(as_of, timezone), dialect=dialect)
