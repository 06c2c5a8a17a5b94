"""The savings report: operator minutes avoided, minus what the contacts cost.

Measured mode (a campaign with a holdout): deflection is the drop in the share of
customers calling on the campaign's topic, treated against holdout in the same window,
with its confidence interval. Assumed mode (no holdout): a deflection share the caller
gives, exactly as `report estimate` computes it, labelled as assumed. The contacts'
cost is what the ledger recorded (provider prices where known, configured otherwise),
converted into the report currency with the configured rates.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import NotRequired, TypedDict

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.campaigns.public import HOLDOUT
from gateway.core.clock import isoformat_z
from gateway.core.db.engine import Database
from gateway.core.db.models import Campaign, CampaignVersion, ExperimentAssignment
from gateway.core.settings import Settings
from gateway.costs import ledger, rollup
from gateway.costs.callers import callers_by_month
from gateway.costs.deflection import DEFAULT_CONFIDENCE, Deflection, measure
from gateway.costs.estimate import MONTHS_PER_YEAR
from gateway.costs.model import CostModel, Figure, money_str

TOPIC_FIELD = "topic_calls_30d."
SHARE = Decimal("0.000001")


class ChannelCost(TypedDict):
    """One channel's contacts and their cost in the report currency."""

    cost: str
    contacts: int
    units: int
    priced_by: dict[str, int]


class MonthFigures(TypedDict):
    """One month of a campaign: its cost and, when known, its savings."""

    month: str
    cost: str
    gross_savings: NotRequired[str]
    net_savings: NotRequired[str]


class SavingsFigures(TypedDict):
    """Avoided calls and savings; only months and a null net without share or handling."""

    avoided_calls: NotRequired[str]
    avoided_minutes: NotRequired[str]
    gross_savings: NotRequired[str]
    net_savings: str | None
    per_customer: NotRequired[str]
    per_month: NotRequired[str]
    per_month_net: NotRequired[str]
    per_year: NotRequired[str]
    per_year_net: NotRequired[str]
    months: list[MonthFigures]
    net_savings_interval: NotRequired[dict[str, str]]


class CustomerCounts(TypedDict):
    """Treated and control customers, and where the treated count came from."""

    treated: int
    control: int
    source: str


class CampaignSavings(SavingsFigures):
    """One campaign's section of the savings report."""

    campaign: str
    campaign_id: str
    topic: dict[str, str | None]
    customers: CustomerCounts
    deflection: dict[str, object]
    arms: dict[str, dict[str, object]]
    handling_minutes: dict[str, str] | None
    handling_calls_measured: int
    operator_per_minute: dict[str, str]
    channels: dict[str, ChannelCost]
    cost: str
    notes: list[str]


# The savings report, JSON-ready (money as strings); "from" is a keyword, hence this form.
SavingsReport = TypedDict(
    "SavingsReport",
    {
        "from": str | None,
        "to": str | None,
        "currency": str,
        "conversion": dict[str, str],
        "months_covered": str,
        "campaigns": list[CampaignSavings],
        "costs": dict[str, object],
        "totals": dict[str, str],
    },
)


class SavingsError(ValueError):
    """The report cannot be made as asked."""


class UnknownCampaign(SavingsError):
    """No campaign has that name or id."""


@dataclass(frozen=True)
class SavingsQuery:
    """What to report on: an inclusive window [start, end], optionally one campaign."""

    start: datetime
    end: datetime
    campaign: str | None = None
    topic: str | None = None
    assumed_deflection: Decimal | None = None
    handling_minutes: Decimal | None = None
    confidence: float = DEFAULT_CONFIDENCE

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise SavingsError("the window ends before it starts")
        share = self.assumed_deflection
        if share is not None and not Decimal(0) <= share <= Decimal(1):
            raise SavingsError("an assumed deflection is a share between 0 and 1")
        if self.handling_minutes is not None and self.handling_minutes < 0:
            raise SavingsError("handling minutes must not be negative")


