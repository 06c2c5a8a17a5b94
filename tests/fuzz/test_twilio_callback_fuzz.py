"""Signed Twilio callbacks fuzzed against the real app on both databases: status
callbacks and inbound texts with arbitrary fields (NUL and oversized values included),
duplicated and reordered. Never a 5xx; replayed status callbacks write nothing more and
change nothing; a contact's state never moves backwards. Replayed inbound texts are
recognised by their MessageSid and change nothing either (two tests at the end pin the
cases the fuzzer found before that was so).

Signatures are made with the Twilio SDK's own RequestValidator, as Twilio makes them.
`SWITCHBOARD_FUZZ_SCALE=full` runs many more examples."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from datetime import timedelta
from functools import partial
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from gateway.app import create_app
from gateway.core.clock import FixedClock
from gateway.core.db.engine import Database
from gateway.core.db.models import Base, Customer, OutboundContact
from gateway.core.db.types import new_id
from gateway.core.http.auth import TokenRegistry
from gateway.messages.twilio_http import PRICE_TASKS
from gateway.settings import Settings
from tests.support.factories import make_customer
from tests.support.fuzzing import drive, row_counts
from tests.support.twilio_app import twilio_configured, twilio_signed

Client = TestClient[Any, Any]

FULL = os.environ.get("SWITCHBOARD_FUZZ_SCALE") == "full"
FUZZ = settings(
    max_examples=400 if FULL else 25,
    deadline=timedelta(seconds=10),  # a hang guard, not a performance figure
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
PHONE = "+380671234567"
SID = "SM" + "a" * 32
STATUS_PATH, INBOUND_PATH = "/providers/twilio/status", "/providers/twilio/inbound"
# How far along a contact is; a callback may move it right, never left.
RANK = {"sending": 0, "unknown": 0, "sent": 1, "delivered": 2, "undelivered": 2, "failed": 2}

# Anything a form can carry (surrogates cannot be encoded at all).
any_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)
oversized = st.builds(lambda n: "x" * n, st.sampled_from([2_000, 20_000]))
statuses = st.sampled_from(
    ["queued", "sending", "sent", "delivered", "read", "undelivered", "failed", "canceled"]
)
status_forms = st.fixed_dictionaries(
    {
        "MessageSid": st.one_of(st.just(SID), any_text),
        "MessageStatus": st.one_of(statuses, any_text),
    },
    optional={"ErrorCode": st.one_of(st.sampled_from(["30003", "30007"]), any_text)},
)
inbound_forms = st.fixed_dictionaries(
    {
        "MessageSid": st.one_of(st.sampled_from(["SM1", "SM2"]), any_text),
        "From": st.one_of(st.sampled_from([PHONE, "0671234567", "+15005550006"]), any_text),
        "Body": st.one_of(st.sampled_from(["STOP", "START", "Дякую", ""]), any_text, oversized),
    }
)
callbacks = st.lists(
    st.one_of(
        st.tuples(st.just(STATUS_PATH), status_forms),
        st.tuples(st.just(INBOUND_PATH), inbound_forms),
    ),
    min_size=1,
    max_size=4,
)


@pytest.fixture
async def client(
    settings: Settings, database: Database, clock: FixedClock, tokens: TokenRegistry
) -> AsyncIterator[Client]:
    """The real app with Twilio configured (its callbacks check signatures)."""
    # Price look-ups fail fast, offline.
    configured = twilio_configured(settings, twilio_api_base="http://127.0.0.1:9")
    app = create_app(configured, clock=clock, tokens=tokens, workers=False)
    async with TestClient(TestServer(app, host="127.0.0.1")) as test_client:
        yield test_client


async def post(client: Client, path: str, form: dict[str, str], query: str) -> tuple[int, str]:
    """POST `form` signed the way Twilio signs it (over the public URL and the form)."""
    async with client.post(
        path + query, data=form, headers=twilio_signed(path + query, form)
    ) as response:
        return response.status, await response.text()


async def table_rows(database: Database) -> dict[str, int]:
    """Rows per table (the ones holding any), to name what a replay wrote."""
    names = [table.name for table in Base.metadata.sorted_tables]
    return {name: n for name, n in zip(names, await row_counts(database), strict=True) if n}


async def settled(client: Client) -> None:
    """Wait for the price look-ups a final status starts in the background."""
    tasks = client.app[PRICE_TASKS]
    while tasks:
        await asyncio.gather(*tasks, return_exceptions=True)


async def contact_state(database: Database, contact_id: str) -> tuple[Any, ...]:
    """What status callbacks decide."""
    async with database.sessions() as session:
        row = await session.get(OutboundContact, contact_id)
        assert row is not None
        return (row.status, row.error_code, row.delivered_at, row.failed_at)


async def statuses_of(database: Database) -> list[str]:
    async with database.sessions() as session:
        return list(await session.scalars(select(OutboundContact.status)))


async def sms_in_flight(database: Database, clock: FixedClock) -> str:
    """A customer and an SMS handed to Twilio (`sending`, its sid known); the SMS's id."""
    customer = await make_customer(database, clock.now(), "C-1", [PHONE])
    contact_id = new_id("msg")
    async with database.transaction() as session:
        session.add(
            OutboundContact(
                id=contact_id,
                idempotency_key="fuzz:1",
                channel="sms",
                customer_id=customer,
                body="Нагадуємо про платіж",
                to_address=PHONE,
                variables={},
                status="sending",
                provider_id=SID,
                attempts=1,
                created_at=clock.now(),
                updated_at=clock.now(),
            )
        )
    return contact_id


