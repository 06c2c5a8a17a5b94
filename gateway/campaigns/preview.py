"""Dry run of a campaign: who it selects, which first contact each arm makes, what it costs.

Nothing is sent or written. The audience is the same SQL `segment()` the run uses and
arms come from the same hash (`arms.assign_arm`), so the preview is what a run at that
moment would start with. A journey's first contact is found by walking its steps from
the top: waits, status moves and CRM actions are passed over, and a branch on rules is
decided per customer in the same SQL query (as the rule compiler writes it). A branch on
a reaction (a wait's outcome) cannot be known before the run: the walk stops there.

Costs use the configured rates (`settings.costs`): an SMS costs its template's segments
(the text in the customer's language before variables are filled in) × the segment
rate; an e-mail the per-message rate; a call task or a voice contact an operator's
time at `ASSUMED_CALL_MINUTES` minutes.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, case, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from channels.segments import count_segments
from channels.templates import choose_language
from gateway.campaigns.arms import HOLDOUT, assign_arm
from gateway.campaigns.definition import (
    END,
    BranchStep,
    CallTaskStep,
    SendStep,
    ValidCampaign,
    WaitStep,
)
from gateway.core.clock import as_utc, isoformat_z
from gateway.core.db.dialect import dialect_of
from gateway.core.db.models import Customer, Template
from gateway.core.rules import AllOf, Not, Rule, compile_rule, segment
from gateway.core.rules.fields import local_today
from gateway.core.settings import Settings

ASSUMED_CALL_MINUTES = Decimal("2.5")
CENT = Decimal("0.01")
NO_CONTACT = -1


@dataclass(frozen=True)
class _Path:
    """Customers meeting every condition (a rule, or its negation) reach `step` first."""

    conditions: tuple[Rule, ...]
    step: SendStep | CallTaskStep | None
    stopped_at: str | None = None  # a branch on a reaction


def _walk(steps: list[Any], prefix: str, valid: ValidCampaign) -> list[_Path]:
    """Every way from the top of a journey to its first contact (or to none)."""
    index = {step.id: position for position, step in enumerate(steps)}
    paths: list[_Path] = []

    def visit(position: int, conditions: tuple[Rule, ...], seen: frozenset[int]) -> None:
        while position < len(steps):
            if position in seen:  # a loop without a contact on the way
                break
            seen = seen | {position}
            step = steps[position]
            if isinstance(step, SendStep | CallTaskStep):
                paths.append(_Path(conditions, step))
                return
            if isinstance(step, WaitStep) and step.until:
                paths.append(_Path(conditions, None, stopped_at=step.id))
                return
            if isinstance(step, BranchStep):
                if any(case.when is None for case in step.cases):
                    paths.append(_Path(conditions, None, stopped_at=step.id))
                    return
                earlier: list[Rule] = []
                for number, branch_case in enumerate(step.cases):
                    rule = valid.rules[f"{prefix}.{step.id}.cases[{number}]"]
                    taken = (*conditions, *(Not(r) for r in earlier), rule)
                    follow(branch_case.goto, taken, seen)
                    earlier.append(rule)
                follow(step.otherwise, (*conditions, *(Not(r) for r in earlier)), seen)
                return
            position += 1
        paths.append(_Path(conditions, None))

    def follow(goto: str, conditions: tuple[Rule, ...], seen: frozenset[int]) -> None:
        if goto == END:
            paths.append(_Path(conditions, None))
        else:
            visit(index[goto], conditions, seen)

    visit(0, (), frozenset())
    return paths


def _path_column(
    paths: list[_Path], as_of: datetime, settings: Settings, dialect: str
) -> ColumnElement[int]:
    """Which path each customer takes, as a CASE over the compiled branch rules."""
    today = local_today(as_of, settings.timezone)
    whens = [
        (compile_rule(AllOf(path.conditions), as_of=as_of, today=today, dialect=dialect), number)
        for number, path in enumerate(paths)
        if path.conditions
    ]
    unconditional = next((n for n, path in enumerate(paths) if not path.conditions), NO_CONTACT)
    if not whens:
        return literal(unconditional)
    return case(*whens, else_=literal(NO_CONTACT))


@dataclass
class FirstContact:
    """How many customers of an arm start with a given step, and what that costs."""

    step: str | None
    type: str | None
    channel: str | None
    template: str | None = None
    customers: int = 0
    segments: int = 0
    cost: Decimal = Decimal(0)

    def as_json(self) -> dict[str, object]:
        """JSON with money as a decimal string."""
        data: dict[str, object] = {
            "step": self.step,
            "type": self.type,
            "channel": self.channel,
            "template": self.template,
            "customers": self.customers,
            "cost": str(self.cost.quantize(CENT)),
        }
        if self.channel == "sms" and self.type == "send":
            data["segments"] = self.segments
        return data


@dataclass
class Preview:
    """The dry run's answer."""

    campaign: str
    as_of: datetime
    count: int
    sample: list[dict[str, object]]
    arms: dict[str, list[FirstContact]]
    holdout: int
    currency: str
    notes: list[str] = field(default_factory=list)

    @property
    def estimated_cost(self) -> Decimal:
        """The first contacts of every arm, added up."""
        total = sum((c.cost for contacts in self.arms.values() for c in contacts), Decimal(0))
        return total.quantize(CENT)

    def as_json(self) -> dict[str, object]:
        """The preview as the API and the CLI's JSON show it."""
        return {
            "campaign": self.campaign,
            "as_of": isoformat_z(self.as_of),
            "count": self.count,
            "sample": self.sample,
            "holdout": self.holdout,
            "arms": [
                {
                    "arm": arm,
                    "customers": sum(c.customers for c in contacts),
                    "first_contacts": [c.as_json() for c in contacts],
                }
                for arm, contacts in self.arms.items()
            ],
            "estimated_cost": str(self.estimated_cost),
            "currency": self.currency,
            "notes": self.notes,
        }


