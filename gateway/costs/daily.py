"""Daily statistics, frozen as one `DailySnapshot` per day so history survives edits.

A day is computed from that day's rows only (status changes, contacts, calls and
ledger lines whose time falls in the day in SWITCHBOARD_TIMEZONE). Customers by status
come from the previous snapshot plus the day's status changes: a grouped count of the
customers table gives the state when the count runs, not at the end of a past day, so
it cannot replay a day; chaining gives each day's closing state from that day's moves.
Only the first snapshot (no earlier one) starts from a grouped count, rolled back by
the moves made after the day ended. A day that has not ended is computed but not
stored; a stored day is returned as stored unless a recompute is asked for.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, SQLColumnExpression, and_, case, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.core.clock import Clock, isoformat_z
from gateway.core.db.dialect import insert_for
from gateway.core.db.engine import Database
from gateway.core.db.models import Call, CostEntry, Customer, DailySnapshot, OutboundContact
from gateway.core.db.models.customers import CUSTOMER_STATUSES, StatusChange
from gateway.core.db.states import ContactStatus, CustomerStatus
from gateway.costs.ledger import amount_of, summed_amount
from gateway.costs.model import CostModel, MissingConversionRate, money_str

# Reactivations after a contact: the customer was sent something this many days before.
ATTRIBUTION_DAYS = 30
CONTACT_EVENTS = ("sent", "delivered", "replied")


def day_bounds(day: date, timezone: str) -> tuple[datetime, datetime]:
    """[start, stop) of a calendar day in `timezone`, as aware datetimes."""
    zone = ZoneInfo(timezone)
    start = datetime.combine(day, time.min, zone)
    stop = datetime.combine(day + timedelta(days=1), time.min, zone)
    return start, stop


class Move(NamedTuple):
    """How many customers moved from one status to another (None: a new customer)."""

    from_status: str | None
    to_status: str
    customers: int


async def _moves(session: AsyncSession, start: datetime, stop: datetime | None) -> list[Move]:
    query = (
        select(StatusChange.from_status, StatusChange.to_status, func.count())
        .where(StatusChange.at >= start)
        .group_by(StatusChange.from_status, StatusChange.to_status)
    )
    if stop is not None:
        query = query.where(StatusChange.at < stop)
    return [Move(*row) for row in (await session.execute(query)).all()]


def _apply(counts: dict[str, int], moves: list[Move], sign: int) -> None:
    for from_status, to_status, n in moves:
        counts[to_status] = counts.get(to_status, 0) + sign * n
        if from_status is not None:
            counts[from_status] = counts.get(from_status, 0) - sign * n


async def _statuses(
    session: AsyncSession, day: date, stop: datetime, timezone: str, moves: list[Move]
) -> tuple[dict[str, int], str]:
    """Customers by status at the end of `day`, and how that was worked out."""
    previous = (
        await session.execute(
            select(DailySnapshot)
            .where(DailySnapshot.day < day)
            .order_by(DailySnapshot.day.desc())
            .limit(1)
        )
    ).scalar_one_or_none()
    if previous is not None and "customers_by_status" in previous.data:
        counts = {k: int(v) for k, v in previous.data["customers_by_status"].items()}
        _, after_previous = day_bounds(previous.day, timezone)
        gap = moves
        if previous.day != day - timedelta(days=1):
            gap = await _moves(session, after_previous, stop)
        _apply(counts, gap, +1)
        return counts, "previous snapshot + status changes"
    grouped = (
        await session.execute(
            select(Customer.status, func.count())
            .where(Customer.deleted_at.is_(None))
            .group_by(Customer.status)
        )
    ).all()
    counts = {status: int(n) for status, n in grouped}
    later = await _moves(session, stop, None)
    _apply(counts, later, -1)
    return counts, "grouped count - later status changes"


def _in(
    column: SQLColumnExpression[datetime | None], start: datetime, stop: datetime
) -> ColumnElement[bool]:
    return and_(column >= start, column < stop)


def _count_if(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return func.sum(case((condition, 1), else_=0))


ContactCounts = dict[str, int | dict[str, int]]  # event → count, and "skipped": reason → count


async def _contacts(
    session: AsyncSession, start: datetime, stop: datetime
) -> dict[str, ContactCounts]:
    """Each contact event counted on the day it happened, per channel."""
    c = OutboundContact
    failed_in = _in(c.failed_at, start, stop)
    query = (
        select(
            c.channel,
            _count_if(_in(c.created_at, start, stop)),
            _count_if(_in(c.sent_at, start, stop)),
            _count_if(_in(c.delivered_at, start, stop)),
            _count_if(_in(c.replied_at, start, stop)),
            _count_if(and_(failed_in, c.status == ContactStatus.UNDELIVERED)),
            _count_if(and_(failed_in, c.status != ContactStatus.UNDELIVERED)),
        )
        .where(
            or_(
                _in(c.created_at, start, stop),
                _in(c.sent_at, start, stop),
                _in(c.delivered_at, start, stop),
                _in(c.replied_at, start, stop),
                failed_in,
            )
        )
        .group_by(c.channel)
    )
    names = ("created", *CONTACT_EVENTS, "undelivered", "failed")
    events: dict[str, dict[str, int]] = {}
    for channel, *counts in (await session.execute(query)).all():
        events[channel] = {name: int(n or 0) for name, n in zip(names, counts, strict=True)}
    skipped_query = (
        select(c.channel, c.reason, func.count())
        .where(c.status == ContactStatus.SKIPPED, _in(c.updated_at, start, stop))
        .group_by(c.channel, c.reason)
    )
    skipped: dict[str, dict[str, int]] = {}
    for channel, reason, n in (await session.execute(skipped_query)).all():
        events.setdefault(channel, dict.fromkeys(names, 0))
        skipped.setdefault(channel, {})[reason or "unspecified"] = int(n)
    return {
        channel: {**counts, "skipped": skipped.get(channel, {})}
        for channel, counts in events.items()
    }


async def _calls(
    session: AsyncSession, start: datetime, stop: datetime
) -> dict[str, dict[str, int | str]]:
    query = (
        select(
            Call.direction,
            func.count(),
            _count_if(Call.answered_at.is_not(None)),
            func.coalesce(func.sum(Call.talk_seconds), 0),
        )
        .where(_in(Call.started_at, start, stop))
        .group_by(Call.direction)
    )
    out: dict[str, dict[str, int | str]] = {}
    for direction, total, answered, seconds in (await session.execute(query)).all():
        minutes = (Decimal(int(seconds or 0)) / 60).quantize(Decimal("0.01"))
        out[direction] = {
            "total": int(total),
            "answered": int(answered or 0),
            "talk_minutes": str(minutes),
        }
    return out


@dataclass
class _ChannelTally:
    """One channel's ledger lines of the day: converted amount, lines, lines per source."""

    amount: Decimal = Decimal(0)
    count: int = 0
    priced_by: dict[str, int] = field(default_factory=dict)


