"""SMS over the real Twilio SDK to a local Twilio stub, and Twilio's webhooks into the app."""

from __future__ import annotations

import asyncio
import base64
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from adapters.twilio import TwilioAdapter
from channels.base import DeliveryError, Outgoing
from channels.sandbox import SandboxChannel
from channels.sms import STATUS_PATH, SmsChannel, status_callback_url
from gateway.app import create_app
from gateway.core.appkeys import SETTINGS
from gateway.core.clock import FixedClock
from gateway.core.db.engine import Database
from gateway.core.db.models import CostEntry, Customer, CustomerPhone, OutboundContact, OutboxItem
from gateway.core.db.types import new_id
from gateway.core.http.auth import TokenRegistry
from gateway.messages import twilio_http
from gateway.messages.twilio_prices import settle_prices
from gateway.settings import Settings
from tests.support.auth import WEBHOOK_SECRET
from tests.support.factories import make_customer
from tests.support.twilio_stub import TwilioStub

ACCOUNT = "AC" + "0" * 32
TOKEN = "twilio-auth-token-for-tests"
SENDER = "+15005550006"
CUSTOMER_PHONE = "+380671234567"
OPTED_OUT = "+380671110000"
INVALID = "+380671110001"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def stub(clock: FixedClock) -> AsyncIterator[TwilioStub]:
    """Twilio's API on loopback, on the test clock."""
    fake = TwilioStub(ACCOUNT, TOKEN, clock=clock.now)
    fake.errors[OPTED_OUT] = (400, 21610, "Attempt to send to unsubscribed recipient")
    fake.errors[INVALID] = (400, 21211, "Invalid 'To' Phone Number")
    await fake.start()
    yield fake
    await fake.close()


@pytest.fixture
async def adapter(stub: TwilioStub) -> AsyncIterator[TwilioAdapter]:
    """The real adapter (real SDK) pointed at the stub."""
    real = TwilioAdapter(ACCOUNT, TOKEN, api_base=stub.base_url, timeout_seconds=2.0)
    yield real
    await real.close()


def _settings(database_url: str, api_base: str, port: int) -> Settings:
    return Settings(
        database_url=database_url,
        crm_webhook_secret=WEBHOOK_SECRET,
        twilio_account_sid=ACCOUNT,
        twilio_auth_token=TOKEN,
        twilio_from=SENDER,
        twilio_api_base=api_base,
        public_url=f"http://127.0.0.1:{port}",
    )


@pytest.fixture
def channel(adapter: TwilioAdapter, stub: TwilioStub) -> SmsChannel:
    """The SMS channel; callbacks name an address nobody listens on (no app here)."""
    return SmsChannel(adapter, _settings("sqlite+aiosqlite://", stub.base_url, 9))


def _outgoing(to: str = CUSTOMER_PHONE, text: str = "Ваш платіж завтра", cid: str = "") -> Outgoing:
    contact_id = cid or new_id("msg")
    return Outgoing(contact_id, f"test:{contact_id}", "sms", to, text)


# --- the channel against the stub -------------------------------------------------


async def test_send_speaks_twilios_messages_api(channel: SmsChannel, stub: TwilioStub) -> None:
    message = _outgoing(text="a" * 150 + "€" * 10)
    accepted = await channel.send(message)
    assert accepted.provider_id in stub.messages and str(accepted.status) == "sent"
    assert accepted.segments == 2  # 170 septets: the euros count twice
    request = stub.creates[-1]
    assert request.content_type == "application/x-www-form-urlencoded"
    expected_auth = "Basic " + base64.b64encode(f"{ACCOUNT}:{TOKEN}".encode()).decode()
    assert request.authorization == expected_auth
    assert request.form == {
        "To": CUSTOMER_PHONE,
        "From": SENDER,
        "Body": message.text,
        "StatusCallback": f"http://127.0.0.1:9{STATUS_PATH}?contact={message.contact_id}",
    }


@pytest.mark.parametrize(
    ("number", "reason", "code"),
    [(OPTED_OUT, "opted_out", "21610"), (INVALID, "invalid_number", "21211")],
)
async def test_refusals_are_final_with_a_reason(
    channel: SmsChannel, number: str, reason: str, code: str
) -> None:
    with pytest.raises(DeliveryError) as caught:
        await channel.send(_outgoing(to=number))
    assert (caught.value.outcome, caught.value.reason, caught.value.code) == (
        "failed",
        reason,
        code,
    )


