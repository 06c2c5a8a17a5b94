"""Screen-pops and call updates: what an operator's page receives, via the bus."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.core.bus import Bus, BusError, JsonObject
from gateway.core.phones import InvalidPhone, normalize_phone
from gateway.customers.public import (
    CustomerCard,
    CustomerSummary,
    Match,
    PhoneMatch,
    card,
    find_by_phone,
    summary,
)
from gateway.live.public import agent_channel

log = logging.getLogger(__name__)


def display_number(raw: str | None, region: str) -> str | None:
    """E.164 when the number parses (the contract's form), else what the PBX sent."""
    if not raw:
        return None
    try:
        return normalize_phone(raw, region)
    except InvalidPhone:
        return raw


@dataclass(frozen=True)
class CallerCard:
    """Who is calling, and the card a pop shows as of `day` (None unless one sure match)."""

    caller: str | None  # the number as the PBX gave it
    match: PhoneMatch
    card: CustomerCard | None
    day: date


async def look_up_caller(
    session: AsyncSession, caller: str | None, region: str, day: date, known: PhoneMatch | None
) -> CallerCard:
    """Match the caller's number (unless `known`) and read the card a pop shows."""
    found = known or await find_by_phone(session, caller or "", region)
    return CallerCard(caller, found, await pop_card(session, found, day), day)


async def pop_card(session: AsyncSession, found: PhoneMatch, today: date) -> CustomerCard | None:
    """The card a screen-pop shows: only for one sure match (no guessing)."""
    if found.match in ("exact", "suffix") and found.customers:
        return await card(session, found.customers[0], today)
    return None


class CallUpdateState(StrEnum):
    """What a `call_update` tells an operator's page about a call it rang or reached."""

    ANSWERED = "answered"
    ANSWERED_ELSEWHERE = "answered_elsewhere"
    ENDED = "ended"


@dataclass(frozen=True, slots=True)
class ScreenPop:
    """The contract's `screen_pop` message for one ringing extension.

    An ambiguous number gets no card but lists the candidates so the operator can ask
    which of them is calling.
    """

    call_id: str
    caller: str | None
    extension: str
    match: Match
    customer: CustomerCard | None = None
    candidates: tuple[CustomerSummary, ...] | None = None

    def to_json(self) -> JsonObject:
        """The wire form; the console reads exactly these keys."""
        customer = None if self.customer is None else self.customer.model_dump()
        message: JsonObject = {
            "type": "screen_pop",
            "call_id": self.call_id,
            "caller": self.caller,
            "extension": self.extension,
            "customer": customer,
            "match": self.match,
            "open_tasks": [] if customer is None else customer["open_tasks"],
        }
        if self.candidates is not None:
            message["candidates"] = [c.model_dump() for c in self.candidates]
        return message


@dataclass(frozen=True, slots=True)
class CallUpdate:
    """The contract's `call_update` message."""

    call_id: str
    state: CallUpdateState
    talk_seconds: int | None = None

    def to_json(self) -> JsonObject:
        """The wire form; the console reads exactly these keys."""
        return {
            "type": "call_update",
            "call_id": self.call_id,
            "state": self.state.value,
            "talk_seconds": self.talk_seconds,
        }


AgentMessage = ScreenPop | CallUpdate
"""What the calls feature sends to an operator's page."""


def screen_pop_message(
    found: PhoneMatch,
    the_card: CustomerCard | None,
    *,
    call_id: str,
    caller: str | None,
    extension: str,
) -> ScreenPop:
    """The `screen_pop` for one ringing extension: a card for one sure match, candidates
    for an ambiguous number."""
    candidates = None
    if found.match == "ambiguous":
        candidates = tuple(summary(c, "ambiguous") for c in found.customers)
    return ScreenPop(call_id, caller, extension, found.match, the_card, candidates)


async def publish(bus: Bus, extension: str, message: AgentMessage) -> None:
    """Send to one extension's channel; a bus outage loses the pop, never the call record."""
    try:
        await bus.publish(agent_channel(extension), message)
    except BusError as exc:
        log.warning("screen-pop for extension %s not delivered: %s", extension, exc)
