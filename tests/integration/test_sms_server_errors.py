"""A 5xx answer to a Twilio create is "maybe sent": looked up before any resend.

The real SDK talks to the loopback stub; the real send worker runs on SQLite and
PostgreSQL. A gateway in front of Twilio may answer 502/504 after Twilio created the
message: the contact ends `sent` with that message's sid, and nothing is sent again.
A 5xx where nothing was created: the message is sent once more, after the lookup found
nothing for the resolution grace.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import select

from adapters.twilio import TwilioAdapter
from channels.sms import SmsChannel
from gateway.core.clock import FixedClock
from gateway.core.db.engine import Database
from gateway.core.db.models import OutboundContact
from gateway.core.db.types import new_id
from gateway.core.policy import ContactPolicy
from gateway.messages.pipeline import RESOLVE_GRACE, SendWorker
from gateway.messages.prepare import Preparer
from gateway.settings import Settings
from tests.support.factories import make_customer
from tests.support.twilio_stub import TwilioStub

ACCOUNT = "AC" + "5" * 32
TOKEN = "twilio-token-for-5xx-tests"
PHONE = "+380671234567"
TEXT = "Нагадуємо: платіж 25.11"


@pytest.fixture
async def stub(clock: FixedClock) -> AsyncIterator[TwilioStub]:
    """Twilio's API on loopback, on the test clock."""
    fake = TwilioStub(ACCOUNT, TOKEN, clock=clock.now)
    await fake.start()
    yield fake
    await fake.close()


@pytest.fixture
async def sender(
    database: Database, clock: FixedClock, stub: TwilioStub
) -> AsyncIterator[SendWorker]:
    """The send worker with the real SMS channel pointed at the stub."""
    settings = Settings(
        database_url=database.url,
        twilio_account_sid=ACCOUNT,
        twilio_auth_token=TOKEN,
        twilio_from="+15005550006",
        twilio_api_base=stub.base_url,
        policy=ContactPolicy(windows={}, frequency_caps={}),
    )
    channel = SmsChannel(TwilioAdapter(ACCOUNT, TOKEN, api_base=stub.base_url), settings)
    yield SendWorker(database, settings, clock, {"sms": channel}, Preparer(settings))
    await channel.close()


async def _due_contact(database: Database, clock: FixedClock) -> str:
    customer = await make_customer(database, clock.now(), "C-5XX", [PHONE])
    contact_id = new_id("msg")
    async with database.transaction() as session:
        session.add(
            OutboundContact(
                id=contact_id,
                idempotency_key=f"test:5xx:{contact_id}",
                channel="sms",
                customer_id=customer,
                body=TEXT,
                variables={},
                status="pending",
                attempts=0,
                created_at=clock.now(),
                updated_at=clock.now(),
            )
        )
    return contact_id


async def _contact(database: Database, contact_id: str) -> OutboundContact:
    async with database.sessions() as session:
        return (
            await session.execute(select(OutboundContact).where(OutboundContact.id == contact_id))
        ).scalar_one()


@pytest.mark.parametrize("status", [502, 504])
async def test_a_gateway_error_after_twilio_created_the_message_is_not_sent_again(
    database: Database, clock: FixedClock, stub: TwilioStub, sender: SendWorker, status: int
) -> None:
    contact_id = await _due_contact(database, clock)
    stub.errors_after_create[PHONE] = status
    await sender.run_once()
    (created,) = stub.messages.values()
    row = await _contact(database, contact_id)
    assert (row.status, row.provider_id, row.attempts) == ("sent", created.sid, 1)
    # Nothing is left to send, however long we wait.
    clock.advance(RESOLVE_GRACE * 3)
    assert await sender.run_once() == 0
    assert len(stub.creates) == 1 and len(stub.messages) == 1


@pytest.mark.parametrize(("status", "code"), [(500, 20500), (503, 20503)])
async def test_a_server_error_that_created_nothing_is_sent_once_more_after_the_lookup(
    database: Database,
    clock: FixedClock,
    stub: TwilioStub,
    sender: SendWorker,
    status: int,
    code: int,
) -> None:
    contact_id = await _due_contact(database, clock)
    stub.errors[PHONE] = (status, code, "Service unavailable")
    await sender.run_once()
    assert not stub.messages
    row = await _contact(database, contact_id)
    # Not resent blindly: it stays `sending` until the lookup has had its grace.
    assert (row.status, row.error_code) == ("sending", None)
    del stub.errors[PHONE]
    clock.advance(timedelta(minutes=3))
    await sender.run_once()
    assert not stub.messages and (await _contact(database, contact_id)).status == "sending"
    clock.advance(RESOLVE_GRACE)
    await sender.run_once()
    (created,) = stub.messages.values()
    row = await _contact(database, contact_id)
    assert (row.status, row.provider_id, row.attempts) == ("sent", created.sid, 2)
    assert len(stub.creates) == 2
