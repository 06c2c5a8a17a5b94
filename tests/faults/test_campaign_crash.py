"""SIGKILL the gateway's worker process at random points of a real campaign run (enroll,
advance, write contacts, send SMS through the Twilio SDK to the stub), restart it, repeat:
every customer in the audience gets exactly one SMS. `make test` runs 300 recipients and
3 kills; `make test-faults` (SWITCHBOARD_FAULT_SCALE=full) 10,000 and 20.

Each process (`sender_child` with an AS_OF) ticks the scheduler beside the sender. A kill
between an enrollment batch's claim and its commit leaves that batch leased for the
scheduler's LEASE (five minutes); rather than wait, each restart ticks LEASE later than
the one before, as a restart after the lease ran out would. The sender keeps the real
clock: its own leases are seconds.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from gateway.campaigns.advance import LEASE
from gateway.campaigns.store import save_definition
from gateway.core.clock import SystemClock
from gateway.core.db.engine import Database
from gateway.core.db.models import Enrollment, OutboundContact, Template
from tests.support.sender_child import ACCOUNT, TOKEN
from tests.support.senders import seed_customers, spawn
from tests.support.twilio_stub import TwilioStub

FULL = os.environ.get("SWITCHBOARD_FAULT_SCALE") == "full"
RECIPIENTS, KILLS = (10_000, 20) if FULL else (300, 3)

CAMPAIGN = {
    "name": "crash-reminder",
    "schedule": "0 10 * * *",
    "occurrence": "once",
    "audience": {"field": "status", "op": "==", "value": "active"},
    "steps": [{"id": "remind", "type": "send", "channel": "sms", "template": "crash-reminder"}],
}


async def seed_campaign(database: Database) -> None:
    now = SystemClock().now()
    async with database.transaction() as session:
        session.add(
            Template(
                name="crash-reminder",
                channel="sms",
                subject={},
                body={"uk": "Нагадуємо про платіж. Відповідь STOP - відписатися."},
                variables=[],
                version=1,
                created_at=now,
                updated_at=now,
            )
        )
    # Saved a day ago: its daily schedule has fired since, so the first tick runs it.
    await save_definition(database, CAMPAIGN, "fault-test", now - timedelta(days=1))


async def written(database: Database) -> int:
    async with database.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(OutboundContact)) or 0)


async def run_progress(database: Database) -> int:
    """How far the campaign run got: enrollments plus contacts written (0 to 2 × RECIPIENTS)."""
    async with database.sessions() as session:
        enrolled = await session.scalar(select(func.count()).select_from(Enrollment))
    return int(enrolled or 0) + await written(database)


@pytest.mark.slow
async def test_a_campaign_killed_at_random_points_sends_each_sms_exactly_once(
    database: Database,
) -> None:
    stub = TwilioStub(ACCOUNT, TOKEN, latency=0.01, record_requests=False)
    base_url = await stub.start()
    rng = random.Random(29)
    await seed_customers(database, RECIPIENTS)
    await seed_campaign(database)
    start, started = SystemClock().now(), time.monotonic()
    kills: list[tuple[int, int]] = []  # (contacts written, SMS created) at each kill
    generation = 0

    async def next_process() -> asyncio.subprocess.Process:
        nonlocal generation
        as_of = start + generation * (LEASE + timedelta(minutes=1))
        generation += 1
        return await spawn(database.url, base_url, as_of.isoformat())

    try:
        while len(kills) < KILLS:
            child = await next_process()
            # Polling counters another process drives: there is no event to wait on.
            progress = await run_progress(database)
            if progress < 2 * RECIPIENTS:  # the campaign run is not over: kill inside it
                # Enrollments and their contacts commit together, a batch at a time: aim
                # below the last batch's commit so the kill can land before it.
                target = rng.randint(progress + 1, max(progress + 1, 3 * RECIPIENTS // 2))
                while await run_progress(database) < target and child.returncode is None:  # noqa: ASYNC110
                    await asyncio.sleep(0.02)
            else:
                left = RECIPIENTS - len(stub.messages)
                target = len(stub.messages) + rng.randint(0, left // (2 * (KILLS - len(kills))))
                while len(stub.messages) < target and child.returncode is None:  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
                await asyncio.sleep(rng.uniform(0.0, 1.5))
            if child.returncode is not None:
                break  # finished before it could be killed: reported by the assert below
            child.send_signal(signal.SIGKILL)
            await child.wait()
            kills.append((await written(database), len(stub.messages)))
        final = await next_process()
        assert await asyncio.wait_for(final.wait(), 900) == 0
    finally:
        await stub.close()
    elapsed = time.monotonic() - started

    per_number = Counter(message.to for message in stub.messages.values())
    during_run = sum(1 for contacts, _ in kills if contacts < RECIPIENTS)
    print(
        f"\n{RECIPIENTS} recipients, {len(kills)} kills ({during_run} before every contact "
        f"was written), {elapsed:.1f} s; stub: {sum(per_number.values())} SMS to "
        f"{len(per_number)} numbers; kills at (contacts, SMS): {kills}"
    )
    assert len(kills) == KILLS, f"a process finished before its kill; kills: {kills}"
    doubles = {number: n for number, n in per_number.items() if n > 1}
    assert not doubles, f"sent twice: {doubles}"
    assert len(per_number) == RECIPIENTS, f"{RECIPIENTS - len(per_number)} customers got nothing"
    async with database.sessions() as session:
        statuses = Counter((await session.execute(select(OutboundContact.status))).scalars())
        states = Counter((await session.execute(select(Enrollment.state))).scalars())
    assert statuses == Counter({"sent": RECIPIENTS})
    assert states == Counter({"done": RECIPIENTS})
