"""Grouped reads of the cost ledger and call records, portable across both databases."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, SQLColumnExpression, case, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.core.db.dialect import exact_sum, read_sum
from gateway.core.db.models import Call, CostEntry, ExperimentAssignment

TEN_THOUSANDTHS = Decimal("0.0001")


@dataclass(frozen=True)
class Month:
    """A calendar month (in the report's time zone) clipped to the report window."""

    label: str
    start: datetime
    stop: datetime
    fraction: Decimal


def months_between(start: datetime, stop: datetime, timezone: str) -> list[Month]:
    """The calendar months touched by [start, stop), each with the share of it covered."""
    zone = ZoneInfo(timezone)
    local = start.astimezone(zone)
    first = date(local.year, local.month, 1)
    months: list[Month] = []
    while True:
        following = date(first.year + first.month // 12, first.month % 12 + 1, 1)
        begin = datetime(first.year, first.month, 1, tzinfo=zone)
        end = datetime(following.year, following.month, 1, tzinfo=zone)
        if begin >= stop:
            break
        clipped_start, clipped_stop = max(begin, start), min(end, stop)
        # Exact to the microsecond, in Decimal: a whole month is exactly 1.
        whole = _micros(end - begin)
        fraction = Decimal(_micros(clipped_stop - clipped_start)) / Decimal(whole)
        months.append(Month(first.strftime("%Y-%m"), clipped_start, clipped_stop, fraction))
        first = following
    return months


def _micros(delta: timedelta) -> int:
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def month_bucket(
    column: SQLColumnExpression[datetime], months: Sequence[Month]
) -> ColumnElement[str]:
    """A CASE giving each row its month label (rows are already inside the window).

    Boundaries are computed in Python from the time zone, so the same SQL works on
    SQLite (which knows no time zones) and is exact across DST changes.
    """
    if len(months) == 1:
        return literal(months[0].label)
    whens = [(column < month.stop, month.label) for month in months[:-1]]
    return case(*whens, else_=months[-1].label)


def summed_amount(session: AsyncSession) -> ColumnElement[Decimal | int]:
    """SUM(amount), exact on both databases (ten-thousandths: the column's scale)."""
    return exact_sum(session, CostEntry.amount)


def amount_of(session: AsyncSession, raw: Decimal | int | None) -> Decimal:
    """Turn what `summed_amount` returned into a Decimal."""
    return read_sum(session, raw)


@dataclass(frozen=True)
class LedgerGroup:
    """Ledger lines of one campaign, channel, currency, price source and month."""

    campaign_id: str | None
    channel: str
    currency: str
    source: str
    month: str
    amount: Decimal
    lines: int
    units: int


async def reached_customers(
    session: AsyncSession, campaign_id: str, start: datetime, stop: datetime
) -> int:
    """Distinct customers a campaign paid to contact in the window."""
    query = select(func.count(func.distinct(CostEntry.customer_id))).where(
        CostEntry.campaign_id == campaign_id,
        CostEntry.at >= start,
        CostEntry.at < stop,
        CostEntry.customer_id.is_not(None),
    )
    return int((await session.execute(query)).scalar_one())


def _topic_calls(topic: str | None, start: datetime, stop: datetime) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = [
        Call.direction == "inbound",
        Call.started_at >= start,
        Call.started_at < stop,
        Call.customer_id.is_not(None),
    ]
    if topic is not None:
        conditions.append(Call.topic == topic)
    return conditions


async def arm_sizes_of(
    session: AsyncSession, campaign_ids: Sequence[str]
) -> dict[str, dict[str, int]]:
    """Customers per arm for several campaigns at once: campaign → arm → count."""
    query = (
        select(ExperimentAssignment.campaign_id, ExperimentAssignment.arm, func.count())
        .where(ExperimentAssignment.campaign_id.in_(campaign_ids))
        .group_by(ExperimentAssignment.campaign_id, ExperimentAssignment.arm)
    )
    sizes: dict[str, dict[str, int]] = {}
    for campaign_id, arm, n in (await session.execute(query)).all():
        sizes.setdefault(campaign_id, {})[arm] = int(n)
    return sizes


async def handling_by_topic(
    session: AsyncSession, start: datetime, stop: datetime
) -> dict[str | None, tuple[int, int]]:
    """(talk seconds, answered calls) of inbound calls per topic; sums, so additive."""
    query = (
        select(Call.topic, func.coalesce(func.sum(Call.talk_seconds), 0), func.count())
        .where(*_topic_calls(None, start, stop), Call.talk_seconds > 0)
        .group_by(Call.topic)
    )
    return {topic: (int(s or 0), int(n)) for topic, s, n in (await session.execute(query)).all()}