def audience_topic(definition: object) -> str | None:
    """The first `topic_calls_30d.<topic>` field the audience rule tests, if any."""
    stack = [definition.get("audience")] if isinstance(definition, dict) else []
    while stack:
        node = stack.pop(0)
        if isinstance(node, dict):
            field = node.get("field")
            if isinstance(field, str) and field.startswith(TOPIC_FIELD):
                return field[len(TOPIC_FIELD) :]
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return None


async def _campaigns(
    session: AsyncSession, wanted: str | None, ids: set[str], stop: datetime | None = None
) -> list[Campaign]:
    """The named campaign, or those with costs in the window or an experiment by then."""
    query = select(Campaign).order_by(Campaign.name)
    if wanted is not None:
        query = query.where(or_(Campaign.name == wanted, Campaign.id == wanted))
    else:
        experimenting = select(ExperimentAssignment.campaign_id).distinct()
        if stop is not None:
            experimenting = experimenting.where(ExperimentAssignment.assigned_at < stop)
        query = query.where(or_(Campaign.id.in_(ids), Campaign.id.in_(experimenting)))
    found = list((await session.execute(query)).scalars())
    if wanted is not None and not found:
        raise UnknownCampaign(f"no campaign named {wanted!r}")
    return found


async def _definition(session: AsyncSession, campaign_id: str) -> dict[str, object]:
    query = (
        select(CampaignVersion.definition)
        .where(CampaignVersion.campaign_id == campaign_id)
        .order_by(CampaignVersion.version.desc())
        .limit(1)
    )
    found = (await session.execute(query)).scalar_one_or_none()
    return found if isinstance(found, dict) else {}


def _share(value: float) -> Decimal:
    return Decimal(repr(value)).quantize(SHARE, ROUND_HALF_UP)


@dataclass
class _ChannelTally:
    """One channel's ledger lines, summed in the report currency (not rounded)."""

    amount: Decimal = Decimal(0)
    contacts: int = 0
    units: int = 0
    priced_by: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))


@dataclass(frozen=True)
class _Costs:
    """Costs in the report currency: the total, per channel and per month."""

    total: Decimal
    channels: dict[str, _ChannelTally]
    by_month: dict[str, Decimal]


def _costs(model: CostModel, groups: list[ledger.LedgerGroup]) -> _Costs:
    """Per-channel and per-month costs in the report currency."""
    channels: dict[str, _ChannelTally] = {}
    by_month: dict[str, Decimal] = defaultdict(Decimal)
    total = Decimal(0)
    for group in groups:
        amount = model.convert(group.amount, group.currency)
        entry = channels.setdefault(group.channel, _ChannelTally())
        entry.amount += amount
        entry.contacts += group.lines
        entry.units += group.units
        entry.priced_by[group.source] += group.lines
        by_month[group.month] += amount
        total += amount
    return _Costs(total, channels, by_month)


def _channels_out(channels: dict[str, _ChannelTally]) -> dict[str, ChannelCost]:
    return {
        name: {
            "cost": money_str(entry.amount),
            "contacts": entry.contacts,
            "units": entry.units,
            "priced_by": dict(entry.priced_by),
        }
        for name, entry in sorted(channels.items())
    }


@dataclass(frozen=True)
class _Facts:
    """What the grouped queries found for one campaign."""

    topic: str | None
    topic_source: str
    sizes: dict[str, int]
    callers: dict[tuple[str, str], int]  # (arm, month) → distinct callers; month "" = window
    handling: tuple[int, int]  # talk seconds, answered calls


