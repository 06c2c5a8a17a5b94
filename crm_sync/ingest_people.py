"""Apply `agent.upserted` and `partner.upserted`: who handles contacts."""

from __future__ import annotations

import copy
from datetime import datetime
from decimal import Decimal

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm_sync.events import AgentUpserted, Envelope, EventData, PartnerUpserted
from crm_sync.ingest_guards import Outcome, newer
from gateway.core.db.models import Agent, AgentExtension, Partner
from gateway.core.db.types import new_id


async def agent_upserted(
    session: AsyncSession, event: Envelope, data: EventData, now: datetime
) -> Outcome:
    """An operator and the extensions it now holds (taken from whoever held them)."""
    assert isinstance(data, AgentUpserted)
    if not await newer(session, f"agent:{data.agent_id}", event.occurred_at):
        return "stale"
    extensions = list(dict.fromkeys(data.extensions))
    agent = (
        await session.execute(select(Agent).where(Agent.agent_id == data.agent_id))
    ).scalar_one_or_none()
    if agent is None:
        agent = Agent(id=new_id("agt"), agent_id=data.agent_id, created_at=now)
        session.add(agent)
    agent.name = data.name
    agent.crm_user_id = data.crm_user_id
    agent.extensions = extensions
    _apply_allocation_terms(agent, data)
    agent.updated_at = now
    await session.flush()  # extensions reference the agent row
    await session.execute(
        delete(AgentExtension).where(
            AgentExtension.agent_id == agent.id, AgentExtension.extension.not_in(extensions)
        )
    )
    taken = (
        await session.execute(
            select(AgentExtension).where(AgentExtension.extension.in_(extensions))
        )
    ).scalars()
    held = {row.extension: row for row in taken}
    for extension in extensions:
        row = held.get(extension)
        if row is None:
            session.add(AgentExtension(extension=extension, agent_id=agent.id))
        elif row.agent_id != agent.id:
            previous = await session.get(Agent, row.agent_id)
            if previous is not None:
                previous.extensions = [e for e in previous.extensions if e != extension]
                previous.updated_at = now
            row.agent_id = agent.id
    return "applied"


# Column value for a key sent as null: the column's own default.
_WHEN_NULL: dict[str, object] = {
    "skills": [],
    "regions": [],
    "capacity_per_day": None,
    "cost_per_contact": Decimal("0"),
    "currency": "UAH",
    "eligibility": {},
    "performance": {},
    "active": True,
}


def _apply_allocation_terms(agent: Agent, data: AgentUpserted) -> None:
    """Write the allocation keys the event carries; a key left out keeps the stored value."""
    for name in sorted(data.model_fields_set & _WHEN_NULL.keys()):
        value = getattr(data, name)
        if value is None:
            value = copy.copy(_WHEN_NULL[name])
        elif name in ("skills", "regions"):
            value = list(dict.fromkeys(value))
        elif name in ("eligibility", "performance"):
            value = dict(value)
        setattr(agent, name, value)


async def partner_upserted(
    session: AsyncSession, event: Envelope, data: EventData, now: datetime
) -> Outcome:
    """A service partner's terms."""
    assert isinstance(data, PartnerUpserted)
    if not await newer(session, f"partner:{data.partner_id}", event.occurred_at):
        return "stale"
    partner = (
        await session.execute(select(Partner).where(Partner.partner_id == data.partner_id))
    ).scalar_one_or_none()
    if partner is None:
        partner = Partner(id=new_id("prt"), partner_id=data.partner_id, created_at=now)
        session.add(partner)
    partner.name = data.name
    partner.capacity_per_day = data.capacity
    partner.cost_per_contact = data.cost_per_contact
    partner.currency = data.currency
    partner.eligibility = data.eligibility
    partner.performance = data.performance
    partner.updated_at = now
    return "applied"