async def test_signed_callbacks_never_5xx_and_replays_change_nothing(
    client: Client, database: Database, clock: FixedClock
) -> None:
    contact_id = await sms_in_flight(database, clock)
    answered: set[int] = set()

    @FUZZ
    @given(sequence=callbacks, with_contact=st.booleans())
    def check(sequence: list[tuple[str, dict[str, str]]], with_contact: bool) -> None:
        query = f"?contact={contact_id}" if with_contact else ""
        for path, form in sequence:
            before = drive(loop, lambda: statuses_of(database))
            status, text = drive(loop, partial(post, client, path, form, query))
            assert status < 500, text
            answered.add(status)
            after = drive(loop, lambda: statuses_of(database))
            assert all(RANK[b] <= RANK[a] for b, a in zip(before, after, strict=True)), (
                before,
                after,
            )
        # Every callback again, as Twilio retries them: nothing more written or changed.
        drive(loop, lambda: settled(client))
        counts = drive(loop, lambda: table_rows(database))
        state = drive(loop, lambda: contact_state(database, contact_id))
        for path, form in sequence:
            status, text = drive(loop, partial(post, client, path, form, query))
            assert status < 500, text
        drive(loop, lambda: settled(client))
        assert drive(loop, lambda: table_rows(database)) == counts
        assert drive(loop, lambda: contact_state(database, contact_id)) == state

    loop = asyncio.get_running_loop()
    await asyncio.to_thread(check)
    # Not vacuous: callbacks were accepted, and some refused.
    assert {204, 200} & answered and {422} & answered


# Found by the fuzzer above: inbound texts were applied again when Twilio retried them.
async def test_a_replayed_reply_marks_nothing_it_did_not_mark_the_first_time(
    client: Client, database: Database, clock: FixedClock
) -> None:
    contact_id = await sms_in_flight(database, clock)
    reply = {"MessageSid": "SM-reply", "From": PHONE, "Body": "Дякую"}
    assert (await post(client, INBOUND_PATH, reply, ""))[0] == 200
    # The status callback arrives after the reply (Twilio does not order the two).
    sent = {"MessageSid": SID, "MessageStatus": "sent"}
    assert (await post(client, STATUS_PATH, sent, f"?contact={contact_id}"))[0] == 204
    async with database.sessions() as session:
        first = (await session.get(OutboundContact, contact_id)).replied_at  # type: ignore[union-attr]
    assert (await post(client, INBOUND_PATH, reply, ""))[0] == 200  # Twilio retries it
    async with database.sessions() as session:
        again = (await session.get(OutboundContact, contact_id)).replied_at  # type: ignore[union-attr]
    assert again == first


async def test_a_replayed_stop_does_not_undo_a_newer_start(
    client: Client, database: Database, clock: FixedClock
) -> None:
    await make_customer(database, clock.now(), "C-1", [PHONE])
    stop = {"MessageSid": "SM-stop", "From": PHONE, "Body": "STOP"}
    start = {"MessageSid": "SM-start", "From": PHONE, "Body": "START"}
    for form in (stop, start, stop):  # the STOP delivered again after the START
        assert (await post(client, INBOUND_PATH, form, ""))[0] == 200
    async with database.sessions() as session:
        opted_out = await session.scalar(select(Customer.sms_opt_out))
    assert opted_out is False