@pytest.mark.parametrize("code", [21614, 21612, 30006])
async def test_unreachable_numbers_are_invalid(
    channel: SmsChannel, stub: TwilioStub, code: int
) -> None:
    stub.errors["+380501112233"] = (400, code, "cannot route")
    with pytest.raises(DeliveryError) as caught:
        await channel.send(_outgoing(to="+380501112233"))
    assert (caught.value.outcome, caught.value.reason) == ("failed", "invalid_number")


async def test_other_refusals_fail_without_a_customer_reason(
    channel: SmsChannel, stub: TwilioStub
) -> None:
    stub.errors["+380501112233"] = (400, 21606, "The From phone number is not valid")
    with pytest.raises(DeliveryError) as caught:
        await channel.send(_outgoing(to="+380501112233"))
    assert (caught.value.outcome, caught.value.reason, caught.value.code) == (
        "failed",
        None,
        "21606",
    )


@pytest.mark.parametrize(("status", "code"), [(429, 20429), (400, 20429)])
async def test_throttling_is_retried(
    channel: SmsChannel, stub: TwilioStub, status: int, code: int
) -> None:
    stub.errors["+380501112233"] = (status, code, "busy")
    with pytest.raises(DeliveryError) as caught:
        await channel.send(_outgoing(to="+380501112233"))
    assert caught.value.outcome == "retry"
    assert not stub.messages


@pytest.mark.parametrize(("status", "code"), [(500, 20500), (503, 20503), (502, 0)])
async def test_server_errors_to_a_create_are_unknown_not_retried(
    channel: SmsChannel, stub: TwilioStub, status: int, code: int
) -> None:
    # Twilio may have created the message before answering 5xx: the pipeline looks first.
    stub.errors["+380501112233"] = (status, code, "busy")
    with pytest.raises(DeliveryError) as caught:
        await channel.send(_outgoing(to="+380501112233"))
    assert caught.value.outcome == "unknown"


async def test_a_gateway_504_after_the_create_is_unknown_and_find_sent_finds_it(
    channel: SmsChannel, stub: TwilioStub, clock: FixedClock
) -> None:
    stub.errors_after_create[CUSTOMER_PHONE] = 504
    message, since = _outgoing(), clock.now()
    with pytest.raises(DeliveryError) as caught:
        await channel.send(message)
    assert caught.value.outcome == "unknown"
    (created,) = stub.messages.values()
    found = await channel.find_sent(message, since)
    assert found is not None and found.provider_id == created.sid


async def test_random_server_failures_are_unknown_and_create_nothing(
    channel: SmsChannel, stub: TwilioStub
) -> None:
    stub.failure_share = 1.0
    with pytest.raises(DeliveryError) as caught:
        await channel.send(_outgoing())
    assert (caught.value.outcome, caught.value.code) == ("unknown", "20500")
    stub.failure_share = 0.0
    assert (await channel.send(_outgoing())).provider_id in stub.messages
    assert len(stub.messages) == 1


async def test_connection_refused_is_retried() -> None:
    closed = TwilioAdapter(ACCOUNT, TOKEN, api_base=f"http://127.0.0.1:{_free_port()}")
    channel = SmsChannel(closed, _settings("sqlite+aiosqlite://", "", 9))
    try:
        with pytest.raises(DeliveryError) as caught:
            await channel.send(_outgoing())
        assert caught.value.outcome == "retry"
    finally:
        await channel.close()


async def test_drop_after_create_is_unknown_and_find_sent_finds_it(
    channel: SmsChannel, stub: TwilioStub, clock: FixedClock
) -> None:
    stub.drop_after_create.add(CUSTOMER_PHONE)
    stub.hold_seconds = 0.05
    message = _outgoing()
    since = clock.now()
    with pytest.raises(DeliveryError) as caught:
        await channel.send(message)
    assert caught.value.outcome == "unknown"
    (created,) = stub.messages.values()
    clock.advance(timedelta(seconds=30))
    found = await channel.find_sent(message, since)
    assert found is not None and found.provider_id == created.sid and str(found.status) == "sent"


async def test_timeout_before_create_is_unknown_and_find_sent_says_not_sent(
    stub: TwilioStub, clock: FixedClock
) -> None:
    slow = TwilioAdapter(ACCOUNT, TOKEN, api_base=stub.base_url, timeout_seconds=0.15)
    channel = SmsChannel(slow, _settings("sqlite+aiosqlite://", stub.base_url, 9))
    message = _outgoing()
    try:
        # Another text to the same number, just before, must not be mistaken for ours.
        await channel.send(_outgoing(text="Інший текст"))
        stub.drop_before_create.add(CUSTOMER_PHONE)
        stub.hold_seconds = 0.4
        with pytest.raises(DeliveryError) as caught:
            await channel.send(message)
        assert caught.value.outcome == "unknown"
        assert await channel.find_sent(message, clock.now()) is None
    finally:
        await channel.close()


