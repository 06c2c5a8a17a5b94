"""CRM webhooks fuzzed against the real app on both databases: malformed, oversized,
unsigned, duplicated and reordered bodies. Never a 5xx, never a write for a refused
request, replays never write twice, and the newest event wins whatever the order.

Hypothesis runs in a worker thread; each request runs on the test's event loop, where
the app and its database pool live. `SWITCHBOARD_FUZZ_SCALE=full` runs many more."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from crm_sync.signature import HEADER, sign
from gateway.core.appkeys import SETTINGS
from gateway.core.clock import FixedClock, isoformat_z
from gateway.core.db.engine import Database
from gateway.core.db.models import Customer
from tests.support.auth import WEBHOOK_SECRET
from tests.support.fuzzing import drive, row_counts

Client = TestClient[Any, Any]

FULL = os.environ.get("SWITCHBOARD_FUZZ_SCALE") == "full"
EXAMPLES = 600 if FULL else 40
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=timedelta(seconds=10),  # a hang guard, not a performance figure
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
EVENT_TYPES = [
    "customer.upserted",
    "customer.deleted",
    "customer.activity",
    "payment.scheduled",
    "complaint.created",
    "consent.changed",
    "contact.requested",
    "task.created",
    "agent.upserted",
    "partner.upserted",
]
PHONES = ["+380671234567", "0501112233", "+44 20 7946 0958", "067 765 43 21"]


async def post(client: Client, body: bytes, signature: str | None) -> tuple[int, str]:
    """POST raw bytes with the given signature header (None: no header)."""
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers[HEADER] = signature
    async with client.post("/crm/events", data=body, headers=headers) as response:
        return response.status, await response.text()


def signed(clock: FixedClock, body: bytes) -> str:
    """A valid signature at the clock's time."""
    return sign(WEBHOOK_SECRET, body, int(clock.now().timestamp()))


# NUL is left out of text meant to be valid: it is a known bug of its own (see
# test_a_nul_character_is_refused_like_any_invalid_text) that would mask every other.
texts = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=30)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=12,
)
moments = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2027, 1, 1), timezones=st.just(UTC)
)
external_ids = st.sampled_from(["C-1", "C-2", "C-3"])
customer_data = st.fixed_dictionaries(
    {"external_id": external_ids},
    optional={
        "name": texts,
        "phones": st.lists(st.sampled_from(PHONES), max_size=3),
        "email": st.sampled_from(["a@example.com", "olena@example.org"]),
        "language": st.sampled_from(["uk", "en"]),
        "attributes": st.dictionaries(texts, st.integers(), max_size=3),
    },
)


def envelope(event_id: str, type_: str, occurred_at: datetime, data: Any) -> dict[str, Any]:
    """An event as the CRM sends it."""
    return {"id": event_id, "type": type_, "occurred_at": isoformat_z(occurred_at), "data": data}


@st.composite
def malformed_bodies(draw: st.DrawFn) -> bytes:
    """Bodies the gateway must refuse: broken JSON, wrong shapes, bad fields."""
    event_id = draw(st.text(min_size=1, max_size=20))
    kind = draw(st.integers(0, 5))
    if kind == 0:
        return draw(st.binary(max_size=200))
    if kind == 1:
        return json.dumps(draw(json_values)).encode()
    if kind == 2:  # a known type with data of random shape and bad values
        data = draw(
            st.dictionaries(
                st.sampled_from(
                    [
                        "external_id",
                        "phones",
                        "email",
                        "amount",
                        "due_date",
                        "channel",
                        "at",
                        "kind",
                        "task_id",
                        "capacity",
                    ]
                ),
                json_values,
                max_size=5,
            )
        )
        bad_phones: list[Any] = [["12"], ["not a phone"], "x", [1]]
        data["phones"] = draw(st.sampled_from(bad_phones))
        return json.dumps(
            envelope(event_id, draw(st.sampled_from(EVENT_TYPES)), draw(moments), data)
        ).encode()
    if kind == 3:  # an unknown type
        name = draw(st.text(max_size=20).filter(lambda t: t not in EVENT_TYPES))
        return json.dumps(envelope(event_id, name, draw(moments), {})).encode()
    if kind == 4:  # an envelope missing a key or with one of the wrong type
        document = envelope(event_id, "customer.upserted", draw(moments), {"external_id": "C-1"})
        key = draw(st.sampled_from(sorted(document)))
        if draw(st.booleans()):
            del document[key]
        else:
            # Numbers are left out: pydantic reads one as a Unix time in `occurred_at`.
            document[key] = draw(json_values.filter(lambda v: not isinstance(v, str | int | float)))
        return json.dumps(document).encode()
    # an event for a customer nobody created (refused, nothing written)
    type_ = draw(st.sampled_from(["customer.activity", "complaint.created", "consent.changed"]))
    data = {
        "external_id": "never-created",
        "kind": "order",
        "at": isoformat_z(draw(moments)),
        "topic": "billing",
        "channel": "sms",
        "opted_out": True,
    }
    return json.dumps(envelope(event_id, type_, draw(moments), data)).encode()


