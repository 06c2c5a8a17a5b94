"""Builders for report tests: customers, campaigns, arms, calls and ledger lines in bulk."""

from __future__ import annotations

import random
from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import insert

from gateway.core.db.engine import Database
from gateway.core.db.models import (
    Call,
    Campaign,
    CampaignVersion,
    Customer,
    ExperimentAssignment,
)

BATCH = 2_000


async def insert_rows(database: Database, model: Any, rows: Iterable[dict[str, Any]]) -> None:
    """Insert plain rows in batches (core executemany)."""
    batch: list[dict[str, Any]] = []
    async with database.transaction() as session:
        for row in rows:
            batch.append(row)
            if len(batch) >= BATCH:
                await session.execute(insert(model), batch)
                batch = []
        if batch:
            await session.execute(insert(model), batch)


async def add_customers(
    database: Database, count: int, at: datetime, prefix: str = "c", status: str = "active"
) -> list[str]:
    """`count` customers named `<prefix>000001`…; returns their ids."""
    ids = [f"{prefix}{i:06d}" for i in range(count)]
    await insert_rows(
        database,
        Customer,
        (
            {
                "id": cid,
                "external_id": f"ext-{cid}",
                "name": "",
                "status": status,
                "created_at": at,
                "updated_at": at,
                "products": [],
                "attributes": {},
            }
            for cid in ids
        ),
    )
    return ids


async def add_campaign(
    database: Database, name: str, at: datetime, topic: str | None = "payment_amount"
) -> str:
    """A campaign with one version whose audience tests `topic_calls_30d.<topic>`."""
    campaign_id = f"cmp_{name}"
    audience: dict[str, Any] = {"all": []}
    if topic:
        audience = {"all": [{"field": f"topic_calls_30d.{topic}", "op": ">=", "value": 1}]}
    async with database.transaction() as session:
        session.add(Campaign(id=campaign_id, name=name, created_at=at, updated_at=at))
        await session.flush()
        session.add(
            CampaignVersion(
                id=f"cv_{name}",
                campaign_id=campaign_id,
                version=1,
                definition={"name": name, "audience": audience, "steps": []},
                created_at=at,
            )
        )
    return campaign_id


async def assign(
    database: Database, campaign_id: str, arms: dict[str, list[str]], at: datetime
) -> None:
    """Store experiment arms (`holdout` is the control group)."""
    await insert_rows(
        database,
        ExperimentAssignment,
        (
            {"campaign_id": campaign_id, "customer_id": cid, "arm": arm, "assigned_at": at}
            for arm, ids in arms.items()
            for cid in ids
        ),
    )


def call_row(
    number: int,
    customer_id: str | None,
    at: datetime,
    *,
    topic: str | None = "payment_amount",
    talk_seconds: int | None = 150,
    direction: str = "inbound",
) -> dict[str, Any]:
    """One finished call record."""
    answered = talk_seconds is not None and talk_seconds > 0
    return {
        "id": f"call{number:08d}",
        "direction": direction,
        "state": "ended",
        "customer_id": customer_id,
        "match": "exact" if customer_id else "none",
        "started_at": at,
        "answered_at": at if answered else None,
        "ended_at": at + timedelta(seconds=talk_seconds or 20),
        "talk_seconds": talk_seconds,
        "disposition": "ANSWERED" if answered else "NO ANSWER",
        "topic": topic,
        "created_at": at,
        "updated_at": at,
        "details": {},
    }


def ledger_row(
    number: int,
    customer_id: str | None,
    campaign_id: str | None,
    at: datetime,
    amount: Decimal = Decimal("0.30"),
    *,
    currency: str = "UAH",
    channel: str = "sms",
    source: str = "configured",
) -> dict[str, Any]:
    """One ledger line for a contact."""
    return {
        "id": f"cost{number:08d}",
        "at": at,
        "channel": channel,
        "customer_id": customer_id,
        "campaign_id": campaign_id,
        "contact_id": f"oc{number:08d}",
        "amount": amount,
        "currency": currency,
        "source": source,
        "units": 1,
    }


async def callers(
    database: Database,
    ids: list[str],
    share: float,
    rng: random.Random,
    start: datetime,
    first_number: int,
) -> int:
    """Each customer calls once on the topic with probability `share`; returns calls."""
    rows: list[dict[str, Any]] = []
    for cid in ids:
        if rng.random() < share:
            at = start + timedelta(minutes=rng.randrange(60 * 24 * 28))
            rows.append(call_row(first_number + len(rows), cid, at))
    await insert_rows(database, Call, rows)
    return len(rows)