async def test_find_sent_ignores_messages_before_since(
    channel: SmsChannel, clock: FixedClock
) -> None:
    message = _outgoing()
    await channel.send(message)
    later = clock.advance(timedelta(hours=1))
    assert await channel.find_sent(message, later) is None


async def test_sandbox_records_and_accepts_as_delivered() -> None:
    sandbox = SandboxChannel("sms")
    message = _outgoing(text="ї" * 71)
    accepted = await sandbox.send(message)
    assert accepted.provider_id == f"sandbox-{message.contact_id}"
    assert (accepted.status, accepted.segments) == ("delivered", 2)
    assert await sandbox.send(message) == accepted and len(sandbox.records) == 1
    assert await sandbox.find_sent(message, datetime.now(UTC)) == accepted
    assert await sandbox.find_sent(_outgoing(), datetime.now(UTC)) is None


# --- webhooks into the real app ---------------------------------------------------

Client = TestClient[web.Request, web.Application]


@pytest.fixture
async def app_client(
    database: Database,
    database_url: str,
    clock: FixedClock,
    tokens: TokenRegistry,
    stub: TwilioStub,
) -> AsyncIterator[Client]:
    """The real app on a known port, so `public_url` is where the stub calls back."""
    port = _free_port()
    app = create_app(
        _settings(database_url, stub.base_url, port), clock=clock, tokens=tokens, workers=False
    )
    async with TestClient(TestServer(app, host="127.0.0.1", port=port)) as client:
        yield client


def _base(client: Client) -> str:
    return str(client.make_url("")).rstrip("/")


async def _sent_contact(
    database: Database, client: Client, clock: FixedClock, customer_id: str | None
) -> tuple[str, str]:
    """Send through the app's adapter and store the contact as the pipeline would."""
    contact_id = new_id("msg")
    settings = client.app[SETTINGS]
    channel = SmsChannel(client.app[twilio_http.TWILIO_ADAPTER], settings)
    accepted = await channel.send(_outgoing(cid=contact_id))
    now = clock.now()
    async with database.transaction() as session:
        session.add(
            OutboundContact(
                id=contact_id,
                idempotency_key=f"test:{contact_id}",
                channel="sms",
                customer_id=customer_id,
                body="Ваш платіж завтра",
                variables={},
                to_address=CUSTOMER_PHONE,
                status="sent",
                provider_id=accepted.provider_id,
                segments=accepted.segments,
                sent_at=now,
                created_at=now,
                updated_at=now,
            )
        )
        session.add(
            CostEntry(
                id=new_id("cost"),
                at=now,
                channel="sms",
                customer_id=customer_id,
                contact_id=contact_id,
                amount=Decimal("0.30"),
                currency="UAH",
                source="configured",
                units=1,
            )
        )
    return contact_id, accepted.provider_id


async def _contact(database: Database, contact_id: str) -> OutboundContact:
    async with database.sessions() as session:
        contact = await session.get(OutboundContact, contact_id)
        assert contact is not None
        return contact


async def _outbox(database: Database, kind: str) -> list[OutboxItem]:
    async with database.sessions() as session:
        return list(await session.scalars(select(OutboxItem).where(OutboxItem.type == kind)))


async def _ledger(database: Database, contact_id: str) -> list[CostEntry]:
    async with database.sessions() as session:
        rows = await session.scalars(select(CostEntry).where(CostEntry.contact_id == contact_id))
        return list(rows)


async def _wait_for_price(database: Database, contact_id: str) -> list[CostEntry]:
    for _ in range(100):
        rows = await _ledger(database, contact_id)
        if rows and rows[0].source == "provider":
            return rows
        await asyncio.sleep(0.03)
    return await _ledger(database, contact_id)


async def test_signed_callbacks_move_the_contact_and_fetch_the_price(
    app_client: Client, database: Database, stub: TwilioStub, clock: FixedClock
) -> None:
    customer_id = await make_customer(database, clock.now(), "ext-1", [CUSTOMER_PHONE])
    contact_id, sid = await _sent_contact(database, app_client, clock, customer_id)
    assert stub.messages[sid].status_callback == status_callback_url(_base(app_client), contact_id)
    clock.advance(timedelta(seconds=5))
    status, _, _ = await stub.deliver(sid, "delivered", price="-0.07500", price_unit="USD")
    assert status == 204
    contact = await _contact(database, contact_id)
    assert contact.status == "delivered" and contact.delivered_at == clock.now()
    (event,) = await _outbox(database, "message.delivered")
    assert event.event_id == f"message.delivered:{contact_id}"
    assert event.payload["message_id"] == contact_id and event.ordering_key == customer_id
    (line,) = await _wait_for_price(database, contact_id)
    assert (line.source, line.amount, line.currency) == ("provider", Decimal("0.075"), "USD")
    contact = await _contact(database, contact_id)
    assert (contact.cost, contact.currency) == (Decimal("0.075"), "USD")


