"""Distinct inbound callers per campaign arm, for the window and each of its months.

The report's main cost is this pass over the call records, so it is made once for the
window and all its months together. Each campaign's arms are joined to the calls on
that campaign's own topic only (not every topic of every campaign), then each
customer's calls fold into one bit mask of the months it called in (bit i = month i).
Counting customers per (campaign, arm, mask) leaves a few thousand rows; a customer
called in the window when its mask is not zero, and in month i when bit i is set. This
replaces COUNT(DISTINCT …) per month plus another for the window: exact, one scan, and
no sort of every call.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, case, cast, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.costs.ledger import Month
from gateway.db.models import Call, ExperimentAssignment

# Masks are signed 64-bit integers on both databases: 62 months per pass keeps clear
# of the sign bit. Longer windows take one pass per 62 months and one for the window.
MONTHS_PER_MASK = 62

CampaignTopic = tuple[str, str | None]  # a campaign and its topic (None: every call)


def _month_index(column: Any, months: Sequence[Month]) -> Any:
    if len(months) == 1:
        return literal(0)
    return case(*((column < m.stop, i) for i, m in enumerate(months[:-1])), else_=len(months) - 1)


def _month_mask(session: AsyncSession, months: Sequence[Month]) -> Any:
    """OR of 1 << month index over a customer's calls.

    PostgreSQL has BIT_OR; SQLite has none, but the SUM of the distinct powers of two
    is the same number.
    """
    bit = cast(literal(1), BigInteger).op("<<")(_month_index(Call.started_at, months))
    if session.get_bind().dialect.name == "postgresql":
        return func.bit_or(bit)
    return func.sum(bit.distinct())


async def _masks(
    session: AsyncSession,
    campaigns: Sequence[CampaignTopic],
    start: datetime,
    stop: datetime,
    months: Sequence[Month],
) -> list[tuple[str, str, int, int]]:
    """(campaign, arm, month mask, customers) for calls in [start, stop)."""
    by_topic: dict[str | None, list[str]] = defaultdict(list)
    for campaign_id, topic in campaigns:
        by_topic[topic].append(campaign_id)
    found: list[tuple[str, str, int, int]] = []
    for topic, ids in by_topic.items():
        found.extend(await _masks_on_topic(session, topic, ids, start, stop, months))
    return found


async def _masks_on_topic(
    session: AsyncSession,
    topic: str | None,
    campaign_ids: Sequence[str],
    start: datetime,
    stop: datetime,
    months: Sequence[Month],
) -> list[tuple[str, str, int, int]]:
    """The masks of the campaigns on one topic (None: every inbound call).

    One statement per topic, with the topic a plain equality, so the planner reads only
    that topic's slice of the (topic, customer, start) index, already in customer order:
    a merge join with each campaign's arms (its key is campaign, customer) and a grouping
    that streams instead of hashing a million customers; with few enrollees it probes the
    index per enrollee instead.
    """
    arm = ExperimentAssignment
    conditions = [
        arm.campaign_id.in_(campaign_ids),
        Call.direction == "inbound",
        Call.started_at >= start,
        Call.started_at < stop,
    ]
    if topic is not None:
        conditions.append(Call.topic == topic)
    per_customer = (
        select(arm.campaign_id, arm.arm, _month_mask(session, months).label("mask"))
        .select_from(arm)
        .join(Call, Call.customer_id == arm.customer_id)
        .where(*conditions)
        .group_by(arm.campaign_id, arm.customer_id, arm.arm)
        .subquery()
    )
    query = select(
        per_customer.c.campaign_id, per_customer.c.arm, per_customer.c.mask, func.count()
    ).group_by(per_customer.c.campaign_id, per_customer.c.arm, per_customer.c.mask)
    rows = (await session.execute(query)).all()
    return [(str(c), str(a), int(mask), int(n)) for c, a, mask, n in rows]


async def callers_by_month(
    session: AsyncSession,
    campaigns: Sequence[CampaignTopic],
    start: datetime,
    stop: datetime,
    months: Sequence[Month],
) -> dict[tuple[str, str, str], int]:
    """Distinct callers per (campaign, arm, month label); month "" is the whole window."""
    found: dict[tuple[str, str, str], int] = defaultdict(int)
    if not campaigns:
        return found
    if len(months) > MONTHS_PER_MASK:
        whole = [Month("", start, stop, months[0].fraction)]
        for campaign, arm, _, n in await _masks(session, campaigns, start, stop, whole):
            found[(campaign, arm, "")] += n
        for first in range(0, len(months), MONTHS_PER_MASK):
            chunk = months[first : first + MONTHS_PER_MASK]
            for campaign, arm, mask, n in await _masks(
                session, campaigns, chunk[0].start, chunk[-1].stop, chunk
            ):
                _add_months(found, campaign, arm, mask, n, chunk)
        return found
    for campaign, arm, mask, n in await _masks(session, campaigns, start, stop, months):
        found[(campaign, arm, "")] += n
        _add_months(found, campaign, arm, mask, n, months)
    return found


def _add_months(
    found: dict[tuple[str, str, str], int],
    campaign: str,
    arm: str,
    mask: int,
    n: int,
    months: Sequence[Month],
) -> None:
    for i, month in enumerate(months):
        if mask >> i & 1:
            found[(campaign, arm, month.label)] += n
