"""Applying a Twilio status callback to its outbound contact.

Status callbacks move a contact forward only: `sent` → `delivered`/`undelivered`/`failed`
are applied with a conditional UPDATE naming the states they may leave, so a late or
repeated callback (a `sent` after `delivered`) changes nothing, and two racing callbacks
cannot both win. A contact left `unknown` by a timeout is settled by its first callback.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, or_, update
from sqlalchemy.ext.asyncio import AsyncSession

from channels.sms import INVALID_NUMBER_CODES, OPTED_OUT_CODES
from gateway.core.db.models import Customer, CustomerPhone, OutboundContact
from gateway.core.db.states import ContactStatus
from gateway.core.outbox import enqueue

# Twilio's MessageStatus → our state; statuses before "sent" say nothing new to us.
TWILIO_TARGET = {
    "sent": ContactStatus.SENT,
    "delivered": ContactStatus.DELIVERED,
    "read": ContactStatus.DELIVERED,
    "undelivered": ContactStatus.UNDELIVERED,
    "failed": ContactStatus.FAILED,
    "canceled": ContactStatus.FAILED,
}
# The states each target may be reached from: never backwards, finals stay final.
_UNSETTLED = (ContactStatus.SENDING, ContactStatus.UNKNOWN)
_FROM = {
    ContactStatus.SENT: _UNSETTLED,
    ContactStatus.DELIVERED: (*_UNSETTLED, ContactStatus.SENT),
    ContactStatus.UNDELIVERED: (*_UNSETTLED, ContactStatus.SENT),
    ContactStatus.FAILED: (*_UNSETTLED, ContactStatus.SENT),
}


async def apply_status(
    session: AsyncSession,
    contact_id: str | None,
    sid: str,
    target: ContactStatus,
    error_code: str | None,
    now: datetime,
) -> str | None:
    """Apply one status to the contact (by id, else by provider id); its id if it moved."""
    values: dict[str, object] = {
        "status": target,
        "provider_id": sid,
        "updated_at": now,
        "sent_at": func.coalesce(OutboundContact.sent_at, now),
    }
    if target == ContactStatus.DELIVERED:
        values["delivered_at"] = now
    elif target in (ContactStatus.UNDELIVERED, ContactStatus.FAILED):
        values["failed_at"] = now
        values["error_code"] = error_code
        values["error"] = f"Twilio reported {target}" + (
            f" (error {error_code})" if error_code else ""
        )
        values["reason"] = _reason(error_code)
    where = [OutboundContact.channel == "sms", OutboundContact.status.in_(_FROM[target])]
    if contact_id:
        where += [
            OutboundContact.id == contact_id,
            or_(OutboundContact.provider_id.is_(None), OutboundContact.provider_id == sid),
        ]
    else:
        where.append(OutboundContact.provider_id == sid)
    row = (
        await session.execute(
            update(OutboundContact)
            .where(*where)
            .values(**values)
            .returning(
                OutboundContact.id,
                OutboundContact.customer_id,
                OutboundContact.campaign_id,
                OutboundContact.to_address,
            )
            .execution_options(synchronize_session=False)
        )
    ).first()
    if row is None:
        return None
    moved_id, customer_id, campaign_id, to_address = row
    if target == ContactStatus.SENT:
        return str(moved_id)
    await _apply_consequence(session, customer_id, to_address, _reason(error_code))
    kind = "message.delivered" if target == ContactStatus.DELIVERED else "message.failed"
    await enqueue(
        session,
        type=kind,
        data={
            "message_id": moved_id,
            "channel": "sms",
            "customer_id": customer_id,
            "campaign_id": campaign_id,
            "status": target,
            "error_code": error_code if target != ContactStatus.DELIVERED else None,
        },
        ordering_key=customer_id or "messages",
        occurred_at=now,
        event_id=f"{kind}:{moved_id}",  # the pipeline uses the same: one event per contact
        now=now,
    )
    return str(moved_id)


def _reason(error_code: str | None) -> str | None:
    try:
        code = int(error_code) if error_code else None
    except ValueError:
        return None
    if code in OPTED_OUT_CODES:
        return "opted_out"
    if code in INVALID_NUMBER_CODES:
        return "invalid_number"
    return None


async def _apply_consequence(
    session: AsyncSession, customer_id: str | None, to_address: str | None, reason: str | None
) -> None:
    if customer_id is None or reason is None:
        return
    if reason == "opted_out":
        await session.execute(
            update(Customer).where(Customer.id == customer_id).values(sms_opt_out=True)
        )
    elif to_address:
        await session.execute(
            update(CustomerPhone)
            .where(CustomerPhone.customer_id == customer_id, CustomerPhone.e164 == to_address)
            .values(invalid=True)
        )