async def _costs(
    session: AsyncSession, model: CostModel, start: datetime, stop: datetime
) -> dict[str, object]:
    """The day's ledger by channel, converted; a currency without a rate is kept apart
    rather than failing the day, so the snapshot still freezes everything else."""
    query = (
        select(
            CostEntry.channel,
            CostEntry.currency,
            CostEntry.source,
            summed_amount(session),
            func.count(),
        )
        .where(_in(CostEntry.at, start, stop))
        .group_by(CostEntry.channel, CostEntry.currency, CostEntry.source)
    )
    channels: dict[str, _ChannelTally] = {}
    unconverted: dict[str, Decimal] = defaultdict(Decimal)
    total = Decimal(0)
    for channel, currency, source, raw, n in (await session.execute(query)).all():
        entry = channels.setdefault(channel, _ChannelTally())
        entry.count += int(n)
        entry.priced_by[source] = entry.priced_by.get(source, 0) + int(n)
        amount = amount_of(session, raw)
        try:
            converted = model.convert(amount, currency)
        except MissingConversionRate:
            unconverted[currency] += amount
            continue
        entry.amount += converted
        total += converted
    return {
        "currency": model.currency,
        "total": money_str(total),
        "channels": {
            name: {"amount": money_str(e.amount), "count": e.count, "priced_by": e.priced_by}
            for name, e in sorted(channels.items())
        },
        "unconverted": {code: str(amount) for code, amount in sorted(unconverted.items())},
    }


