"""Console test data: customers as the CRM sends them, numbered customers by region and
language, a name that tries script injection."""

from __future__ import annotations

from typing import Any

from gateway.core.clock import SystemClock
from gateway.core.db.engine import Database
from gateway.core.db.types import new_id
from gateway.customers.repository import upsert_customer

XSS_NAME = "<img src=x onerror=alert(1)>"


async def add_customer(database: Database, name: str, phone: str, **fields: Any) -> str:
    """A customer as the CRM would send it."""
    async with database.transaction() as session:
        customer, _ = await upsert_customer(
            session, new_id("ext"), {"name": name, **fields}, [phone], SystemClock().now()
        )
        return customer.id


async def add_people(database: Database, people: list[tuple[str, str, str]], prefix: str) -> None:
    """Customers (name, region, language) with numbers `prefix` + their position."""
    for number, (name, region, language) in enumerate(people):
        await add_customer(database, name, f"{prefix}{number}", region=region, language=language)
