"""SIGKILL the sending process mid-batch, restart it, repeat: every customer gets exactly
one SMS. `make test` runs a reduced batch; `make test-faults` (SWITCHBOARD_FAULT_SCALE=full)
runs 2,000 messages with more kills."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select

from gateway.core.clock import SystemClock
from gateway.core.db.engine import Database
from gateway.core.db.models import Customer, CustomerPhone, OutboundContact
from gateway.core.db.types import new_id
from tests.faults.sender_child import ACCOUNT, TOKEN
from tests.support.twilio_stub import TwilioStub

FULL = os.environ.get("SWITCHBOARD_FAULT_SCALE") == "full"
MESSAGES, KILLS = (2000, 6) if FULL else (240, 2)
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
        sys.executable, "-m", "tests.faults.sender_child", database_url, base_url, *more, cwd=ROOT
    )


@pytest.mark.slow
async def test_killed_senders_never_send_twice_nor_lose_a_message(database: Database) -> None:
    stub = TwilioStub(ACCOUNT, TOKEN, latency=0.01, record_requests=False)
    base_url = await stub.start()
    rng = random.Random(11)
    try:
        await seed(database, MESSAGES)
        killed = 0
        for _ in range(KILLS):
            child = await spawn(database.url, base_url)
            target = len(stub.messages) + rng.randint(MESSAGES // (3 * KILLS), MESSAGES // KILLS)
            # Polling a counter another process drives: there is no event to wait on.
            while len(stub.messages) < target and child.returncode is None:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
            if child.returncode is None:
                child.send_signal(signal.SIGKILL)
                killed += 1
            await child.wait()
        assert killed == KILLS, "a sender finished before it could be killed mid-batch"
        final = await spawn(database.url, base_url)
        assert await asyncio.wait_for(final.wait(), 300) == 0
    finally:
        await stub.close()

    per_number = Counter(message.to for message in stub.messages.values())
    assert len(per_number) == MESSAGES, f"{MESSAGES - len(per_number)} customers got nothing"
    doubles = {number: n for number, n in per_number.items() if n > 1}
    assert not doubles, f"sent twice: {doubles}"
    async with database.sessions() as session:
        statuses = Counter((await session.execute(select(OutboundContact.status))).scalars())
    assert statuses == Counter({"sent": MESSAGES})