async def _reactivations(session: AsyncSession, start: datetime, stop: datetime) -> int:
    """Moves back into active that followed a sent contact within ATTRIBUTION_DAYS."""
    since = start - timedelta(days=ATTRIBUTION_DAYS)
    contacted = (
        select(OutboundContact.id)
        .where(
            OutboundContact.customer_id == StatusChange.customer_id,
            OutboundContact.sent_at >= since,
            OutboundContact.sent_at < stop,
        )
        .exists()
    )
    query = select(func.count(func.distinct(StatusChange.customer_id))).where(
        _in(StatusChange.at, start, stop),
        StatusChange.to_status == CustomerStatus.ACTIVE,
        StatusChange.from_status.is_not(None),
        StatusChange.from_status != CustomerStatus.ACTIVE,
        contacted,
    )
    return int((await session.execute(query)).scalar_one())


def _returned(from_status: str | None, to_status: str) -> bool:
    """A move back to active from another status (not a new customer's first one)."""
    active = CustomerStatus.ACTIVE
    return to_status == active and from_status is not None and from_status != active


async def compute_day(
    session: AsyncSession, model: CostModel, timezone: str, day: date
) -> dict[str, object]:
    """The statistics of one day (not stored)."""
    start, stop = day_bounds(day, timezone)
    moves = await _moves(session, start, stop)
    statuses, method = await _statuses(session, day, stop, timezone, moves)
    back = sum(n for f, t, n in moves if _returned(f, t))
    by_origin: dict[str, int] = defaultdict(int)
    for f, t, n in moves:
        if f is not None and _returned(f, t):
            by_origin[f] += n
    return {
        "day": day.isoformat(),
        "timezone": timezone,
        "from": isoformat_z(start),
        "to": isoformat_z(stop),
        "customers_by_status": {s: statuses.get(s, 0) for s in CUSTOMER_STATUSES}
        | {s: n for s, n in statuses.items() if s not in CUSTOMER_STATUSES},
        "status_method": method,
        "moves": [
            {"from": f, "to": t, "count": int(n)}
            for f, t, n in sorted(moves, key=lambda m: (m[0] or "", m[1]))
        ],
        "moved_back_to_active": back,
        "reactivations": {
            "total": back,
            "from": dict(sorted(by_origin.items())),
            "after_contact": await _reactivations(session, start, stop),
        },
        "contacts": await _contacts(session, start, stop),
        "calls": await _calls(session, start, stop),
        "costs": await _costs(session, model, start, stop),
    }


async def daily_snapshot(
    database: Database,
    model: CostModel,
    timezone: str,
    clock: Clock,
    day: date,
    *,
    recompute: bool = False,
) -> dict[str, Any]:
    """The day's stored snapshot; computed and stored once the day has ended."""
    _, stop = day_bounds(day, timezone)
    now = clock.now()
    async with database.sessions() as session:
        stored = await session.get(DailySnapshot, day)
        if stored is not None and not recompute:
            return {**stored.data, "final": True, "computed_at": isoformat_z(stored.computed_at)}
        data = await compute_day(session, model, timezone, day)
    if stop > now:
        return {**data, "final": False, "computed_at": isoformat_z(now)}
    async with database.transaction() as session:
        insert = insert_for(session)
        statement = insert(DailySnapshot).values(day=day, data=data, computed_at=now)
        if recompute:
            statement = statement.on_conflict_do_update(
                index_elements=[DailySnapshot.day],
                set_={"data": statement.excluded.data, "computed_at": now},
            )
        else:
            # Another instance stored the day meanwhile: its snapshot stands.
            statement = statement.on_conflict_do_nothing()
        await session.execute(statement)
        stored = await session.get(DailySnapshot, day, populate_existing=True)
    assert stored is not None
    return {**stored.data, "final": True, "computed_at": isoformat_z(stored.computed_at)}