async def test_malformed_bodies_are_refused_without_a_write(
    client: Client, database: Database, clock: FixedClock
) -> None:
    statuses: set[int] = set()

    @FUZZ
    @given(body=malformed_bodies())
    def check(body: bytes) -> None:
        before = drive(loop, lambda: row_counts(database))
        status, answer = drive(loop, lambda: post(client, body, signed(clock, body)))
        assert status < 500, answer
        assert status in (400, 409, 422), answer
        assert drive(loop, lambda: row_counts(database)) == before
        statuses.add(status)

    loop = asyncio.get_running_loop()
    await asyncio.to_thread(check)
    assert 422 in statuses and 400 in statuses


async def test_unsigned_badly_signed_and_oversized_bodies_write_nothing(
    client: Client, database: Database, clock: FixedClock
) -> None:
    limit = client.app[SETTINGS].max_body_bytes

    @FUZZ
    @given(
        data=customer_data,
        signature=st.one_of(
            st.none(),
            # What an HTTP client can send at all: printable ASCII.
            st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=80),
            st.builds(lambda t: f"t={t},v1={'0' * 64}", st.integers(0, 2**40)),
            st.just("stale"),
        ),
        padding=st.sampled_from([0, 0, 70_000, 200_000]),
    )
    def check(data: dict[str, Any], signature: str | None, padding: int) -> None:
        document = envelope(f"evt-{data['external_id']}", "customer.upserted", clock.now(), data)
        if padding:
            document["data"]["attributes"] = {"blob": "x" * padding}
        body = json.dumps(document).encode()
        header = signature
        if signature == "stale":  # correctly signed, but six minutes ago
            header = sign(WEBHOOK_SECRET, body, int(clock.now().timestamp()) - 360)
        elif padding:
            header = signed(clock, body)  # only the size is wrong
        before = drive(loop, lambda: row_counts(database))
        status, answer = drive(loop, lambda: post(client, body, header))
        expected = 413 if padding and len(body) > limit else 401
        assert status == expected, answer
        assert drive(loop, lambda: row_counts(database)) == before

    loop = asyncio.get_running_loop()
    await asyncio.to_thread(check)


@st.composite
def reformatted(draw: st.DrawFn, document: dict[str, Any]) -> bytes:
    """The same event serialised differently: key order and whitespace."""
    keys = draw(st.permutations(sorted(document)))
    indent = draw(st.sampled_from([None, 1, 4]))
    return json.dumps({key: document[key] for key in keys}, indent=indent).encode()


async def test_replays_never_write_twice(
    client: Client, database: Database, clock: FixedClock
) -> None:
    fresh = itertools.count()

    @FUZZ
    @given(data=customer_data, when=moments, replays=st.integers(1, 3), st_data=st.data())
    def check(data: dict[str, Any], when: datetime, replays: int, st_data: st.DataObject) -> None:
        event_id = f"evt-replay-{next(fresh)}"  # hypothesis repeats draws; ids must not
        document = envelope(event_id, "customer.upserted", min(when, clock.now()), data)
        body = json.dumps(document).encode()
        status, answer = drive(loop, lambda: post(client, body, signed(clock, body)))
        assert status == 200, answer
        after_first = drive(loop, lambda: row_counts(database))
        for _ in range(replays):
            # The same id again, reserialised or even with different content.
            again = st_data.draw(
                st.one_of(
                    reformatted(document),
                    st.builds(
                        lambda name: json.dumps({**document, "data": {**data, "name": name}}),
                        texts,
                    ).map(str.encode),
                )
            )
            status, answer = drive(loop, partial(post, client, again, signed(clock, again)))
            assert status == 200 and json.loads(answer)["status"] == "duplicate", answer
            assert drive(loop, lambda: row_counts(database)) == after_first

    loop = asyncio.get_running_loop()
    await asyncio.to_thread(check)


async def _stored_name(database: Database, external_id: str) -> str | None:
    async with database.transaction() as session:
        return await session.scalar(
            select(Customer.name).where(Customer.external_id == external_id)
        )


async def test_reordered_events_leave_the_newest_in_place(
    client: Client, database: Database, clock: FixedClock
) -> None:
    fresh = itertools.count()

    @FUZZ
    @given(
        names=st.lists(texts.filter(bool), min_size=2, max_size=5, unique=True),
        st_data=st.data(),
    )
    def check(names: list[str], st_data: st.DataObject) -> None:
        external_id = f"C-order-{next(fresh)}"
        base = clock.now() - timedelta(hours=1)
        events = [
            envelope(
                f"evt-{external_id}-{i}",
                "customer.upserted",
                base + timedelta(seconds=i),
                {"external_id": external_id, "name": name},
            )
            for i, name in enumerate(names)
        ]
        for document in st_data.draw(st.permutations(events)):
            body = json.dumps(document).encode()
            status, answer = drive(loop, partial(post, client, body, signed(clock, body)))
            assert status == 200 and json.loads(answer)["status"] in ("applied", "stale"), answer
        assert drive(loop, lambda: _stored_name(database, external_id)) == names[-1]

    loop = asyncio.get_running_loop()
    await asyncio.to_thread(check)


async def test_a_nul_character_is_refused_like_any_invalid_text(
    client: Client, database: Database, clock: FixedClock
) -> None:
    data = {"external_id": "C-nul", "name": "Ол\x00ена"}
    body = json.dumps(envelope("evt-nul", "customer.upserted", clock.now(), data)).encode()
    before = await row_counts(database)
    status, answer = await post(client, body, signed(clock, body))
    assert status == 422, answer
    assert "data.name" in answer
    assert await row_counts(database) == before