async def _campaign_report(
    session: AsyncSession,
    model: CostModel,
    query: SavingsQuery,
    campaign: Campaign,
    groups: list[ledger.LedgerGroup],
    window: tuple[datetime, datetime, list[ledger.Month]],
    facts: _Facts,
) -> CampaignSavings:
    start, stop, months = window
    notes: list[str] = []
    topic, topic_source = facts.topic, facts.topic_source
    costs = _costs(model, groups)
    control = facts.sizes.get(HOLDOUT, 0)
    arms = {arm: n for arm, n in facts.sizes.items() if arm != HOLDOUT}
    treated = sum(arms.values())
    measured: Deflection | None = None
    per_arm: dict[str, dict[str, object]] = {}
    monthly_share: dict[str, Decimal] = {}
    if control and treated:
        found = facts.callers
        control_callers = found.get((HOLDOUT, ""), 0)
        treated_callers = sum(n for (arm, m), n in found.items() if arm != HOLDOUT and m == "")
        measured = measure(control, control_callers, treated, treated_callers, query.confidence)
        for arm, size in sorted(arms.items()):
            one = measure(control, control_callers, size, found.get((arm, ""), 0))
            per_arm[arm] = one.as_dict()
        if len(months) > 1:
            for month in months:
                c = found.get((HOLDOUT, month.label), 0)
                t = sum(n for (arm, m), n in found.items() if arm != HOLDOUT and m == month.label)
                monthly_share[month.label] = _share(measure(control, c, treated, t).value)
        customers_source = "experiment"
    else:
        treated = await ledger.reached_customers(session, campaign.id, start, stop)
        customers_source = "ledger"
        notes.append("no holdout group: deflection is assumed, not measured")

    seconds, calls = facts.handling
    handling = model.handling_time(topic, seconds, calls)
    if measured is not None:
        share: Decimal | None = _share(measured.value)
        deflection: dict[str, object] = measured.as_dict()
    elif query.assumed_deflection is not None:
        share = query.assumed_deflection
        deflection = {"source": "assumed", "value": str(share)}
    else:
        share = None
        deflection = {"source": "unknown", "value": None}
        notes.append("give an assumed deflection to project savings without a holdout")
    if handling is None:
        notes.append(f"no handling time for topic {topic!r}: configure or give one")

    savings = _savings(model, share, handling, treated, costs, months, monthly_share, measured)
    return {
        "campaign": campaign.name,
        "campaign_id": campaign.id,
        "topic": {"value": topic, "source": topic_source},
        "customers": {"treated": treated, "control": control, "source": customers_source},
        "deflection": deflection,
        "arms": per_arm,
        "handling_minutes": handling.as_dict() if handling else None,
        "handling_calls_measured": calls,
        "operator_per_minute": model.operator_per_minute.as_dict(),
        "channels": _channels_out(costs.channels),
        "cost": money_str(costs.total),
        "notes": notes,
        **savings,
    }


def _savings(
    model: CostModel,
    share: Decimal | None,
    handling: Figure | None,
    treated: int,
    costs: _Costs,
    months: list[ledger.Month],
    monthly_share: dict[str, Decimal],
    measured: Deflection | None,
) -> SavingsFigures:
    """Avoided minutes, gross and net savings, classic and net per month and year."""
    covered = sum((m.fraction for m in months), Decimal(0))
    total_cost = costs.total
    month_rows: list[MonthFigures] = [
        {"month": m.label, "cost": money_str(costs.by_month.get(m.label, Decimal(0)))}
        for m in months
    ]
    if share is None or handling is None:
        return {"months": month_rows, "net_savings": None}
    n = Decimal(treated)
    call_cost = handling.value * model.operator_per_minute.value
    contact_cost = total_cost / n if n else Decimal(0)
    avoided_calls = n * share
    gross = avoided_calls * call_cost
    net = gross - total_cost
    classic = avoided_calls * (call_cost - contact_cost)
    for row, month in zip(month_rows, months, strict=True):
        month_cost = costs.by_month.get(month.label, Decimal(0))
        if month.label in monthly_share:
            month_gross = n * monthly_share[month.label] * call_cost
        else:
            month_gross = gross * month.fraction / covered if covered else Decimal(0)
        row["gross_savings"] = money_str(month_gross)
        row["net_savings"] = money_str(month_gross - month_cost)
    out: SavingsFigures = {
        "avoided_calls": str(avoided_calls.quantize(Decimal("0.01"), ROUND_HALF_UP)),
        "avoided_minutes": str((avoided_calls * handling.value).quantize(Decimal("0.01"))),
        "gross_savings": money_str(gross),
        "net_savings": money_str(net),
        "per_customer": money_str(call_cost - contact_cost),
        "per_month": money_str(classic / covered),
        "per_month_net": money_str(net / covered),
        "per_year": money_str(classic / covered * MONTHS_PER_YEAR),
        "per_year_net": money_str(net / covered * MONTHS_PER_YEAR),
        "months": month_rows,
    }
    if measured is not None:
        low = n * _share(measured.low) * call_cost - total_cost
        high = n * _share(measured.high) * call_cost - total_cost
        out["net_savings_interval"] = {"low": money_str(low), "high": money_str(high)}
    return out


