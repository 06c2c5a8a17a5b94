"""Shapes of the messages API."""

from __future__ import annotations

from pydantic import BaseModel, Field

from gateway.core.clock import isoformat_z
from gateway.core.db.models import OutboundContact
from gateway.customers.public import money


class MessageOut(BaseModel):
    """An outbound contact as the contract lists it."""

    id: str
    channel: str
    status: str
    customer_id: str | None
    campaign_id: str | None
    template: str | None
    segments: int | None
    cost: str | None = Field(description="decimal string")
    currency: str | None
    sandbox: bool
    reason: str | None
    error_code: str | None
    error: str | None
    not_before: str | None
    created_at: str | None
    sent_at: str | None
    delivered_at: str | None
    failed_at: str | None
    replied_at: str | None

    @classmethod
    def of(cls, contact: OutboundContact) -> MessageOut:
        """Serialise a row."""
        return cls(
            id=contact.id,
            channel=contact.channel,
            status=contact.status,
            customer_id=contact.customer_id,
            campaign_id=contact.campaign_id,
            template=contact.template,
            segments=contact.segments,
            cost=money(contact.cost),
            currency=contact.currency,
            sandbox=contact.sandbox,
            reason=contact.reason,
            error_code=contact.error_code,
            error=contact.error,
            not_before=isoformat_z(contact.not_before),
            created_at=isoformat_z(contact.created_at),
            sent_at=isoformat_z(contact.sent_at),
            delivered_at=isoformat_z(contact.delivered_at),
            failed_at=isoformat_z(contact.failed_at),
            replied_at=isoformat_z(contact.replied_at),
        )


class MessagePage(BaseModel):
    """A page of outbound contacts."""

    items: list[MessageOut]
    next_cursor: str | None


class MessageQuery(BaseModel):
    """Filters of GET /api/messages (`campaign` is the campaign's name or id)."""

    customer_id: str | None = None
    campaign: str | None = None
    status: str | None = None
    limit: int = Field(default=50, ge=1, le=500)
    cursor: str | None = None
