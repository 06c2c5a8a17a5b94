"""Email channel: real aiosmtplib to a real aiosmtpd on loopback; unsubscribe on both DBs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr
from sqlalchemy import select, update

from adapters.smtp import SmtpConfig, SmtpSender
from channels.base import DeliveryError
from channels.email import (
    EmailChannel,
    InvalidUnsubscribeToken,
    customer_from_token,
    email_channel_from_settings,
    unsubscribe_token,
)
from gateway.app import create_app
from gateway.core.clock import FixedClock
from gateway.core.db.engine import Database
from gateway.core.db.models import Customer, OutboxItem
from gateway.core.http.auth import TokenRegistry
from gateway.customers.repository import upsert_customer
from gateway.settings import Settings
from tests.support.auth import WEBHOOK_SECRET
from tests.support.factories import START
from tests.support.mail import FROM, PUBLIC, channel, mail_settings, outgoing, sink
from tests.support.smtp_sink import SelfSignedCertificate, SmtpSink, make_certificate

Client = TestClient[Any, Any]


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> SelfSignedCertificate:
    """A self-signed certificate for 127.0.0.1, made once per run."""
    return make_certificate(Path(tmp_path_factory.mktemp("smtp-tls")))


def parts(message: EmailMessage) -> dict[str, str]:
    """Content type → decoded text of each leaf part (line ends as Python writes them)."""
    return {
        part.get_content_type(): part.get_content().replace("\r\n", "\n")
        for part in message.walk()
        if not part.is_multipart()
    }


async def test_multipart_text_and_html_with_our_message_id(
    channel: EmailChannel, sink: SmtpSink
) -> None:
    accepted = await channel.send(outgoing())
    [received] = sink.messages
    mail = received.message
    assert mail.get_content_type() == "multipart/alternative"
    assert parts(mail) == {
        "text/plain": "Привіт, Олено!\n.a line starting with a dot\n",
        "text/html": "<p>Привіт, <b>Олено</b>!</p>\n",
    }
    assert accepted.provider_id == mail["Message-ID"]
    assert accepted.provider_id.endswith("@shop.example>")
    assert str(accepted.status) == "sent"
    assert mail["Subject"] == "Ваш бонус чекає"
    assert mail["From"] == FROM
    assert mail["Date"].datetime == START
    assert (received.mail_from, received.rcpt_tos) == ("news@shop.example", ["olena1@example.com"])
    assert received.raw.isascii()  # no 8BITMIME needed anywhere on the way
    assert "List-Unsubscribe" not in mail


async def test_text_only_is_a_single_part_and_ids_differ(
    channel: EmailChannel, sink: SmtpSink
) -> None:
    first = await channel.send(outgoing(1, html=None, subject="Hello", text="plain"))
    second = await channel.send(outgoing(2, html=None))
    assert sink.messages[0].message.get_content_type() == "text/plain"
    assert sink.messages[0].message.get_content() == "plain\r\n"
    assert first.provider_id != second.provider_id


async def test_list_unsubscribe_only_on_campaign_mail(
    channel: EmailChannel, sink: SmtpSink
) -> None:
    await channel.send(outgoing(1, campaign_id="cmp_1", customer_id="cus_42"))
    await channel.send(outgoing(2, campaign_id=None, customer_id="cus_42"))
    campaign, transactional = (r.message for r in sink.messages)
    link = campaign["List-Unsubscribe"]
    assert link.startswith(f"<{PUBLIC}/unsubscribe/email/") and link.endswith(">")
    token = unquote(link[1:-1].rsplit("/", 1)[1])
    assert customer_from_token(WEBHOOK_SECRET, token) == "cus_42"
    assert campaign["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "List-Unsubscribe" not in transactional
    assert "List-Unsubscribe-Post" not in transactional


async def test_campaign_mail_without_a_customer_is_refused(
    channel: EmailChannel, sink: SmtpSink
) -> None:
    with pytest.raises(DeliveryError) as caught:
        await channel.send(outgoing(campaign_id="cmp_1", customer_id=None))
    assert (caught.value.outcome, caught.value.code) == ("failed", "no_unsubscribe")
    assert sink.messages == [] and sink.connections == 0


def test_forged_or_tampered_tokens_are_refused() -> None:
    token = unsubscribe_token(WEBHOOK_SECRET, "cus_42")
    customer, _, mac = token.partition(".")
    for bad in (f"cus_43.{mac}", f"{customer}.{mac[:-1]}", customer, "", f".{mac}"):
        with pytest.raises(InvalidUnsubscribeToken):
            customer_from_token(WEBHOOK_SECRET, bad)
    with pytest.raises(InvalidUnsubscribeToken):
        customer_from_token("another-secret", token)


async def test_header_injection_and_bad_addresses_fail_without_sending(
    channel: EmailChannel, sink: SmtpSink
) -> None:
    cases = [
        (outgoing(subject="Hi\r\nBcc: victim@example.com"), "invalid_message"),
        (outgoing(headers={"X-Tag": "a\nBcc: victim@example.com"}), "invalid_message"),
        (outgoing(headers={"From": "ceo@example.com"}), "invalid_message"),
        (outgoing(to="not-an-address"), "invalid_address"),
        (outgoing(to="a@b.example, c@d.example"), "invalid_address"),
        (outgoing(to="олена@example.com"), "invalid_address"),
    ]
    for message, code in cases:
        with pytest.raises(DeliveryError) as caught:
            await channel.send(message)
        assert (caught.value.outcome, caught.value.code) == ("failed", code), message
    assert sink.messages == [] and sink.rcpt_attempts == 0


async def test_extra_headers_and_idn_domains_go_through(
    channel: EmailChannel, sink: SmtpSink
) -> None:
    await channel.send(outgoing(to="olena@приклад.укр", headers={"X-Campaign-Step": "s1"}))
    [received] = sink.messages
    assert received.rcpt_tos == ["olena@xn--80aikifvh.xn--j1amh"]
    assert received.message["X-Campaign-Step"] == "s1"


async def test_starttls_with_auth(certificate: SelfSignedCertificate, clock: FixedClock) -> None:
    sink = await SmtpSink(credentials={"mailer": "s3cret"}).start(
        certificate=certificate, require_auth=True
    )
    settings = mail_settings(
        sink.port, smtp_starttls=True, smtp_username="mailer", smtp_password="s3cret"
    )
    channel = email_channel_from_settings(
        settings, clock=clock, tls_context=certificate.client_context()
    )
    try:
        await channel.send(outgoing(1))
        await channel.send(outgoing(2))
    finally:
        await channel.close()
        await sink.stop()
    assert [(m.tls, m.authenticated_as) for m in sink.messages] == [(True, "mailer")] * 2
    assert sink.connections == 1


async def test_wrong_password_or_untrusted_certificate_is_retry(
    certificate: SelfSignedCertificate, clock: FixedClock
) -> None:
    sink = await SmtpSink(credentials={"mailer": "s3cret"}).start(
        certificate=certificate, require_auth=True
    )
    wrong = mail_settings(
        sink.port, smtp_starttls=True, smtp_username="mailer", smtp_password="wrong"
    )
    right = wrong.model_copy(update={"smtp_password": SecretStr("s3cret")})
    cases = [(wrong, certificate.client_context(), "535"), (right, None, "unreachable")]
    try:
        for settings, tls, code in cases:
            channel = email_channel_from_settings(settings, clock=clock, tls_context=tls)
            with pytest.raises(DeliveryError) as caught:
                await channel.send(outgoing())
            await channel.close()
            assert (caught.value.outcome, caught.value.code) == ("retry", code)
    finally:
        await sink.stop()
    assert sink.messages == [] and sink.rcpt_attempts == 0


async def test_implicit_tls(certificate: SelfSignedCertificate) -> None:
    sink = await SmtpSink().start(certificate=certificate, implicit_tls=True)
    config = SmtpConfig(
        host="127.0.0.1",
        port=sink.port,
        starttls=False,
        implicit_tls=True,
        tls_context=certificate.client_context(),
    )
    sender = SmtpSender(config)
    try:
        reply = await sender.send("a@shop.example", ["b@example.com"], b"Subject: x\r\n\r\nhi\r\n")
    finally:
        await sender.close()
        await sink.stop()
    assert reply.code == 250
    assert [m.tls for m in sink.messages] == [True]


async def test_one_connection_for_many_sends(channel: EmailChannel, sink: SmtpSink) -> None:
    for n in range(10):
        await channel.send(outgoing(n))
    # Concurrent sends share the session one after another.
    await asyncio.gather(*(channel.send(outgoing(n)) for n in range(10, 30)))
    assert len(sink.messages) == 30
    assert sink.connections == 1


async def test_without_reuse_each_send_opens_a_session(sink: SmtpSink, clock: FixedClock) -> None:
    channel = email_channel_from_settings(mail_settings(sink.port), clock=clock, reuse=False)
    for n in range(3):
        await channel.send(outgoing(n))
    await channel.close()
    assert (len(sink.messages), sink.connections) == (3, 3)


@pytest.mark.parametrize("noticed", [True, False], ids=["close-seen", "close-in-flight"])
async def test_reconnects_when_the_server_closed_the_session(
    channel: EmailChannel, sink: SmtpSink, noticed: bool
) -> None:
    await channel.send(outgoing(1))
    sink.hang_up()
    if noticed:
        await asyncio.sleep(0.05)  # let the close reach the client before the next MAIL
    await channel.send(outgoing(2))
    assert len(sink.messages) == 2
    assert sink.connections == 2


async def test_a_new_session_after_the_per_session_cap(sink: SmtpSink) -> None:
    config = SmtpConfig(host="127.0.0.1", port=sink.port, starttls=False)
    sender = SmtpSender(replace(config, max_messages_per_connection=2))
    for n in range(5):
        await sender.send("a@shop.example", [f"b{n}@example.com"], b"Subject: x\r\n\r\nhi\r\n")
    await sender.close()
    assert (len(sink.messages), sink.connections) == (5, 3)


async def test_550_is_failed_with_code_and_text(channel: EmailChannel, sink: SmtpSink) -> None:
    sink.mode = "reject_550"
    with pytest.raises(DeliveryError) as caught:
        await channel.send(outgoing())
    error = caught.value
    assert (error.outcome, error.code, error.reason) == ("failed", "550", "invalid_address")
    assert "No such mailbox here" in str(error)
    # The refused envelope was reset: the same session carries the next message.
    sink.mode = "accept"
    await channel.send(outgoing(2))
    assert len(sink.messages) == 1 and sink.connections == 1


async def test_450_is_retry(channel: EmailChannel, sink: SmtpSink) -> None:
    sink.mode = "reject_450"
    with pytest.raises(DeliveryError) as caught:
        await channel.send(outgoing())
    assert (caught.value.outcome, caught.value.code) == ("retry", "450")
    assert "Mailbox busy" in str(caught.value)
    assert sink.messages == []


async def test_connection_lost_after_the_final_dot_is_unknown(
    channel: EmailChannel, sink: SmtpSink
) -> None:
    sink.mode = "drop_after_data"
    with pytest.raises(DeliveryError) as caught:
        await channel.send(outgoing())
    assert caught.value.outcome == "unknown"
    assert sink.data_attempts == 1  # the server did get the whole message
    sink.mode = "accept"
    await channel.send(outgoing(2))  # a fresh session after the lost one
    assert sink.connections == 2


async def test_server_silent_after_the_final_dot_is_unknown(
    sink: SmtpSink, clock: FixedClock
) -> None:
    sink.mode = "stall_after_data"
    config = SmtpConfig(host="127.0.0.1", port=sink.port, starttls=False, timeout=0.3)
    channel = EmailChannel(SmtpSender(config), mail_settings(sink.port), clock)
    with pytest.raises(DeliveryError) as caught:
        await channel.send(outgoing())
    await channel.close()
    assert caught.value.outcome == "unknown"
    assert sink.data_attempts == 1


async def test_server_down_is_retry(clock: FixedClock) -> None:
    sink = await SmtpSink().start()
    port = sink.port
    await sink.stop()
    channel = email_channel_from_settings(mail_settings(port), clock=clock)
    with pytest.raises(DeliveryError) as caught:
        await channel.send(outgoing())
    await channel.close()
    assert (caught.value.outcome, caught.value.code) == ("retry", "unreachable")


async def test_find_sent_cannot_know(channel: EmailChannel) -> None:
    with pytest.raises(DeliveryError) as caught:
        await channel.find_sent(outgoing(), START)
    assert caught.value.outcome == "unknown"


# --- the unsubscribe link, on both databases -------------------------------------------


@pytest.fixture
async def app_client(
    settings: Settings, database: Database, clock: FixedClock, tokens: TokenRegistry
) -> AsyncIterator[Client]:
    """The app (its messages plugin serves the unsubscribe link)."""
    app: web.Application = create_app(settings, clock=clock, tokens=tokens, workers=False)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield client


async def make_customer(database: Database, email: str = "olena@example.com") -> str:
    """A customer with an email address; returns its id."""
    async with database.transaction() as session:
        customer, _ = await upsert_customer(
            session, "ext-1", {"name": "Олена", "email": email}, [], START
        )
        return customer.id


async def state(database: Database, customer_id: str) -> tuple[bool, list[dict[str, Any]]]:
    """The customer's email opt-out and every outbox payload."""
    async with database.transaction() as session:
        opted_out = await session.scalar(
            select(Customer.email_opt_out).where(Customer.id == customer_id)
        )
        items = (await session.scalars(select(OutboxItem))).all()
        return bool(opted_out), [{"type": i.type, **i.payload} for i in items]


