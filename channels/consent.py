"""May we contact this customer on this channel, and when: consent, windows, frequency caps.

Every answer is data, a `Decision`: `send` now, `defer` until `not_before`, or `skip` for
good with a contract reason (`opted_out`, `do_not_contact`, `invalid_number`,
`no_address`, ...). The pure functions take everything as arguments; the few `async`
helpers only fetch what the pure ones need from the database.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.core.db.models import Customer, DoNotContact, OutboundContact
from gateway.core.db.states import ContactStatus
from gateway.core.policy import ContactPolicy, FrequencyCap, SendingWindow

Action = Literal["send", "defer", "skip"]
PHONE_CHANNELS = frozenset({"sms", "voice"})
# States whose message did (or may well have) reach the customer: they use up the cap.
# `unknown` counts because the provider may have accepted it; counting it errs on the
# side of contacting the customer less, never more.
COUNTED_STATES = (
    ContactStatus.SENDING,
    ContactStatus.SENT,
    ContactStatus.DELIVERED,
    ContactStatus.UNKNOWN,
)
# How far ahead a window is searched; a policy that opens less often is treated as closed.
SEARCH_DAYS = 400


@dataclass(frozen=True)
class Decision:
    """What to do with one contact now."""

    action: Action
    not_before: datetime | None = None
    reason: str | None = None


SEND = Decision("send")


def skip(reason: str) -> Decision:
    """Never send this contact, for `reason`."""
    return Decision("skip", reason=reason)


class WindowNeverOpens(Exception):
    """The sending window has no open time within the search horizon."""


def may_contact(
    customer: Customer, channel: str, address: str | None, listed: Collection[str] = ()
) -> Decision:
    """Consent only: opt-outs, do-not-contact (flag and `listed` addresses), the address."""
    if customer.deleted_at is not None:
        return skip("customer_deleted")
    if customer.do_not_contact:
        return skip("do_not_contact")
    if getattr(customer, f"{channel}_opt_out", False):
        return skip("opted_out")
    if not address:
        if channel in PHONE_CHANNELS and customer.phones:
            return skip("invalid_number")
        return skip("no_address")
    if channel in PHONE_CHANNELS and any(
        phone.invalid and phone.e164 == address for phone in customer.phones
    ):
        return skip("invalid_number")
    if _address_key(address) in {_address_key(value) for value in listed}:
        return skip("do_not_contact")
    return SEND


def _address_key(address: str) -> str:
    # E-mail addresses compare case-insensitively in practice; E.164 has no case.
    return address.strip().lower()


async def listed_addresses(session: AsyncSession, address: str) -> list[str]:
    """The do-not-contact entries matching `address` (empty when it is not listed)."""
    key = _address_key(address)
    query = select(DoNotContact.value).where(
        or_(DoNotContact.value == address, func.lower(DoNotContact.value) == key)
    )
    return list(await session.scalars(query))


async def check_consent(
    session: AsyncSession, customer: Customer, channel: str, address: str | None
) -> Decision:
    """`may_contact` with the do-not-contact table consulted for `address`."""
    listed = await listed_addresses(session, address) if address else []
    return may_contact(customer, channel, address, listed)


def customer_zone(customer: Customer, default: str) -> ZoneInfo:
    """The customer's own time zone; the default when unset or not a known zone name."""
    for name in (customer.timezone, default):
        if name:
            try:
                return ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


def local_instant(wall: datetime, zone: ZoneInfo) -> datetime:
    """The first UTC instant at which the local clock in `zone` reads `wall` or later.

    A wall time the clocks skip (spring forward) maps to the end of the skip; one they
    show twice (fall back) maps to its first occurrence.
    """
    utc = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if utc.astimezone(zone).replace(tzinfo=None) == wall:
        return utc
    # In a gap fold=0 uses the offset before the jump (an instant after it) and fold=1
    # the offset after (an instant before it); the jump lies between, on whole seconds.
    low = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    high = utc
    while high - low > timedelta(seconds=1):
        middle = low + timedelta(seconds=(high - low).total_seconds() // 2)
        if middle.astimezone(zone).replace(tzinfo=None) >= wall:
            high = middle
        else:
            low = middle
    return high


def _open_ranges(
    day: date, window: SendingWindow, zone: ZoneInfo
) -> list[tuple[datetime, datetime]]:
    midnight = datetime.combine(day, time())
    return [
        (
            local_instant(midnight + timedelta(minutes=start), zone),
            local_instant(midnight + timedelta(minutes=end), zone),
        )
        for start, end in window.ranges_on(day)
    ]


def next_allowed(now: datetime, window: SendingWindow | None, zone: ZoneInfo) -> datetime:
    """`now` when the window is open, else the next moment it opens (UTC)."""
    if window is None:
        return now
    today = now.astimezone(zone).date()
    # From yesterday: a range that started yesterday may run past midnight into today.
    for offset in range(-1, SEARCH_DAYS):
        for opens, closes in _open_ranges(today + timedelta(days=offset), window, zone):
            if closes > now:
                return max(opens, now)
    raise WindowNeverOpens(f"no open time within {SEARCH_DAYS} days")


def cap_frees_at(
    contact_times: Sequence[datetime], cap: FrequencyCap | None, now: datetime
) -> datetime | None:
    """None when under the cap; else when the oldest counted contact leaves its period."""
    if cap is None:
        return None
    period = timedelta(days=cap.days)
    recent = sorted(at for at in contact_times if at > now - period)
    if len(recent) < cap.max:
        return None
    return recent[len(recent) - cap.max] + period


def plan_time(
    now: datetime,
    window: SendingWindow | None,
    zone: ZoneInfo,
    contact_times: Sequence[datetime] = (),
    cap: FrequencyCap | None = None,
) -> Decision:
    """Send now, or defer to the first moment both the cap and the window allow."""
    earliest = cap_frees_at(contact_times, cap, now) or now
    reason = "frequency_cap" if earliest > now else None
    try:
        opens = next_allowed(earliest, window, zone)
    except WindowNeverOpens:
        return skip("no_sending_window")
    if opens == now:
        return SEND
    if reason is None:
        on_holiday = window is not None and earliest.astimezone(zone).date() in window.holidays
        reason = "holiday" if on_holiday else "sending_window"
    return Decision("defer", not_before=opens, reason=reason)


async def recent_contact_times(
    session: AsyncSession,
    customer_id: str,
    channel: str,
    since: datetime,
    exclude_id: str | None = None,
) -> list[datetime]:
    """When the customer's counted contacts on `channel` (any campaign) went out since."""
    at = func.coalesce(OutboundContact.sent_at, OutboundContact.updated_at)
    query = select(at).where(
        OutboundContact.customer_id == customer_id,
        OutboundContact.channel == channel,
        OutboundContact.status.in_(COUNTED_STATES),
        at > since,
    )
    if exclude_id is not None:
        query = query.where(OutboundContact.id != exclude_id)
    return list(await session.scalars(query))


async def decide(
    session: AsyncSession,
    customer: Customer,
    channel: str,
    address: str | None,
    policy: ContactPolicy,
    now: datetime,
    default_timezone: str,
    contact_id: str | None = None,
) -> Decision:
    """Everything at once: consent, then frequency cap, then the sending window."""
    consent = await check_consent(session, customer, channel, address)
    if consent.action != "send":
        return consent
    cap = policy.cap_for(channel)
    times: list[datetime] = []
    if cap is not None:
        since = now - timedelta(days=cap.days)
        times = await recent_contact_times(session, customer.id, channel, since, contact_id)
    zone = customer_zone(customer, default_timezone)
    return plan_time(now, policy.window_for(channel), zone, times, cap)
