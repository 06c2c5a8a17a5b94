"""Why a contact went where it went: its eligible partners, their costs, the full ones."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from gateway.allocation.model import NO_ELIGIBLE, Plan, Problem


class UnknownContact(LookupError):
    """No contact with that id in the problem."""


@dataclass(frozen=True, slots=True)
class Option:
    """One eligible partner as the plan left it."""

    partner_id: str
    cost_per_contact: Decimal
    net_cost: Decimal
    capacity: int
    used: int

    @property
    def full(self) -> bool:
        """Its capacity is used up: the binding constraint for everyone cheaper-minded."""
        return self.used >= self.capacity

    def as_json(self) -> dict[str, Any]:
        """As the CLI and API print it."""
        return {
            "partner_id": self.partner_id,
            "cost_per_contact": str(self.cost_per_contact),
            "net_cost": str(self.net_cost),
            "capacity": self.capacity,
            "used": self.used,
            "full": self.full,
        }


@dataclass(frozen=True, slots=True)
class Explanation:
    """The choice for one contact and what decided it."""

    contact_id: str
    priority: int
    partner_id: str | None
    reason: str | None
    options: tuple[Option, ...]
    # Eligible partners the contact would rather have had, all at capacity.
    binding: tuple[str, ...]
    text: str

    def as_json(self) -> dict[str, Any]:
        """As the CLI and API print it."""
        return {
            "contact_id": self.contact_id,
            "priority": self.priority,
            "partner_id": self.partner_id,
            "reason": self.reason,
            "eligible": [option.as_json() for option in self.options],
            "binding": list(self.binding),
            "text": self.text,
        }


def explain(
    problem: Problem, eligible: Sequence[Sequence[int]], plan: Plan, contact_id: str
) -> Explanation:
    """Why `contact_id` has the partner it has (or none) in `plan`."""
    position = next((i for i, c in enumerate(problem.contacts) if c.id == contact_id), None)
    if position is None:
        raise UnknownContact(contact_id)
    contact = problem.contacts[position]
    options = tuple(
        sorted(
            (
                Option(
                    partner_id=partner.id,
                    cost_per_contact=partner.cost_per_contact,
                    net_cost=partner.net_cost(problem.weights),
                    capacity=partner.capacity,
                    used=plan.used.get(partner.id, 0),
                )
                for partner in (problem.partners[i] for i in sorted(set(eligible[position])))
            ),
            key=lambda option: (option.net_cost, option.partner_id),
        )
    )
    chosen = plan.assignments.get(contact_id)
    reason = plan.unassigned.get(contact_id)
    if chosen is None:
        binding = tuple(option.partner_id for option in options)
        if reason == NO_ELIGIBLE:
            text = f"{contact_id}: no partner's eligibility rule selects this contact"
        else:
            text = (
                f"{contact_id}: unassigned, every eligible partner is full ("
                + ", ".join(f"{o.partner_id} {o.used}/{o.capacity}" for o in options)
                + f"); contacts of priority ≥ {contact.priority} took the places"
            )
        return Explanation(contact_id, contact.priority, None, reason, options, binding, text)
    mine = next(option for option in options if option.partner_id == chosen)
    cheaper = tuple(option for option in options if option.net_cost < mine.net_cost)
    text = (
        f"{contact_id} → {chosen} (cost {mine.cost_per_contact}, net of performance "
        f"{mine.net_cost}; {len(options)} eligible)"
    )
    if cheaper:
        text += "; cheaper eligible partners are full: " + ", ".join(
            f"{o.partner_id} (net {o.net_cost}, {o.used}/{o.capacity})" for o in cheaper
        )
    else:
        text += "; the cheapest eligible partner"
    binding = tuple(option.partner_id for option in cheaper)
    return Explanation(contact_id, contact.priority, chosen, None, options, binding, text)