async def _gather_facts(
    session: AsyncSession,
    query: SavingsQuery,
    campaigns: list[Campaign],
    window: tuple[datetime, datetime, list[ledger.Month]],
) -> dict[str, _Facts]:
    """Arms, callers and handling times of every campaign in a few grouped queries."""
    start, stop, months = window
    topics: dict[str, tuple[str | None, str]] = {}
    for campaign in campaigns:
        if query.topic is not None:
            topics[campaign.id] = (query.topic, "given")
        else:
            topic = audience_topic(await _definition(session, campaign.id))
            topics[campaign.id] = (topic, "audience rule" if topic else "all inbound calls")
    ids = [c.id for c in campaigns]
    sizes = await ledger.arm_sizes_of(session, ids) if ids else {}
    measured = [(i, topics[i][0]) for i in ids if HOLDOUT in sizes.get(i, {}) and len(sizes[i]) > 1]
    found = await callers_by_month(session, measured, start, stop, months)
    by_topic = await ledger.handling_by_topic(session, start, stop)
    all_topics = (sum(s for s, _ in by_topic.values()), sum(n for _, n in by_topic.values()))
    facts: dict[str, _Facts] = {}
    for campaign_id in ids:
        topic, source = topics[campaign_id]
        callers = {(arm, month): n for (c, arm, month), n in found.items() if c == campaign_id}
        handling = by_topic.get(topic, (0, 0)) if topic is not None else all_topics
        facts[campaign_id] = _Facts(topic, source, sizes.get(campaign_id, {}), callers, handling)
    return facts


async def savings_report(
    database: Database, settings: Settings, query: SavingsQuery
) -> SavingsReport:
    """The savings report over [start, end] as a JSON-ready dict (money as strings)."""
    given = {"*": query.handling_minutes} if query.handling_minutes is not None else None
    model = CostModel.from_settings(settings, given)
    # Ranges include both ends: `end` is the last instant inside; queries use [start, stop).
    start, stop = query.start, query.end + timedelta(microseconds=1)
    months = ledger.months_between(start, stop, settings.timezone)
    async with database.sessions() as session:
        wanted: list[str] | None = None
        if query.campaign is not None:
            found = await _campaigns(session, query.campaign, set())
            wanted = [c.id for c in found]
        groups = await rollup.ledger_groups(session, months, wanted)
        ids = {g.campaign_id for g in groups if g.campaign_id}
        campaigns = await _campaigns(session, query.campaign, ids, stop)
        facts = await _gather_facts(session, query, campaigns, (start, stop, months))
        reports = [
            await _campaign_report(
                session,
                model,
                query,
                campaign,
                [g for g in groups if g.campaign_id == campaign.id],
                (start, stop, months),
                facts[campaign.id],
            )
            for campaign in campaigns
        ]
    other = _costs(model, [g for g in groups if g.campaign_id is None])
    all_costs = _costs(model, groups)
    nets = [Decimal(r["net_savings"]) for r in reports if r["net_savings"] is not None]
    covered = sum((m.fraction for m in months), Decimal(0))
    total_net = sum(nets, Decimal(0))
    return {
        "from": isoformat_z(query.start),
        "to": isoformat_z(query.end),
        "currency": model.currency,
        "conversion": {code: str(rate) for code, rate in sorted(model.conversion.items())},
        "months_covered": str(covered.quantize(Decimal("0.0001"))),
        "campaigns": reports,
        "costs": {
            "total": money_str(all_costs.total),
            "channels": _channels_out(all_costs.channels),
            "without_campaign": money_str(other.total),
        },
        "totals": {
            "net_savings": money_str(total_net),
            "per_month_net": money_str(total_net / covered) if covered else "0.00",
            "per_year_net": money_str(total_net / covered * MONTHS_PER_YEAR) if covered else "0.00",
        },
    }
