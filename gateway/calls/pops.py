"""Screen-pops and call updates: what an operator's page receives, via the bus."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.core.bus import Bus, BusError
from gateway.core.phones import InvalidPhone, normalize_phone
from gateway.customers.public import CustomerCard, PhoneMatch, card, find_by_phone, summary
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


def screen_pop_message(
    found: PhoneMatch,
    the_card: CustomerCard | None,
    *,
    call_id: str,
    caller: str | None,
    extension: str,
) -> dict[str, Any]:
    """The contract's `screen_pop` message for one ringing extension.

    An ambiguous number gets no card but lists the candidates so the operator can ask
    which of them is calling.
    """
    customer = None if the_card is None else the_card.model_dump()
    message: dict[str, Any] = {
        "type": "screen_pop",
        "call_id": call_id,
        "caller": caller,
        "extension": extension,
        "customer": customer,
        "match": found.match,
        "open_tasks": [] if customer is None else customer["open_tasks"],
    }
    if found.match == "ambiguous":
        message["candidates"] = [summary(c, "ambiguous").model_dump() for c in found.customers]
    return message


async def publish(bus: Bus, extension: str, message: dict[str, Any]) -> None:
    """Send to one extension's channel; a bus outage loses the pop, never the call record."""
    try:
        await bus.publish(agent_channel(extension), message)
    except BusError as exc:
        log.warning("screen-pop for extension %s not delivered: %s", extension, exc)


def call_update(call_id: str, state: str, talk_seconds: int | None = None) -> dict[str, Any]:
    """The contract's `call_update` message."""
    return {
        "type": "call_update",
        "call_id": call_id,
        "state": state,
        "talk_seconds": talk_seconds,
    }
