"""Allocation targets in the database: active partners and agents, as one list of terms.

A partner is a target with its own rule. An agent is a target when active with a
`capacity_per_day`; its rule is the conjunction of
  - its own `eligibility` rule (empty: no restriction),
  - its `skills`, read as products: the customer holds at least one of them,
  - its `regions`: the customer's region is one of them,
each part only if present. So an agent with skills ["mobile"] and no rule of its own
takes only mobile customers; an agent with none of the three takes anyone.
The partners CSV builds the same implicit conditions from its products/regions columns.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.allocation.model import (
    AllocationInputError,
    PartnerTerms,
    eligibility_rule,
    performance,
)
from gateway.core.db.models import Agent, Partner, Task
from gateway.core.db.states import TaskStatus


@dataclass(frozen=True, slots=True)
class Target:
    """What the run writes for a target: task column, CRM event fields, totals."""

    id: str
    kind: Literal["partner", "agent"]
    external_id: str
    name: str
    cost_per_contact: Decimal
    currency: str
    crm_user_id: str | None = None

    def event_fields(self) -> dict[str, object]:
        """The target's part of `allocation.assigned` (partner_* keys kept for partners)."""
        if self.kind == "partner":
            return {
                "target": "partner",
                "partner_id": self.external_id,
                "partner_name": self.name,
            }
        return {
            "target": "agent",
            "agent_id": self.external_id,
            "agent_name": self.name,
            "crm_user_id": self.crm_user_id,
        }


def implicit_conditions(
    products: Sequence[str],
    regions: Sequence[str],
    min_contract_age_days: int | None = None,
    max_contract_age_days: int | None = None,
) -> list[dict[str, object]]:
    """Rule conditions for the usual columns: any of the products, one of the regions, age."""
    conditions: list[dict[str, object]] = []
    if products:
        conditions.append(
            {"any": [{"field": "products", "op": "contains", "value": p} for p in products]}
        )
    if regions:
        conditions.append({"field": "region", "op": "in", "value": list(regions)})
    if min_contract_age_days is not None:
        conditions.append(
            {"field": "contract_age_days", "op": ">=", "value": min_contract_age_days}
        )
    if max_contract_age_days is not None:
        conditions.append(
            {"field": "contract_age_days", "op": "<=", "value": max_contract_age_days}
        )
    return conditions


def all_of(conditions: Sequence[dict[str, object]]) -> dict[str, object]:
    """One rule holding when every condition does; `{}` (anyone) for none."""
    kept = [condition for condition in conditions if condition]
    if not kept:
        return {}
    return kept[0] if len(kept) == 1 else {"all": kept}


def agent_rule(agent: Agent) -> dict[str, object]:
    """The agent's effective rule (see the module docstring)."""
    own = dict(agent.eligibility or {})
    return all_of([*implicit_conditions(agent.skills or [], agent.regions or []), own])


async def load_targets(
    session: AsyncSession, used_today: Counter[str]
) -> tuple[tuple[PartnerTerms, ...], dict[str, Target], dict[str, str]]:
    """Active partners, then active agents with a capacity: terms with today's remaining
    capacity, what to write for each, and the skipped ones with the reason."""
    partners = (
        await session.scalars(select(Partner).where(Partner.active.is_(True)).order_by(Partner.id))
    ).all()
    agents = (
        await session.scalars(
            select(Agent)
            .where(Agent.active.is_(True), Agent.capacity_per_day.is_not(None))
            .order_by(Agent.id)
        )
    ).all()
    terms: list[PartnerTerms] = []
    targets: dict[str, Target] = {}
    skipped: dict[str, str] = {}
    rows: list[tuple[Partner | Agent, Literal["partner", "agent"], dict[str, object], str]] = [
        (p, "partner", dict(p.eligibility or {}), p.partner_id) for p in partners
    ]
    rows += [(a, "agent", agent_rule(a), a.agent_id) for a in agents]
    for row, kind, raw_rule, external_id in rows:
        try:
            rule = eligibility_rule(raw_rule, "eligibility")
            figures = performance(row.performance or {}, "performance")
        except AllocationInputError as exc:
            skipped[row.id] = str(exc)  # stored by a CRM event; refused on our own API
            continue
        capacity = row.capacity_per_day or 0
        left = max(0, capacity - used_today[row.id])
        cost = Decimal(row.cost_per_contact)
        terms.append(PartnerTerms(row.id, left, cost, rule, figures, kind, external_id))
        targets[row.id] = Target(
            id=row.id,
            kind=kind,
            external_id=external_id,
            name=row.name,
            cost_per_contact=cost,
            currency=row.currency,
            crm_user_id=row.crm_user_id if isinstance(row, Agent) else None,
        )
    return tuple(terms), targets, skipped


async def release_from_inactive(session: AsyncSession) -> int:
    """Open call tasks held by a deactivated partner or agent go back to the pool (the run
    then reassigns them, and the CRM hears of the new target). Returns how many."""
    released = 0
    open_calls = (Task.status == TaskStatus.OPEN) & (Task.kind == "call")
    inactive_partners = select(Partner.id).where(Partner.active.is_(False))
    result = await session.execute(
        update(Task)
        .where(open_calls, Task.partner_id.in_(inactive_partners))
        .values(partner_id=None)
        .execution_options(synchronize_session=False)
    )
    released += _rowcount(result)
    inactive_agents = select(Agent.agent_id).where(Agent.active.is_(False))
    result = await session.execute(
        update(Task)
        .where(open_calls, Task.partner_id.is_(None), Task.assignee.in_(inactive_agents))
        .values(assignee=None)
        .execution_options(synchronize_session=False)
    )
    return released + _rowcount(result)


def _rowcount(result: object) -> int:
    return int(getattr(result, "rowcount", 0) or 0)
