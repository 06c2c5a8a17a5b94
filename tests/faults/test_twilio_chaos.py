"""Twilio failing 30% of requests (5xx, and timeouts the SDK really runs into, before and
after the message was created) → every due message is sent exactly once.

The interesting failures are those where Twilio took the message and the answer was lost
(`timeout_after_create`, `drop_after_create`) or was a gateway's 504
(`error_504_after_create`): the sender must not send again. It doesn't
because such an outcome is `unknown` and resolved by asking Twilio (`find_sent`: to the
same number, the same text, since the attempt) before any retry; found → `sent` with
Twilio's sid. Lookups fail too, so the resolution itself has to survive 5xx and timeouts.

Backoffs and the ten-minute resolution grace are the production ones: a FixedClock, shared
with the stub so its message times agree with ours, jumps ahead whenever nothing is due.
`make test` sends a reduced batch; `make test-faults` 2,000.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from pydantic import SecretStr
from sqlalchemy import select

from adapters.twilio import TwilioAdapter
from channels.sms import SmsChannel
from gateway.core.clock import FixedClock
from gateway.core.db.engine import Database
from gateway.core.db.models import CustomerPhone, OutboundContact
from gateway.core.policy import ContactPolicy
from gateway.messages.pipeline import SendWorker
from gateway.messages.prepare import Preparer
from gateway.settings import Settings
from tests.support.senders import seed
from tests.support.twilio_stub import CREATE_FAULTS, LOOKUP_FAULTS, Chaos, TwilioStub

FULL = os.environ.get("SWITCHBOARD_FAULT_SCALE") == "full"
MESSAGES = 2000 if FULL else 150
ACCOUNT, TOKEN = "ACchaos", "chaos-token"
CLIENT_TIMEOUT = 0.3  # seconds, real: the SDK's aiohttp session gives up after this
FINAL = {"sent", "failed", "skipped", "unknown"}


@pytest.fixture
async def stub(clock: FixedClock) -> AsyncIterator[TwilioStub]:
    """The stub failing 30% of requests; held ones answer well after the client gave up."""
    fake = TwilioStub(
        ACCOUNT,
        TOKEN,
        clock=clock.now,
        record_requests=False,
        chaos=Chaos(share=0.3, hold_seconds=CLIENT_TIMEOUT * 2.5),
        hold_seconds=0.05,  # drop_after_create: the connection dies soon after the create
    )
    await fake.start()
    yield fake
    await fake.close()


def sender(database: Database, clock: FixedClock, base_url: str) -> tuple[SendWorker, SmsChannel]:
    settings = Settings(
        database_url=database.url,
        twilio_account_sid=ACCOUNT,
        twilio_auth_token=SecretStr(TOKEN),
        twilio_from="+15005550006",
        twilio_api_base=base_url,
        policy=ContactPolicy(windows={}, frequency_caps={}),
    )
    adapter = TwilioAdapter(ACCOUNT, TOKEN, api_base=base_url, timeout_seconds=CLIENT_TIMEOUT)
    channel = SmsChannel(adapter, settings)
    worker = SendWorker(
        database, settings, clock, {"sms": channel}, Preparer(settings), concurrency=50, batch=200
    )
    return worker, channel


async def statuses(database: Database) -> Counter[str]:
    async with database.sessions() as session:
        return Counter((await session.execute(select(OutboundContact.status))).scalars())


@pytest.mark.slow
async def test_every_due_message_is_sent_once_through_a_provider_failing_30_percent(
    database: Database, clock: FixedClock, stub: TwilioStub
) -> None:
    await seed(database, MESSAGES)
    worker, channel = sender(database, clock, stub.base_url)
    started, passes = time.monotonic(), 0
    try:
        # Bounded: 8 attempts with backoffs of at most an hour, plus resolution rechecks.
        for passes in range(1, 2000):  # noqa: B007 (reported below)
            if not await worker.run_once():
                if set(await statuses(database)) <= FINAL:
                    break
                clock.advance(timedelta(minutes=1))
    finally:
        await channel.close()
    elapsed = time.monotonic() - started

    final = await statuses(database)
    per_number = Counter(message.to for message in stub.messages.values())
    print(
        f"\n{MESSAGES} messages, {passes} passes, {elapsed:.1f} s; statuses {dict(final)}; "
        f"stub: {sum(per_number.values())} created; faults {dict(stub.chaos_seen)}"
    )
    assert final == Counter({"sent": MESSAGES}), final
    doubles = {number: n for number, n in per_number.items() if n > 1}
    assert not doubles, f"sent twice: {doubles}"
    assert len(per_number) == MESSAGES
    # Each contact records the very message Twilio holds for its number.
    async with database.sessions() as session:
        rows = (
            await session.execute(
                select(CustomerPhone.e164, OutboundContact.provider_id).join(
                    OutboundContact, OutboundContact.customer_id == CustomerPhone.customer_id
                )
            )
        ).all()
    by_number = {message.to: sid for sid, message in stub.messages.items()}
    assert {number: sid for number, sid in rows} == by_number
    # Not vacuous: every failure mode happened, the double-send traps included.
    missing = [mode for mode in CREATE_FAULTS + LOOKUP_FAULTS if not stub.chaos_seen[mode]]
    assert not missing, f"never exercised: {missing}"