async def test_link_from_a_campaign_mail_unsubscribes_once(
    app_client: Client, database: Database, sink: SmtpSink, clock: FixedClock
) -> None:
    customer_id = await make_customer(database)
    channel = email_channel_from_settings(mail_settings(sink.port), clock=clock)
    await channel.send(outgoing(customer_id=customer_id, campaign_id="cmp_1"))
    await channel.close()
    path = urlsplit(sink.messages[0].message["List-Unsubscribe"][1:-1]).path
    path = path.removeprefix(urlsplit(PUBLIC).path)  # the app is served at the root here

    page = await app_client.get(path)
    assert page.status == 200 and page.content_type == "text/html"
    text = await page.text()
    assert "o***@example.com" in text and "olena@example.com" not in text
    assert 'method="post"' in text and 'name="List-Unsubscribe" value="One-Click"' in text
    assert page.headers["Cache-Control"] == "no-store"
    assert await state(database, customer_id) == (False, [])  # a GET changes nothing

    for _ in range(2):
        response = await app_client.post(path, data={"List-Unsubscribe": "One-Click"})
        assert response.status == 200
    opted_out, items = await state(database, customer_id)
    assert opted_out is True
    assert items == [
        {
            "type": "consent.changed",
            "external_id": "ext-1",
            "channel": "email",
            "opted_out": True,
            "source": "list-unsubscribe",
        }
    ]


