"""Applying an incoming SMS: STOP words opt out, START words opt back in, anything
else is recorded as a reply to the customer's latest SMS."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm_sync.ingest_guards import consent_entity, newer
from gateway.core.db.dialect import insert_for
from gateway.core.db.models import Customer, OutboundContact, ProcessedWebhook
from gateway.core.db.states import SENT_CONTACT_STATES
from gateway.core.outbox import enqueue
from gateway.core.phones import InvalidPhone, normalize_phone
from gateway.customers.public import find_by_phone

STOP_WORDS = frozenset({"stop", "stopall", "unsubscribe", "cancel", "end", "quit", "стоп"})
START_WORDS = frozenset({"start", "unstop", "yes"})
# processed_webhooks is keyed by (event_id, source): Twilio's MessageSid under its own source,
# so a message SID can never collide with a CRM event id.
INBOUND_SOURCE = "twilio-sms"


async def apply_inbound(
    session: AsyncSession, sid: str, sender: str, text: str, region: str, now: datetime
) -> str:
    """Apply one incoming SMS to every customer holding the number; returns its kind,
    or "duplicate" when this MessageSid was applied before (nothing changes)."""
    word = text.strip().casefold()
    kind = "stop" if word in STOP_WORDS else "start" if word in START_WORDS else "reply"
    if not await _first_delivery(session, sid, kind, now):
        # Twilio retries a webhook it got no answer to: a STOP delivered again after a
        # newer START must not opt the customer out again, nor a reply mark a later SMS.
        return "duplicate"
    matched = await find_by_phone(session, sender, region)
    try:
        phone = normalize_phone(sender, region)
    except InvalidPhone:
        phone = sender
    for customer in matched.customers:
        if kind == "reply":
            await _record_reply(session, customer, sid, phone, text, now)
            continue
        opted_out = kind == "stop"
        if customer.sms_opt_out == opted_out:
            continue
        await session.execute(
            update(Customer)
            .where(Customer.id == customer.id)
            .values(sms_opt_out=opted_out, updated_at=now)
        )
        # The customer's own word is the newest consent: an older CRM event must not undo it.
        await newer(session, consent_entity(customer.external_id, "sms"), now)
        await enqueue(
            session,
            type="consent.changed",
            data={
                "external_id": customer.external_id,
                "customer_id": customer.id,
                "channel": "sms",
                "opted_out": opted_out,
                "source": "sms_keyword",
                "at": now,
            },
            ordering_key=customer.id,
            occurred_at=now,
            event_id=f"consent.changed:{sid}:{customer.id}",
            now=now,
        )
    return kind


async def _first_delivery(session: AsyncSession, sid: str, kind: str, now: datetime) -> bool:
    """Claim the MessageSid in the same transaction as its effects; False if seen before.

    ON CONFLICT DO NOTHING also settles two concurrent deliveries of one SID: on
    PostgreSQL the second waits for the first transaction, then inserts nothing.
    """
    insert = insert_for(session)
    statement = (
        insert(ProcessedWebhook)
        .values(event_id=sid, source=INBOUND_SOURCE, type=f"sms.{kind}", received_at=now)
        .on_conflict_do_nothing(index_elements=["event_id", "source"])
    )
    result = await session.execute(statement)
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def _record_reply(
    session: AsyncSession, customer: Customer, sid: str, phone: str, text: str, now: datetime
) -> None:
    contact = await session.scalar(
        select(OutboundContact)
        .where(
            OutboundContact.customer_id == customer.id,
            OutboundContact.channel == "sms",
            OutboundContact.status.in_(SENT_CONTACT_STATES),
        )
        .order_by(OutboundContact.sent_at.desc(), OutboundContact.id.desc())
        .limit(1)
    )
    if contact is not None and contact.replied_at is None:
        contact.replied_at, contact.updated_at = now, now
    await enqueue(
        session,
        type="message.replied",
        data={
            "message_id": contact.id if contact is not None else None,
            "campaign_id": contact.campaign_id if contact is not None else None,
            "external_id": customer.external_id,
            "customer_id": customer.id,
            "channel": "sms",
            "from": phone,
            "body": text,
            "at": now,
        },
        ordering_key=customer.id,
        occurred_at=now,
        event_id=f"message.replied:{sid}:{customer.id}",
        now=now,
    )