class _Rates:
    """Per-customer cost of a first contact, with template segment counts cached."""

    def __init__(self, settings: Settings, templates: dict[str, Template]) -> None:
        self.costs = settings.costs
        self.default_language = settings.policy.default_language
        self.templates = templates
        self._segments: dict[tuple[str, str | None], int] = {}

    def segments(self, template: str, language: str | None) -> int:
        key = (template, language)
        if key not in self._segments:
            row = self.templates.get(template)
            count = 1
            if row is not None and row.body:
                chosen = choose_language(list(row.body), language, self.default_language)
                count = count_segments(row.body[chosen]).segments
            self._segments[key] = count
        return self._segments[key]

    def add(
        self, contact: FirstContact, step: SendStep | CallTaskStep, language: str | None
    ) -> None:
        contact.customers += 1
        if isinstance(step, SendStep) and step.channel == "sms":
            parts = self.segments(step.template, language)
            contact.segments += parts
            contact.cost += parts * self.costs.sms_per_segment
        elif isinstance(step, SendStep) and step.channel == "email":
            contact.cost += self.costs.email_per_message
        else:
            contact.cost += ASSUMED_CALL_MINUTES * self.costs.operator_per_minute


def _contact_for(path: _Path | None) -> FirstContact:
    if path is None or path.step is None:
        return FirstContact(step=path.stopped_at if path else None, type=None, channel=None)
    step = path.step
    if isinstance(step, SendStep):
        return FirstContact(step.id, "send", step.channel, step.template)
    return FirstContact(step.id, "call_task", "voice")


async def preview(
    session: AsyncSession,
    valid: ValidCampaign,
    as_of: datetime,
    settings: Settings,
    *,
    sample_size: int = 20,
) -> Preview:
    """Who the campaign selects at `as_of`, each arm's first contact, and its estimated cost."""
    as_of = as_utc(as_of)
    definition = valid.definition
    dialect = dialect_of(session)
    audience = segment(session, valid.audience, as_of, timezone=settings.timezone).subquery()
    if definition.experiment is None:
        journeys = {"default": ("steps", definition.steps)}
    else:
        journeys = {
            arm.name: (f"experiment.arms[{n}].steps", arm.steps)
            for n, arm in enumerate(definition.experiment.arms)
        }
    walks = {arm: _walk(steps, prefix, valid) for arm, (prefix, steps) in journeys.items()}
    columns = [
        _path_column(paths, as_of, settings, dialect).label(arm) for arm, paths in walks.items()
    ]
    names = {
        step.template
        for _, steps in journeys.values()
        for step in steps
        if isinstance(step, SendStep)
    }
    templates = {
        row.name: row
        for row in await session.scalars(select(Template).where(Template.name.in_(names)))
    }
    rates = _Rates(settings, templates)
    contacts: dict[str, dict[int, FirstContact]] = {arm: {} for arm in walks}
    arms_seen: Counter[str] = Counter()
    count = 0
    query = select(Customer.id, Customer.language, *columns).where(
        Customer.id.in_(select(audience.c.id))
    )
    result = await session.stream(query.execution_options(yield_per=2000))
    async for row in result:
        count += 1
        arm = assign_arm(definition.name, row.id, definition.experiment)
        arms_seen[arm] += 1
        if arm == HOLDOUT:
            continue
        number = int(row._mapping[arm])
        path = walks[arm][number] if number != NO_CONTACT else None
        contact = contacts[arm].get(number)
        if contact is None:
            contact = contacts[arm][number] = _contact_for(path)
        if path is not None and path.step is not None:
            rates.add(contact, path.step, row.language)
        else:
            contact.customers += 1
    sample_rows = await session.execute(
        select(Customer.id, Customer.name)
        .where(Customer.id.in_(select(audience.c.id)))
        .order_by(Customer.id)
        .limit(sample_size)
    )
    sample = [
        {
            "id": r.id,
            "name": r.name,
            "arm": assign_arm(definition.name, r.id, definition.experiment),
        }
        for r in sample_rows
    ]
    notes = [
        f"calls and call tasks are costed at {ASSUMED_CALL_MINUTES} operator minutes each",
        "SMS segments are counted on the template text before variables are filled in",
        "consent, sending windows and frequency caps are not applied in the preview",
    ]
    missing = sorted(names - set(templates))
    if missing:
        notes.append(f"templates not saved yet (counted as 1 segment): {', '.join(missing)}")
    stops = sorted({p.stopped_at for ps in walks.values() for p in ps if p.stopped_at})
    if stops:
        notes.append(
            f"the first contact after a reaction is not known in advance: {', '.join(stops)}"
        )
    return Preview(
        campaign=definition.name,
        as_of=as_of,
        count=count,
        sample=sample,
        arms={arm: [contacts[arm][n] for n in sorted(contacts[arm])] for arm in walks},
        holdout=arms_seen[HOLDOUT],
        currency=settings.costs.currency,
        notes=notes,
    )