async def test_states_never_go_backwards_and_repeats_change_nothing(
    app_client: Client, database: Database, stub: TwilioStub, clock: FixedClock
) -> None:
    contact_id, sid = await _sent_contact(database, app_client, clock, None)
    delivered_at = clock.now()
    await stub.deliver(sid, "delivered")
    clock.advance(timedelta(minutes=1))
    await stub.deliver(sid, "sent")
    await stub.deliver(sid, "delivered")
    await stub.deliver(sid, "failed", error_code=30008)
    contact = await _contact(database, contact_id)
    assert (contact.status, contact.delivered_at, contact.error_code) == (
        "delivered",
        delivered_at,
        None,
    )
    assert len(await _outbox(database, "message.delivered")) == 1
    assert await _outbox(database, "message.failed") == []


async def test_failed_delivery_marks_the_number_and_tells_the_crm(
    app_client: Client, database: Database, stub: TwilioStub, clock: FixedClock
) -> None:
    customer_id = await make_customer(database, clock.now(), "ext-2", [CUSTOMER_PHONE])
    contact_id, sid = await _sent_contact(database, app_client, clock, customer_id)
    await stub.deliver(sid, "undelivered", error_code=30006)
    contact = await _contact(database, contact_id)
    assert (contact.status, contact.error_code, contact.reason) == (
        "undelivered",
        "30006",
        "invalid_number",
    )
    assert contact.failed_at == clock.now()
    (event,) = await _outbox(database, "message.failed")
    assert event.payload["error_code"] == "30006" and event.payload["status"] == "undelivered"
    async with database.sessions() as session:
        phone = await session.scalar(
            select(CustomerPhone).where(CustomerPhone.customer_id == customer_id)
        )
        assert phone is not None and phone.invalid


async def test_a_callback_settles_a_contact_left_unknown(
    app_client: Client, database: Database, stub: TwilioStub, clock: FixedClock
) -> None:
    contact_id, sid = await _sent_contact(database, app_client, clock, None)
    async with database.transaction() as session:
        contact = await session.get(OutboundContact, contact_id)
        assert contact is not None
        contact.status, contact.provider_id = "unknown", None
    await stub.deliver(sid, "sent")
    contact = await _contact(database, contact_id)
    assert (contact.status, contact.provider_id) == ("sent", sid)


async def test_forged_callbacks_are_refused_and_change_nothing(
    app_client: Client, database: Database, stub: TwilioStub, clock: FixedClock
) -> None:
    contact_id, sid = await _sent_contact(database, app_client, clock, None)
    url = status_callback_url(_base(app_client), contact_id)
    params = {
        "MessageSid": sid,
        "MessageStatus": "failed",
        "AccountSid": ACCOUNT,
        "ErrorCode": "30007",
    }
    forgeries = {
        "unsigned": "",
        "wrong token": TwilioStub(ACCOUNT, "another-token").sign(url, params),
        "other contact": stub.sign(url.replace(contact_id, "msg_other"), params),
        "tampered status": stub.sign(url, {**params, "MessageStatus": "delivered"}),
        "garbage": "bm9wZQ==",
    }
    for name, signature in forgeries.items():
        status, content_type, body = await stub.post_signed(url, params, signature=signature)
        assert (status, content_type) == (403, "application/problem+json"), name
        assert "forbidden" in body
    contact = await _contact(database, contact_id)
    assert (contact.status, contact.error_code) == ("sent", None)
    assert await _outbox(database, "message.failed") == []
    # The same request, rightly signed, is applied: the refusals were the signatures'.
    status, _, _ = await stub.post_signed(url, params)
    assert status == 204 and (await _contact(database, contact_id)).status == "failed"


