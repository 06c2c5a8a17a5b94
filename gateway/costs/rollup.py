"""Ledger sums over a window from the hourly rollup, exact to the microsecond.

`cost_ledger_hourly` (kept by triggers, migration 0003) holds the ledger summed per
whole UTC hour. A report window and its calendar months rarely start on whole hours
in every time zone (India is UTC+5:30, Nepal +5:45, windows may start at any instant),
so each month of the window is split: the whole hours inside it come from the rollup,
the partial hours at its two ends straight from the ledger lines. Both halves use the
same grouping, and their sums add up to exactly what one pass over the lines gives.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import ColumnElement, SQLColumnExpression, and_, false, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.core.db.models import CostEntry, CostLedgerHour
from gateway.costs.ledger import (
    TEN_THOUSANDTHS,
    LedgerGroup,
    Month,
    amount_of,
    month_bucket,
    summed_amount,
)

HOUR = timedelta(hours=1)
NO_CAMPAIGN = ""  # the rollup's campaign_key of lines outside any campaign


@dataclass(frozen=True)
class Split:
    """Which instants of a window come from the rollup and which from the lines."""

    whole_hours: list[tuple[datetime, datetime]]
    partial: list[tuple[datetime, datetime]]


def _floor_hour(moment: datetime) -> datetime:
    utc = moment.astimezone(UTC)
    return utc.replace(minute=0, second=0, microsecond=0)


def _ceil_hour(moment: datetime) -> datetime:
    floor = _floor_hour(moment)
    return floor if floor == moment else floor + HOUR


def split_months(months: Sequence[Month]) -> Split:
    """Whole UTC hours of each month for the rollup; the edges left over for the lines."""
    whole: list[tuple[datetime, datetime]] = []
    partial: list[tuple[datetime, datetime]] = []
    for month in months:
        first, last = _ceil_hour(month.start), _floor_hour(month.stop)
        if first >= last:
            partial.append((month.start, month.stop))
            continue
        whole.append((first, last))
        if month.start < first:
            partial.append((month.start, first))
        if last < month.stop:
            partial.append((last, month.stop))
    return Split(whole, partial)


def _within(
    column: SQLColumnExpression[datetime], ranges: Sequence[tuple[datetime, datetime]]
) -> ColumnElement[bool]:
    if not ranges:
        return false()
    return or_(*(and_(column >= start, column < stop) for start, stop in ranges))


Key = tuple[str | None, str, str, str, str]


async def _from_rollup(
    session: AsyncSession,
    ranges: Sequence[tuple[datetime, datetime]],
    months: Sequence[Month],
    campaign_ids: Sequence[str] | None,
) -> dict[Key, tuple[Decimal, int, int]]:
    bucket = month_bucket(CostLedgerHour.hour, months).label("month")
    query = (
        select(
            CostLedgerHour.campaign_key,
            CostLedgerHour.channel,
            CostLedgerHour.currency,
            CostLedgerHour.source,
            bucket,
            func.sum(CostLedgerHour.amount_e4),
            func.sum(CostLedgerHour.lines),
            func.sum(CostLedgerHour.units),
        )
        # A row whose lines were all deleted sums to zero everywhere: leave it out, as
        # a pass over the lines would find no line there.
        .where(_within(CostLedgerHour.hour, ranges), CostLedgerHour.lines > 0)
        .group_by(
            CostLedgerHour.campaign_key,
            CostLedgerHour.channel,
            CostLedgerHour.currency,
            CostLedgerHour.source,
            bucket,
        )
    )
    if campaign_ids is not None:
        query = query.where(CostLedgerHour.campaign_key.in_(campaign_ids))
    found: dict[Key, tuple[Decimal, int, int]] = {}
    for key, channel, currency, source, month, amount, lines, units in await session.execute(query):
        campaign = None if key == NO_CAMPAIGN else key
        total = Decimal(int(amount)) * TEN_THOUSANDTHS
        found[(campaign, channel, currency, source, month)] = (total, int(lines), int(units))
    return found


async def lines_grouped(
    session: AsyncSession,
    ranges: Sequence[tuple[datetime, datetime]],
    months: Sequence[Month],
    campaign_ids: Sequence[str] | None,
) -> dict[Key, tuple[Decimal, int, int]]:
    """The same sums straight from the ledger lines in `ranges` (index on `at`)."""
    if not ranges:
        return {}
    bucket = month_bucket(CostEntry.at, months).label("month")
    query = (
        select(
            CostEntry.campaign_id,
            CostEntry.channel,
            CostEntry.currency,
            CostEntry.source,
            bucket,
            summed_amount(session).label("amount"),
            func.count().label("lines"),
            func.sum(CostEntry.units).label("units"),
        )
        .where(_within(CostEntry.at, ranges))
        .group_by(
            CostEntry.campaign_id, CostEntry.channel, CostEntry.currency, CostEntry.source, bucket
        )
    )
    if campaign_ids is not None:
        query = query.where(CostEntry.campaign_id.in_(campaign_ids))
    return {
        (row.campaign_id, row.channel, row.currency, row.source, row.month): (
            amount_of(session, row.amount),
            int(row.lines),
            int(row.units or 0),
        )
        for row in await session.execute(query)
    }


def as_groups(sums: dict[Key, tuple[Decimal, int, int]]) -> list[LedgerGroup]:
    """Sums keyed by (campaign, channel, currency, source, month) as ledger groups."""
    return [
        LedgerGroup(campaign, channel, currency, source, month, amount, lines, units)
        for (campaign, channel, currency, source, month), (amount, lines, units) in sorted(
            sums.items(), key=lambda item: tuple(part or "" for part in item[0])
        )
    ]


async def ledger_groups(
    session: AsyncSession,
    months: Sequence[Month],
    campaign_ids: Sequence[str] | None,
) -> list[LedgerGroup]:
    """Ledger sums per campaign, channel, currency, price source and month of the window."""
    split = split_months(months)
    sums = await _from_rollup(session, split.whole_hours, months, campaign_ids)
    for key, (amount, lines, units) in (
        await lines_grouped(session, split.partial, months, campaign_ids)
    ).items():
        had_amount, had_lines, had_units = sums.get(key, (Decimal(0), 0, 0))
        sums[key] = (had_amount + amount, had_lines + lines, had_units + units)
    return as_groups(sums)
