"""Writing agents and partners from our API and CSV, through the CRM ingest's own writers.

The API and the CSV import are one more source of `agent.upserted`/`partner.upserted`
facts, stamped with our clock: they go through crm_sync.ingest_people so the rules
(extension hand-over, version guard) are the same whichever side changed the record.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_sync.events import AgentUpserted, Envelope, PartnerUpserted
from crm_sync.ingest_people import agent_upserted, partner_upserted
from gateway.allocation.model import AllocationInputError, eligibility_rule, performance
from gateway.core.db.models import Agent, Partner
from gateway.core.db.types import new_id

EXTERNAL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$")


class StaleWrite(RuntimeError):
    """The CRM sent a later version of this record than the moment of this write."""


class InvalidTerms(ValueError):
    """A partner's terms that cannot be stored; `field` names the culprit."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def _envelope(kind: str, now: datetime) -> Envelope:
    # Already-validated values from our side: no CRM parse context is involved.
    return Envelope.model_construct(id=new_id("api"), type=kind, occurred_at=now, data={})


async def find_partner(session: AsyncSession, key: str) -> Partner | None:
    """A partner by our id or by the CRM's partner_id."""
    return (
        await session.scalars(
            select(Partner).where(or_(Partner.id == key, Partner.partner_id == key))
        )
    ).first()


async def find_agent(session: AsyncSession, key: str) -> Agent | None:
    """An agent by our id or by the CRM's agent_id."""
    return (
        await session.scalars(select(Agent).where(or_(Agent.id == key, Agent.agent_id == key)))
    ).first()


def check_terms(eligibility: dict[str, object], figures: dict[str, object]) -> dict[str, str]:
    """Validate a rule and performance figures; the figures as decimal strings."""
    try:
        eligibility_rule(eligibility, "eligibility")
        parsed = performance(figures, "performance")
    except AllocationInputError as exc:
        raise InvalidTerms(exc.path, exc.message) from None
    return {name: str(value) for name, value in parsed.items()}


async def save_partner(
    session: AsyncSession,
    key: str,
    *,
    name: str,
    capacity: int,
    cost_per_contact: Decimal,
    currency: str,
    eligibility: dict[str, object],
    figures: dict[str, object],
    active: bool,
    now: datetime,
) -> Partner:
    """Create or replace a partner (found by either id); raises InvalidTerms, StaleWrite."""
    stored = check_terms(eligibility, figures)
    existing = await find_partner(session, key)
    partner_id = existing.partner_id if existing is not None else key
    if existing is None and not EXTERNAL_ID.match(key):
        raise InvalidTerms("partner_id", "letters, digits and _.:@- (at most 128)")
    data = PartnerUpserted(
        partner_id=partner_id,
        name=name,
        capacity=capacity,
        cost_per_contact=cost_per_contact,
        currency=currency,
        eligibility=eligibility,
        performance=stored,
    )
    if await partner_upserted(session, _envelope("partner.upserted", now), data, now) == "stale":
        raise StaleWrite(f"partner {partner_id} has a later CRM update")
    await session.flush()
    row = await find_partner(session, partner_id)
    assert row is not None  # written just above
    row.active = active
    return row


async def save_agent(
    session: AsyncSession,
    key: str,
    *,
    name: str,
    extensions: list[str],
    crm_user_id: str | None,
    skills: list[str],
    regions: list[str],
    capacity_per_day: int | None,
    active: bool,
    now: datetime,
    cost_per_contact: Decimal = Decimal("0"),
    currency: str = "UAH",
    eligibility: dict[str, object] | None = None,
    figures: dict[str, object] | None = None,
) -> Agent:
    """Create or replace an agent (found by either id); raises InvalidTerms, StaleWrite."""
    eligibility = eligibility or {}
    stored = check_terms(eligibility, figures or {})
    existing = await find_agent(session, key)
    agent_id = existing.agent_id if existing is not None else key
    if existing is None and not EXTERNAL_ID.match(key):
        raise InvalidTerms("agent_id", "letters, digits and _.:@- (at most 128)")
    data = AgentUpserted(
        agent_id=agent_id,
        name=name,
        extensions=extensions,
        crm_user_id=crm_user_id,
        skills=skills,
        regions=regions,
        capacity_per_day=capacity_per_day,
        cost_per_contact=cost_per_contact,
        currency=currency,
        eligibility=eligibility,
        performance=stored,
        active=active,
    )
    if await agent_upserted(session, _envelope("agent.upserted", now), data, now) == "stale":
        raise StaleWrite(f"agent {agent_id} has a later CRM update")
    await session.flush()
    row = await find_agent(session, agent_id)
    assert row is not None  # written just above
    return row