async def test_forged_token_changes_nothing(app_client: Client, database: Database) -> None:
    customer_id = await make_customer(database)
    other = unsubscribe_token(WEBHOOK_SECRET, "cus_someone_else")
    good = unsubscribe_token(WEBHOOK_SECRET, customer_id)
    forged = [
        f"{customer_id}.{other.rpartition('.')[2]}",
        good[:-2],
        customer_id,
        unsubscribe_token("guessed-secret", customer_id),
        other,  # validly signed, but for no customer of ours
    ]
    for token in forged:
        for method in ("GET", "POST"):
            response = await app_client.request(
                method, f"/unsubscribe/email/{token}", data={"List-Unsubscribe": "One-Click"}
            )
            assert response.status == 404, (method, token)
            assert response.content_type == "application/problem+json"
    assert await state(database, customer_id) == (False, [])


async def test_post_without_one_click_body_is_refused(
    app_client: Client, database: Database
) -> None:
    customer_id = await make_customer(database)
    path = f"/unsubscribe/email/{unsubscribe_token(WEBHOOK_SECRET, customer_id)}"
    for body in ({}, {"List-Unsubscribe": "Yes"}):
        response = await app_client.post(path, data=body)
        assert response.status == 400
        assert (await response.json())["type"].endswith("/not-one-click")
    assert await state(database, customer_id) == (False, [])


async def test_page_escapes_what_the_crm_stored(app_client: Client, database: Database) -> None:
    customer_id = await make_customer(database, email="x@<script>alert(1)</script>.example")
    page = await app_client.get(
        f"/unsubscribe/email/{unsubscribe_token(WEBHOOK_SECRET, customer_id)}"
    )
    text = await page.text()
    assert "<script>" not in text and "&lt;script&gt;" in text


async def test_deleted_customer_link_is_gone(app_client: Client, database: Database) -> None:
    customer_id = await make_customer(database)
    async with database.transaction() as session:
        await session.execute(
            update(Customer).where(Customer.id == customer_id).values(deleted_at=START)
        )
    path = f"/unsubscribe/email/{unsubscribe_token(WEBHOOK_SECRET, customer_id)}"
    response = await app_client.post(path, data={"List-Unsubscribe": "One-Click"})
    assert response.status == 404
    assert await state(database, customer_id) == (False, [])


__all__ = ["channel", "sink"]  # fixtures shared from tests/support/mail.py
