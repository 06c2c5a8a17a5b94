"""Screen-pops and call updates: what an operator's page receives, via the bus."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from crm_sync.phones import InvalidPhone, normalize_phone
from gateway.bus import Bus, BusError
from gateway.customers.service import PhoneMatch, card, summary
from gateway.live.http import agent_channel

log = logging.getLogger(__name__)


def display_number(raw: str | None, region: str) -> str | None:
    """E.164 when the number parses (the contract's form), else what the PBX sent."""
    if not raw:
        return None
    try:
        return normalize_phone(raw, region)
    except InvalidPhone:
        return raw


async def screen_pop(
    session: AsyncSession,
    found: PhoneMatch,
    *,
    call_id: str,
    caller: str | None,
    extension: str,
    now: datetime,
    timezone: str,
) -> dict[str, Any]:
    """The contract's `screen_pop` message for one ringing extension.

    An ambiguous number gets no card (no guessing) but lists the candidates so the
    operator can ask which of them is calling.
    """
    customer: dict[str, Any] | None = None
    open_tasks: list[dict[str, Any]] = []
    if found.match in ("exact", "suffix") and found.customers:
        today = now.astimezone(ZoneInfo(timezone)).date()
        the_card = await card(session, found.customers[0], today)
        customer = the_card.model_dump()
        open_tasks = customer["open_tasks"]
    message: dict[str, Any] = {
        "type": "screen_pop",
        "call_id": call_id,
        "caller": caller,
        "extension": extension,
        "customer": customer,
        "match": found.match,
        "open_tasks": open_tasks,
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
