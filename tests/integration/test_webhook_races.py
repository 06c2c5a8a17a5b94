"""Concurrent deliveries for one customer: the newest event wins, a repeated id applies once.

On PostgreSQL this drives the single-statement fast path into its fallback (a concurrent
write to the same rows fails the statement, the request reruns in a waiting transaction).
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import func, select

from crm_sync.signature import HEADER, sign
from gateway.core.appkeys import CLOCK
from gateway.core.clock import isoformat_z
from gateway.core.db.engine import Database
from gateway.core.db.models import Customer, CustomerPhone, StatusChange
from tests.support.auth import WEBHOOK_SECRET

Client = TestClient[Any, Any]


async def post(client: Client, event_id: str, seconds: int, name: str, phones: list[str]) -> str:
    now = client.app[CLOCK].now()
    body = json.dumps(
        {
            "id": event_id,
            "type": "customer.upserted",
            "occurred_at": isoformat_z(now + timedelta(seconds=seconds)),
            "data": {"external_id": "C-1", "name": name, "phones": phones},
        }
    ).encode()
    response = await client.post(
        "/crm/events",
        data=body,
        headers={HEADER: sign(WEBHOOK_SECRET, body, int(now.timestamp()))},
    )
    assert response.status == 200, await response.text()
    return str((await response.json())["status"])


async def test_racing_upserts_leave_the_newest_state_and_one_creation(
    client: Client, database: Database
) -> None:
    outcomes = await asyncio.gather(
        *(
            post(client, f"e-{n}", n, f"v{n}", [f"+38067{n:07d}", "+380501112233"])
            for n in range(30)
        )
    )
    assert set(outcomes) <= {"applied", "stale"} and "applied" in outcomes
    async with database.sessions() as session:
        newest = (await session.execute(select(Customer))).scalar_one()
        assert newest.name == "v29"
        assert [p.e164 for p in newest.phones] == ["+380670000029", "+380501112233"]
    same = await asyncio.gather(
        *(post(client, "same-id", 100, "final", ["+380671111111"]) for _ in range(6))
    )
    assert sorted(same) == ["applied"] + ["duplicate"] * 5
    async with database.sessions() as session:
        customer = (await session.execute(select(Customer))).scalar_one()
        phones = (
            (await session.execute(select(CustomerPhone.e164).order_by(CustomerPhone.position)))
            .scalars()
            .all()
        )
        creations = await session.scalar(select(func.count()).select_from(StatusChange))
    assert customer.name == "final" and phones == ["+380671111111"]
    assert creations == 1
