"""From a stored contact to a message the channel can send, or the reason it can't go now.

Rendering and the consent/window/cap rules live in `channels/`; this module only gathers
what they need from the database and turns their answers into the pipeline's terms.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from channels.base import ChannelName, Outgoing
from gateway.db.models import Customer, OutboundContact


@dataclass(frozen=True)
class Skip:
    """Never send: `reason` is one of the contract's skipped reasons."""

    reason: str
    detail: str = ""


@dataclass(frozen=True)
class Defer:
    """Not now: try again at `until` (a sending window opens, a cap frees up)."""

    until: datetime
    reason: str


Prepared = Outgoing | Skip | Defer


def address_for(customer: Customer, channel: str) -> str | None:
    """The number or address to use: the first valid phone for SMS and voice."""
    if channel == "email":
        return customer.email or None
    for phone in customer.phones:
        if not phone.invalid:
            return phone.e164
    return None


async def prepare_inline(
    session: AsyncSession, contact: OutboundContact, now: datetime
) -> Prepared:
    """The minimal preparation: consent flags, an address, the stored (inline) text."""
    customer = await session.get(Customer, contact.customer_id) if contact.customer_id else None
    if customer is None or customer.deleted_at is not None:
        return Skip("customer_deleted")
    if customer.do_not_contact:
        return Skip("do_not_contact")
    if getattr(customer, f"{contact.channel}_opt_out", False):
        return Skip("opted_out")
    address = contact.to_address or address_for(customer, contact.channel)
    if address is None:
        return Skip("invalid_number" if contact.channel != "email" else "no_address")
    if contact.body is None:
        return Skip("missing_template", "no rendered body")
    channel: ChannelName = contact.channel  # type: ignore[assignment]
    return Outgoing(
        contact_id=contact.id,
        idempotency_key=contact.idempotency_key,
        channel=channel,
        to=address,
        text=contact.body,
        subject=contact.subject,
        customer_id=contact.customer_id,
        campaign_id=contact.campaign_id,
    )
