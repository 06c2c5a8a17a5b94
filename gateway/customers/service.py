"""Customer lookups: phone matching (for search and screen-pops), search, the card."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.core.db.models import Customer, Task
from gateway.core.phones import LAST_DIGITS, lookup_keys
from gateway.customers.card_query import card_lists
from gateway.customers.repository import customers_by_phone_key, live_customer, search_customers
from gateway.customers.schemas import (
    Consent,
    CustomerCard,
    CustomerSummary,
    LastContacts,
    Match,
    TaskItem,
    iso,
    money,
)

# A number shared by more customers than this is a switchboard, not a household: the
# screen-pop shows the first ones (all marked ambiguous) rather than load thousands.
MAX_PHONE_MATCHES = 50


class CustomerNotFound(LookupError):
    """No live customer with this id."""


@dataclass(frozen=True)
class PhoneMatch:
    """Who a number belongs to: `ambiguous` whenever more than one customer holds it."""

    match: Match
    customers: list[Customer] = field(default_factory=list)


async def find_by_phone(session: AsyncSession, raw: str, region: str) -> PhoneMatch:
    """Exact E.164 first, else the last 9 digits; one indexed query per step.

    The suffix step catches numbers without country code or with a trunk prefix
    (`80671234567`); it is skipped when the input has fewer than 9 digits, which would
    otherwise match nothing useful.
    """
    e164, digits = lookup_keys(raw, region)
    if e164 is not None:
        found = await customers_by_phone_key(session, e164=e164, limit=MAX_PHONE_MATCHES)
        if found:
            return PhoneMatch("ambiguous" if len(found) > 1 else "exact", found)
    if len(digits) < LAST_DIGITS:
        return PhoneMatch("none")
    found = await customers_by_phone_key(session, digits=digits, limit=MAX_PHONE_MATCHES)
    if not found:
        return PhoneMatch("none")
    return PhoneMatch("ambiguous" if len(found) > 1 else "suffix", found)


def summary(customer: Customer, match: Match | None = None) -> CustomerSummary:
    """A search hit."""
    return CustomerSummary(
        id=customer.id,
        external_id=customer.external_id,
        name=customer.name,
        phones=[phone.e164 for phone in customer.phones],
        email=customer.email,
        status=customer.status,
        region=customer.region,
        responsible_agent=customer.responsible_agent,
        match=match,
    )


async def search(
    session: AsyncSession,
    *,
    phone: str | None,
    name: str | None,
    external_id: str | None,
    after_id: str | None,
    limit: int,
    region: str,
) -> list[CustomerSummary]:
    """Up to `limit` hits in id order after `after_id`; filters combine with AND."""
    if phone is None:
        found = await search_customers(
            session,
            name=name,
            external_id=external_id,
            after_id=after_id,
            limit=limit,
        )
        return [summary(customer) for customer in found]
    matched = await find_by_phone(session, phone, region)
    hits = [
        customer
        for customer in matched.customers
        if (after_id is None or customer.id > after_id)
        and (external_id is None or customer.external_id == external_id)
        and (not name or name.casefold() in customer.name.casefold())
    ]
    return [summary(customer, matched.match) for customer in hits[:limit]]


async def get_live(session: AsyncSession, customer_id: str) -> Customer:
    """The customer or CustomerNotFound (deleted ones are not served)."""
    customer = await live_customer(session, customer_id)
    if customer is None:
        raise CustomerNotFound(customer_id)
    return customer


def task_item(task: Task) -> TaskItem:
    """A task as the API shows it."""
    return TaskItem(
        id=task.id,
        task_id=task.task_id,
        kind=task.kind,
        customer_id=task.customer_id,
        assignee=task.assignee,
        status=task.status,
        min_call_seconds=task.min_call_seconds,
        created_at=iso(task.created_at) or "",
        due_at=iso(task.due_at),
        completed_by_call_id=task.completed_by_call_id,
    )


async def card(session: AsyncSession, customer: Customer, today: date) -> CustomerCard:
    """The customer card; `today` (in the configured timezone) picks the next payment.

    Its four lists come in one round trip (`card_query`) on both databases.
    """
    tasks, messages, calls, payment = await card_lists(session, customer.id, today)
    return CustomerCard(
        id=customer.id,
        external_id=customer.external_id,
        name=customer.name,
        phones=[phone.e164 for phone in customer.phones],
        email=customer.email,
        timezone=customer.timezone,
        language=customer.language,
        status=customer.status,
        status_changed_at=iso(customer.status_changed_at),
        responsible_agent=customer.responsible_agent,
        region=customer.region,
        products=list(customer.products or []),
        bonus_balance=money(customer.bonus_balance),
        attributes=dict(customer.attributes or {}),
        consent=Consent(
            sms_opt_out=customer.sms_opt_out,
            email_opt_out=customer.email_opt_out,
            voice_opt_out=customer.voice_opt_out,
            do_not_contact=customer.do_not_contact,
        ),
        contract_started_at=iso(customer.contract_started_at),
        last_activity_at=iso(customer.last_activity_at),
        last_order_at=iso(customer.last_order_at),
        open_tasks=tasks,
        last_contacts=LastContacts(messages=messages, calls=calls),
        next_payment=payment,
    )
