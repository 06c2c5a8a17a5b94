"""What a sent message cost: the provider's price when it gave one, else the configured
rate (per SMS segment, per e-mail); one ledger line per contact, never two."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from channels.base import Accepted
from gateway.core.db.dialect import insert_for
from gateway.core.db.models import CostEntry, OutboundContact
from gateway.core.db.types import new_id
from gateway.core.settings import Settings


def configured_cost(channel: str, segments: int | None, settings: Settings) -> Decimal | None:
    """The configured price of one message on `channel`."""
    rates = settings.costs
    if channel == "sms":
        return rates.sms_per_segment * (segments or 1)
    if channel == "email":
        return rates.email_per_message
    return None


async def record_cost(
    session: AsyncSession,
    contact: OutboundContact,
    accepted: Accepted,
    settings: Settings,
    now: datetime,
) -> tuple[Decimal, str] | None:
    """Write the ledger line for a sent contact (idempotent); returns (amount, currency)."""
    if accepted.price is not None and accepted.price_currency:
        amount, currency, source = abs(accepted.price), accepted.price_currency, "provider"
    else:
        configured = configured_cost(contact.channel, accepted.segments, settings)
        if configured is None:
            return None
        amount, currency, source = configured, settings.costs.currency, "configured"
    insert = insert_for(session)
    await session.execute(
        insert(CostEntry)
        .values(
            id=new_id("cost"),
            at=now,
            channel=contact.channel,
            customer_id=contact.customer_id,
            campaign_id=contact.campaign_id,
            contact_id=contact.id,
            amount=amount,
            currency=currency,
            source=source,
            units=accepted.segments or 1,
        )
        .on_conflict_do_nothing()
    )
    return amount, currency
