"""Campaign helpers: a base definition, the shipped seeds, customers to target, stored counts."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from gateway.core.db.engine import Database
from gateway.core.db.models import Call, Campaign, CampaignVersion, Customer, Payment

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)

REPO = Path(__file__).resolve().parents[2]

SEEDS = REPO / "config" / "campaigns"


BASE: dict[str, Any] = {
    "name": "spring",
    "schedule": "0 10 * * *",
    "audience": {"field": "status", "op": "==", "value": "warm"},
    "steps": [{"id": "hello", "type": "send", "channel": "sms", "template": "hello"}],
}


async def counts(database: Database) -> tuple[int, int]:
    """(campaigns, versions) stored."""
    async with database.sessions() as session:
        campaigns = await session.scalar(select(func.count()).select_from(Campaign))
        versions = await session.scalar(select(func.count()).select_from(CampaignVersion))
    return int(campaigns or 0), int(versions or 0)


async def add_customers(database: Database) -> None:
    """60 customers: warm/cold/active, uk/en/none, some calling about payments with one due."""
    async with database.transaction() as session:
        for n in range(60):
            cid = f"cus_{n:03d}"
            session.add(
                Customer(
                    id=cid,
                    external_id=f"ext-{n}",
                    name=f"Customer {n}",
                    status=("warm", "cold", "active")[n % 3],
                    language=("uk", "en", None)[n % 3 if n % 5 else 2],
                    products=[],
                    attributes={},
                    created_at=NOW,
                    updated_at=NOW,
                )
            )
        await session.flush()
        for n in range(0, 60, 2):
            cid = f"cus_{n:03d}"
            for k in range(2 if n % 4 == 0 else 1):
                session.add(
                    Call(
                        id=f"call_{n}_{k}",
                        customer_id=cid,
                        started_at=NOW - timedelta(days=3 + k),
                        topic="payment_amount",
                        created_at=NOW,
                        updated_at=NOW,
                    )
                )
            session.add(
                Payment(
                    id=f"pay_{n}",
                    customer_id=cid,
                    contract_id=f"c-{n}",
                    due_date=date(2026, 11, 5),
                    amount=Decimal("1250.00"),
                    currency="UAH",
                    status="due",
                    updated_at=NOW,
                )
            )