async def test_price_pending_is_settled_later(
    app_client: Client, database: Database, stub: TwilioStub, clock: FixedClock
) -> None:
    contact_id, sid = await _sent_contact(database, app_client, clock, None)
    await stub.deliver(sid, "delivered", price=None)
    await asyncio.sleep(0.2)  # the background fetch found no price yet
    (line,) = await _ledger(database, contact_id)
    assert line.source == "configured"
    adapter = app_client.app[twilio_http.TWILIO_ADAPTER]
    assert await settle_prices(database, adapter, clock.now()) == 0
    stub.messages[sid].price, stub.messages[sid].price_unit = "-0.0400", "EUR"
    assert await settle_prices(database, adapter, clock.now()) == 1
    assert await settle_prices(database, adapter, clock.now()) == 0
    (line,) = await _ledger(database, contact_id)
    assert (line.source, line.amount, line.currency) == ("provider", Decimal("0.04"), "EUR")


async def _customer(database: Database, customer_id: str) -> Customer:
    async with database.sessions() as session:
        customer = await session.get(Customer, customer_id)
        assert customer is not None
        return customer


async def test_inbound_stop_opts_out_and_start_opts_back_in(
    app_client: Client, database: Database, stub: TwilioStub, clock: FixedClock
) -> None:
    customer_id = await make_customer(database, clock.now(), "ext-3", [CUSTOMER_PHONE])
    url = _base(app_client) + "/providers/twilio/inbound"
    pairs = [("STOP", "start"), (" стоп ", "START"), ("Unsubscribe", "yes"), ("СТОП", "Unstop")]
    pairs += [(word, "start") for word in ("stopall", "cancel", "END", "quit")]
    for stop, start in pairs:
        status, content_type, body = await stub.send_inbound(url, CUSTOMER_PHONE, SENDER, stop)
        assert (status, content_type) == (200, "text/xml") and body.endswith("<Response/>")
        assert (await _customer(database, customer_id)).sms_opt_out, stop
        await stub.send_inbound(url, CUSTOMER_PHONE, SENDER, start)
        assert not (await _customer(database, customer_id)).sms_opt_out, start
    events = sorted(await _outbox(database, "consent.changed"), key=lambda e: e.seq)
    assert [e.payload["opted_out"] for e in events] == [True, False] * len(pairs)
    assert events[0].payload["external_id"] == "ext-3"
    assert await _outbox(database, "message.replied") == []


async def test_inbound_text_is_a_reply_to_the_latest_sms(
    app_client: Client, database: Database, stub: TwilioStub, clock: FixedClock
) -> None:
    customer_id = await make_customer(database, clock.now(), "ext-4", [CUSTOMER_PHONE])
    older, _ = await _sent_contact(database, app_client, clock, customer_id)
    clock.advance(timedelta(hours=1))
    latest, _ = await _sent_contact(database, app_client, clock, customer_id)
    clock.advance(timedelta(minutes=5))
    url = _base(app_client) + "/providers/twilio/inbound"
    status, _, _ = await stub.send_inbound(url, "067 123 45 67", SENDER, "Дякую, оплачу")
    assert status == 200
    assert (await _contact(database, latest)).replied_at == clock.now()
    assert (await _contact(database, older)).replied_at is None
    assert not (await _customer(database, customer_id)).sms_opt_out
    (event,) = await _outbox(database, "message.replied")
    assert event.payload["message_id"] == latest and event.payload["body"] == "Дякую, оплачу"
    assert event.payload["from"] == CUSTOMER_PHONE


async def test_unsigned_inbound_is_refused_and_changes_nothing(
    app_client: Client, database: Database, stub: TwilioStub, clock: FixedClock
) -> None:
    customer_id = await make_customer(database, clock.now(), "ext-5", [CUSTOMER_PHONE])
    url = _base(app_client) + "/providers/twilio/inbound"
    status, _, _ = await stub.send_inbound(url, CUSTOMER_PHONE, SENDER, "STOP", signature="")
    assert status == 403
    status, _, _ = await stub.send_inbound(
        url, CUSTOMER_PHONE, SENDER, "STOP", signature="bm9wZQ=="
    )
    assert status == 403
    assert not (await _customer(database, customer_id)).sms_opt_out
    assert await _outbox(database, "consent.changed") == []


async def test_webhooks_without_twilio_configured_are_unavailable(
    database: Database,
    database_url: str,
    clock: FixedClock,
    tokens: TokenRegistry,
    stub: TwilioStub,
) -> None:
    settings = Settings(database_url=database_url, crm_webhook_secret=WEBHOOK_SECRET)
    app = create_app(settings, clock=clock, tokens=tokens, workers=False)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        params: dict[str, Any] = {"MessageSid": "SM1", "MessageStatus": "delivered"}
        response = await client.post(STATUS_PATH, data=params)
        assert response.status == 503
