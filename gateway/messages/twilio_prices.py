"""Twilio's real price for a sent SMS, fetched after delivery into the cost ledger.

Callbacks carry no price: after `delivered`/`undelivered` the price is fetched in the
background (the status webhook spawns it; the pipeline may also call `settle_prices`
for anything missed) and replaces the configured estimate in the cost ledger.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from datetime import datetime
from decimal import Decimal, InvalidOperation

from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncSession

from adapters.twilio import TwilioAdapter, TwilioError
from gateway.core.db.dialect import insert_for
from gateway.core.db.engine import Database
from gateway.core.db.models import CostEntry, OutboundContact
from gateway.core.db.states import ContactStatus
from gateway.core.db.types import new_id

log = logging.getLogger(__name__)

PRICED_STATES = (ContactStatus.DELIVERED, ContactStatus.UNDELIVERED)


async def settle_prices(
    database: Database,
    adapter: TwilioAdapter,
    now: datetime,
    *,
    contact_ids: Collection[str] | None = None,
    limit: int = 100,
) -> int:
    """Fetch Twilio's price for delivered SMS still without one; returns how many were set.

    A contact is pending while it is a delivered/undelivered Twilio SMS with no
    `provider` ledger line. Twilio fills the price some time after delivery: a message
    still without one stays pending for the next call.
    """
    pending = (
        select(OutboundContact.id, OutboundContact.provider_id, OutboundContact.segments)
        .outerjoin(
            CostEntry,
            and_(CostEntry.contact_id == OutboundContact.id, CostEntry.source == "provider"),
        )
        .where(
            OutboundContact.channel == "sms",
            OutboundContact.sandbox.is_(False),
            OutboundContact.status.in_(PRICED_STATES),
            OutboundContact.provider_id.is_not(None),
            CostEntry.id.is_(None),
        )
        .order_by(OutboundContact.id)
        .limit(limit)
    )
    if contact_ids is not None:
        pending = pending.where(OutboundContact.id.in_(list(contact_ids)))
    async with database.sessions() as session:
        rows = (await session.execute(pending)).all()
    settled = 0
    for contact_id, provider_id, segments in rows:
        try:
            message = await adapter.fetch_message(str(provider_id))
        except TwilioError as exc:
            log.warning("cannot fetch the price of %s: %s", provider_id, exc.message)
            continue
        price = _price(message["price"])
        if price is None or not message["price_unit"]:
            continue
        units = message["num_segments"] or segments or 1
        async with database.transaction() as session:
            await _write_price(session, contact_id, price, message["price_unit"], units, now)
        settled += 1
    return settled


def _price(raw: str | None) -> Decimal | None:
    if raw is None:
        return None
    try:
        return abs(Decimal(raw))  # Twilio reports charges as negative amounts
    except InvalidOperation:
        return None


async def _write_price(
    session: AsyncSession,
    contact_id: str,
    amount: Decimal,
    currency: str,
    units: int,
    now: datetime,
) -> None:
    contact = await session.get(OutboundContact, contact_id)
    if contact is None:
        return
    currency = currency.upper()
    insert = insert_for(session)
    statement = insert(CostEntry).values(
        id=new_id("cost"),
        at=now,
        channel="sms",
        customer_id=contact.customer_id,
        campaign_id=contact.campaign_id,
        contact_id=contact_id,
        amount=amount,
        currency=currency,
        source="provider",
        units=units,
    )
    # The pipeline wrote the configured estimate at send time: the price replaces it.
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[CostEntry.contact_id],
            set_={"amount": amount, "currency": currency, "source": "provider", "units": units},
        )
    )
    contact.cost, contact.currency, contact.updated_at = amount, currency, now
