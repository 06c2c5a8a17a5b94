"""Journey helpers: CRM events through the real ingest, campaign versions, the test's days."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from crm_sync.events import ParseContext, parse_data, parse_envelope
from crm_sync.ingest import apply_event
from gateway.campaigns.definition import validate_definition
from gateway.campaigns.store import save_definition
from gateway.core.clock import isoformat_z
from gateway.core.db.engine import Database
from gateway.core.db.models import (
    Customer,
)
from gateway.lifecycle.transitions import apply_status

# 09:00 UTC is 11:00 in Kyiv: after the 10:00 (local) schedule of every campaign here.
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)

CONTEXT = ParseContext("UA", "Europe/Kyiv")

_ids = itertools.count(1)


def day(n: float, hours: float = 0) -> datetime:
    """T0 plus `n` days and `hours` hours."""
    return T0 + timedelta(days=n, hours=hours)


async def crm(database: Database, type_: str, data: dict[str, Any], now: datetime) -> None:
    """Feed one CRM event through the real ingest."""
    raw = {"id": f"evt-{next(_ids)}", "type": type_, "occurred_at": isoformat_z(now), "data": data}
    envelope = parse_envelope(raw, CONTEXT)
    async with database.transaction() as session:
        await apply_event(session, envelope, parse_data(envelope, CONTEXT), now)


async def customer(
    database: Database, external_id: str, now: datetime, *, region: str = "north", status: str = ""
) -> str:
    """A customer as the CRM creates one (optionally moved to `status`); returns our id."""
    data = {
        "external_id": external_id,
        "name": external_id.title(),
        "region": region,
        "responsible_agent": "agent-7",
        "phones": ["+380501234567"],
    }
    await crm(database, "customer.upserted", data, now)
    async with database.transaction() as session:
        row = (
            await session.scalars(select(Customer).where(Customer.external_id == external_id))
        ).one()
        if status:
            await apply_status(session, row, status, now, "test setup")
        return row.id


async def campaign(database: Database, definition: dict[str, Any], now: datetime) -> None:
    """Save a definition (checked valid first) as the campaign's next version."""
    validate_definition(definition)
    await save_definition(database, definition, "test", now)
