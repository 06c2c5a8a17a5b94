"""From a stored contact to a message the channel can send, or the reason it can't go now.

Rendering (`channels/templates.py`) and the consent, cap and window rules
(`channels/consent.py`) live in `channels/`; this module gathers what they need from the
database and turns their answers into the pipeline's terms.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from channels.base import ChannelName, Outgoing
from channels.consent import decide
from channels.templates import InlineMessage, Renderer, TemplateProblem
from gateway.core.db.models import Customer, OutboundContact, Payment, Template
from gateway.core.db.states import PaymentStatus
from gateway.core.settings import Settings


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


async def next_payment(
    session: AsyncSession, customer: Customer, now: datetime, zone: str
) -> Payment | None:
    """The customer's next payment due (today or later, in the configured zone)."""
    today = now.astimezone(ZoneInfo(zone)).date()
    return (
        await session.execute(
            select(Payment)
            .where(
                Payment.customer_id == customer.id,
                Payment.status == PaymentStatus.DUE,
                Payment.due_date >= today,
            )
            .order_by(Payment.due_date)
            .limit(1)
        )
    ).scalar_one_or_none()


class Preparer:
    """Renders and checks a contact; one per app (the renderer caches compiled templates)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.renderer = Renderer(default_language=settings.policy.default_language)

    async def __call__(
        self, session: AsyncSession, contact: OutboundContact, now: datetime
    ) -> Prepared:
        """The message to send now, or why not (skip) or when (defer)."""
        customer = await session.get(Customer, contact.customer_id) if contact.customer_id else None
        if customer is None or customer.deleted_at is not None:
            return Skip("customer_deleted")
        address = contact.to_address or address_for(customer, contact.channel)
        decision = await decide(
            session,
            customer,
            contact.channel,
            address,
            self.settings.policy,
            now,
            self.settings.timezone,
            contact_id=contact.id,
        )
        if decision.action == "skip":
            return Skip(decision.reason or "not_allowed")
        if decision.action == "defer":
            assert decision.not_before is not None
            return Defer(decision.not_before, decision.reason or "deferred")
        assert address is not None
        source: Template | InlineMessage | None
        if contact.template is not None:
            source = await session.get(Template, contact.template)
            if source is None:
                return Skip("invalid_template", f"no template {contact.template!r}")
        else:
            source = InlineMessage(contact.channel, contact.body or "", contact.subject)
        payment = await next_payment(session, customer, now, self.settings.timezone)
        try:
            rendered = self.renderer.render(source, customer, payment, contact.variables or {})
        except TemplateProblem as problem:
            return Skip(problem.reason, str(problem))
        channel: ChannelName = contact.channel  # type: ignore[assignment]
        return Outgoing(
            contact_id=contact.id,
            idempotency_key=contact.idempotency_key,
            channel=channel,
            to=address,
            text=rendered.text,
            subject=rendered.subject,
            html=rendered.html,
            customer_id=contact.customer_id,
            campaign_id=contact.campaign_id,
        )
