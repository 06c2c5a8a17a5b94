"""Why a contact went where it went: its eligible targets, their costs, the full ones."""

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
    """One eligible target (partner or agent) as the plan left it."""

    partner_id: str  # the target's id in the plan (a partner's or an agent's)
    cost_per_contact: Decimal
    net_cost: Decimal
    capacity: int
    used: int
    kind: str = "partner"
    external_id: str = ""

    @property
    def full(self) -> bool:
        """Its capacity is used up: the binding constraint for everyone cheaper-minded."""
        return self.used >= self.capacity

    @property
    def label(self) -> str:
        """`partner acme` / `agent ann`: what the text calls it."""
        return f"{self.kind} {self.external_id or self.partner_id}"

    def as_json(self) -> dict[str, object]:
        """As the CLI and API print it."""
        return {
            "partner_id": self.partner_id,
            "kind": self.kind,
            "external_id": self.external_id or self.partner_id,
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
    # Eligible targets the contact would rather have had, all at capacity.
    binding: tuple[str, ...]
    text: str
    kind: str | None = None

    def as_json(self) -> dict[str, Any]:
        """As the CLI and API print it."""
        return {
            "contact_id": self.contact_id,
            "priority": self.priority,
            "partner_id": self.partner_id,
            "kind": self.kind,
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
    options = [
        Option(
            partner_id=partner.id,
            cost_per_contact=partner.cost_per_contact,
            net_cost=partner.net_cost(problem.weights),
            capacity=partner.capacity,
            used=plan.used.get(partner.id, 0),
            kind=partner.kind,
            external_id=partner.external_id,
        )
        for partner in (problem.partners[i] for i in sorted(set(eligible[position])))
    ]
    return describe(
        contact_id,
        contact.priority,
        options,
        plan.assignments.get(contact_id),
        plan.unassigned.get(contact_id),
    )


def describe(
    contact_id: str,
    priority: int,
    eligible: Sequence[Option],
    chosen: str | None,
    reason: str | None,
) -> Explanation:
    """The explanation of one choice among `eligible` (file mode and stored runs alike)."""
    options = tuple(sorted(eligible, key=lambda option: (option.net_cost, option.partner_id)))
    if chosen is None:
        binding = tuple(option.partner_id for option in options)
        if reason == NO_ELIGIBLE:
            text = f"{contact_id}: no partner's or agent's eligibility rule selects this contact"
        else:
            text = (
                f"{contact_id}: unassigned, every eligible target is full ("
                + ", ".join(f"{o.label} {o.used}/{o.capacity}" for o in options)
                + f"); contacts of priority ≥ {priority} took the places"
            )
        return Explanation(contact_id, priority, None, reason, options, binding, text)
    mine = next(option for option in options if option.partner_id == chosen)
    cheaper = tuple(option for option in options if option.net_cost < mine.net_cost)
    text = (
        f"{contact_id} → {mine.label} (cost {mine.cost_per_contact}, net of performance "
        f"{mine.net_cost}; {len(options)} eligible)"
    )
    if cheaper:
        text += "; cheaper eligible targets are full: " + ", ".join(
            f"{o.label} (net {o.net_cost}, {o.used}/{o.capacity})" for o in cheaper
        )
    else:
        text += "; the cheapest eligible target"
    binding = tuple(option.partner_id for option in cheaper)
    return Explanation(contact_id, priority, chosen, None, options, binding, text, mine.kind)
