"""Sender processes for fault tests (sender_child), and customers with SMS due."""

from __future__ import annotations

import asyncio
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from gateway.core.clock import SystemClock
from gateway.core.db.engine import Database
from gateway.core.db.models import Customer, CustomerPhone, OutboundContact
from gateway.core.db.types import new_id

ROOT = Path(__file__).resolve().parents[2]


def customer_rows(count: int, now: datetime) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """`count` active customers, one distinct phone number each (`+38067` and the index)."""
    customers, phones = [], []
    for index in range(count):
        customer_id = new_id("cus")
        number = f"+38067{index:07d}"
        customers.append(
            dict(
                id=customer_id,
                external_id=f"C{index}",
                name=f"Клієнт {index}",
                products=[],
                attributes={},
                status="active",
                sms_opt_out=False,
                email_opt_out=False,
                voice_opt_out=False,
                do_not_contact=False,
                created_at=now,
                updated_at=now,
            )
        )
        phones.append(
            dict(
                customer_id=customer_id,
                e164=number,
                last_digits=number[-9:],
                position=0,
                invalid=False,
            )
        )
    return customers, phones


async def seed_customers(database: Database, count: int) -> list[str]:
    """Insert `count` customers with their phones; returns their ids."""
    customers, phones = customer_rows(count, SystemClock().now())
    async with database.transaction() as session:
        await session.execute(insert(Customer), customers)
        await session.execute(insert(CustomerPhone), phones)
    return [row["id"] for row in customers]


async def seed(database: Database, count: int) -> None:
    """`count` customers, each with one SMS due now."""
    now = SystemClock().now()
    contacts = [
        dict(
            id=new_id("msg"),
            idempotency_key=f"campaign:reminder:{customer_id}:2026-11",
            channel="sms",
            customer_id=customer_id,
            source="campaign",
            body="Нагадуємо про платіж",
            variables={},
            status="pending",
            attempts=0,
            sandbox=False,
            created_at=now,
            updated_at=now,
        )
        for customer_id in await seed_customers(database, count)
    ]
    async with database.transaction() as session:
        await session.execute(insert(OutboundContact), contacts)


async def spawn(database_url: str, base_url: str, *more: str) -> asyncio.subprocess.Process:
    """A sender process (`sender_child`); `more` are its optional arguments."""
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.support.sender_child", database_url, base_url, *more, cwd=ROOT
    )
