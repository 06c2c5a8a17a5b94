"""Customer rows: upsert from the CRM, look up by id or external id."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_sync.phones import last_digits
from gateway.db.models import Customer, CustomerPhone
from gateway.db.types import new_id

# Fields the CRM owns and an upsert overwrites (phones are handled separately).
CRM_FIELDS = (
    "name",
    "email",
    "timezone",
    "language",
    "region",
    "products",
    "responsible_agent",
    "contract_started_at",
    "attributes",
    "bonus_balance",
)


async def get_by_external_id(session: AsyncSession, external_id: str) -> Customer | None:
    """The customer the CRM knows as `external_id` (deleted ones included)."""
    result = await session.execute(select(Customer).where(Customer.external_id == external_id))
    return result.scalar_one_or_none()


async def upsert_customer(
    session: AsyncSession,
    external_id: str,
    fields: dict[str, Any],
    phones: list[str] | None,
    now: datetime,
) -> tuple[Customer, bool]:
    """Create or update by external id; returns (customer, created).

    Only keys present in `fields` are written, so a partial update leaves the rest alone.
    `phones` (already E.164, in the CRM's order) replaces the list when given.
    """
    customer = await get_by_external_id(session, external_id)
    created = customer is None
    if customer is None:
        customer = Customer(
            id=new_id("cus"),
            external_id=external_id,
            name="",
            products=[],
            attributes={},
            status="active",
            created_at=now,
            updated_at=now,
        )
        session.add(customer)
    for name in CRM_FIELDS:
        if name in fields:
            setattr(customer, name, fields[name])
    customer.deleted_at = None
    customer.updated_at = now
    if phones is not None:
        set_phones(customer, phones)
    return customer, created


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
