"""Customer rows: upsert from the CRM, look up by id or external id."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, Select, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased, joinedload

from crm_sync.customer_write import CRM_FIELDS as CRM_FIELDS
from crm_sync.customer_write import write_customer
from gateway.core.db.dialect import contains_ignoring_case
from gateway.core.db.models import Customer, CustomerPhone
from gateway.core.phones import last_digits


async def get_by_external_id(session: AsyncSession, external_id: str) -> Customer | None:
    """The customer the CRM knows as `external_id` (deleted ones included)."""
    result = await session.execute(select(Customer).where(Customer.external_id == external_id))
    return result.scalar_one_or_none()


async def upsert_customer(
    session: AsyncSession,
    external_id: str,
    fields: dict[str, object],
    phones: list[str] | None,
    now: datetime,
) -> tuple[Customer, bool]:
    """Create or update by external id; returns (customer, created).

    Only keys present in `fields` are written, so a partial update leaves the rest alone.
    `phones` (already E.164, in the CRM's order) replaces the list when given.
    """
    await session.flush()  # the statements below bypass the unit of work
    written = await write_customer(await session.connection(), external_id, fields, phones, now)
    customer = await session.get(Customer, written.id, populate_existing=True)
    assert customer is not None  # written in this transaction
    return customer, written.created


def set_phones(customer: Customer, phones: list[str]) -> None:
    """Replace the customer's numbers, keeping order and dropping repeats."""
    unique = list(dict.fromkeys(phones))
    existing = {phone.e164: phone for phone in customer.phones}
    customer.phones = [
        existing.get(e164) or CustomerPhone(e164=e164, last_digits=last_digits(e164))
        for e164 in unique
    ]
    for position, phone in enumerate(customer.phones):
        phone.position = position


async def live_customer(session: AsyncSession, customer_id: str) -> Customer | None:
    """The customer with this id unless it is unknown or deleted."""
    customer = await session.get(Customer, customer_id)
    return customer if customer is not None and customer.deleted_at is None else None


def _by_phone(key_column: str) -> Select[Customer]:
    """Live customers holding a number, phones joined-eager: built once, bound per call.

    Building an ORM statement with an aliased join costs far more than running it, so
    the screen-pop path reuses these two (their compiled form is cached too).
    """
    matched = aliased(CustomerPhone, name="matched_phone")
    return (
        select(Customer)
        .join(matched, matched.customer_id == Customer.id)
        .where(getattr(matched, key_column) == bindparam("key"), Customer.deleted_at.is_(None))
        .order_by(Customer.id)
        .limit(bindparam("max_rows", type_=Integer))
        .options(joinedload(Customer.phones))
    )


_BY_E164 = _by_phone("e164")
_BY_LAST_DIGITS = _by_phone("last_digits")


async def customers_by_phone_key(
    session: AsyncSession, *, e164: str | None = None, digits: str | None = None, limit: int
) -> list[Customer]:
    """Live customers holding the number (by E.164, else by its last digits), phones loaded.

    One statement: the matching phone is an aliased join (served by the e164 or
    last_digits index) and the customer's full phone list comes joined-eager.
    """
    statement = _BY_E164 if e164 is not None else _BY_LAST_DIGITS
    params = {"key": e164 if e164 is not None else digits, "max_rows": limit}
    return list((await session.execute(statement, params)).unique().scalars())


async def search_customers(
    session: AsyncSession,
    *,
    name: str | None,
    external_id: str | None,
    after_id: str | None,
    limit: int,
) -> list[Customer]:
    """Live customers by name substring and/or external id, in id order after `after_id`."""
    statement = select(Customer).where(Customer.deleted_at.is_(None))
    if name:
        statement = statement.where(contains_ignoring_case(session, Customer.name, name))
    if external_id is not None:
        statement = statement.where(Customer.external_id == external_id)
    if after_id is not None:
        statement = statement.where(Customer.id > after_id)
    statement = statement.order_by(Customer.id).limit(limit)
    return list((await session.execute(statement)).scalars())
