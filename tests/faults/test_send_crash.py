"""SIGKILL the sending process mid-batch, restart it, repeat: every customer gets exactly
one SMS. `make test` runs a reduced batch; `make test-faults` (SWITCHBOARD_FAULT_SCALE=full)
runs 2,000 messages with more kills."""

from __future__ import annotations

import asyncio
import os
import random
import signal
from collections import Counter

import pytest
from sqlalchemy import select

from gateway.core.db.engine import Database
from gateway.core.db.models import OutboundContact
from tests.support.sender_child import ACCOUNT, TOKEN
from tests.support.senders import seed, spawn
from tests.support.twilio_stub import TwilioStub

FULL = os.environ.get("SWITCHBOARD_FAULT_SCALE") == "full"
MESSAGES, KILLS = (2000, 6) if FULL else (240, 2)


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
