"""RFC 2047 encoded words in rendered text never become headers (CVE-2024-6923 in the
CPython this project runs on): a template rendered with a hostile customer name, sent by
the real channel over aiosmtplib to aiosmtpd, arrives with exactly the headers we set."""

from __future__ import annotations

import base64
import email.policy
from email.message import EmailMessage

import pytest

from channels.base import DeliveryError
from channels.email import EmailChannel
from channels.email_headers import HeaderInjection, check_header_block
from channels.templates import InlineMessage, Renderer
from gateway.core.db.models import Customer
from tests.support.mail import channel, outgoing, sink
from tests.support.smtp_sink import SmtpSink

INJECTED = "\r\nReply-To: attacker@evil.example"
HOSTILE_NAMES = [
    "Eve =?utf-8?q?=0D=0AReply-To=3A_attacker=40evil.example?=",
    "Eve =?UTF-8?Q?=0A=0DBcc=3A_victim=40evil.example?=",
    "Eve =?utf-8?b?" + base64.b64encode(INJECTED.encode()).decode() + "?=",
    "Eve =?iso-8859-1?q?=0D=0AReply-To=3A_a=40evil.example?= =?utf-8?q?=0D=0A=0D=0Abody?=",
]
TEXT_ONLY_HEADERS = [
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "Content-Type",
    "Content-Transfer-Encoding",
    "MIME-Version",
]


def header_names(raw: bytes) -> list[str]:
    """The header names of a message as the receiving server got it."""
    head = raw.partition(b"\r\n\r\n")[0].decode("ascii")
    return [line.partition(":")[0] for line in head.split("\r\n") if line[:1] not in " \t"]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
async def test_a_customer_name_in_a_subject_template_adds_no_header(
    channel: EmailChannel, sink: SmtpSink, name: str
) -> None:
    customer = Customer(id="cus_1", external_id="C-1", name=name, status="active", attributes={})
    source = InlineMessage("email", "Hello {{ name }}", "Your order, {{ name }}")
    rendered = Renderer().render(source, customer, None, {})
    assert rendered.subject == f"Your order, {name}"

    await channel.send(outgoing(subject=rendered.subject, text=rendered.text, html=None))

    [received] = sink.messages
    assert header_names(received.raw) == TEXT_ONLY_HEADERS
    assert received.message.keys() == TEXT_ONLY_HEADERS
    # The reader sees the name as the CRM has it (an invisible word joiner aside).
    assert str(received.message["Subject"]).replace("\u2060", "") == f"Your order, {name}"


async def test_a_hostile_value_in_a_template_header_adds_no_header(
    channel: EmailChannel, sink: SmtpSink
) -> None:
    message = outgoing(html=None, headers={"X-Customer": HOSTILE_NAMES[0]})
    await channel.send(message)
    [received] = sink.messages
    assert header_names(received.raw) == [
        *TEXT_ONLY_HEADERS[:5],
        "X-Customer",
        *TEXT_ONLY_HEADERS[5:],
    ]
    assert "Reply-To" not in received.message


async def test_a_campaign_mail_keeps_exactly_its_headers(
    channel: EmailChannel, sink: SmtpSink
) -> None:
    await channel.send(outgoing(subject=f"Hi {HOSTILE_NAMES[2]}", campaign_id="cmp_1"))
    [received] = sink.messages
    unsubscribe = ["List-Unsubscribe", "List-Unsubscribe-Post"]
    expected = [*TEXT_ONLY_HEADERS[:5], *unsubscribe, "Content-Type", "MIME-Version"]
    assert sorted(header_names(received.raw)) == sorted(expected)


async def test_control_characters_in_a_header_value_fail_without_sending(
    channel: EmailChannel, sink: SmtpSink
) -> None:
    for value in ("a\x0bBcc: x@evil.example", "a\u2028b", "a\x85b", "a\x1b[2J"):
        with pytest.raises(DeliveryError) as caught:
            await channel.send(outgoing(headers={"X-Tag": value}))
        assert (caught.value.outcome, caught.value.code) == ("failed", "invalid_message")
    assert sink.messages == [] and sink.rcpt_attempts == 0


def test_the_header_check_catches_what_this_pythons_email_package_writes() -> None:
    # Left to itself, the email package of an affected CPython writes the decoded CR/LF
    # out raw; on a fixed one the bytes are safe. Either way the check tells them apart.
    mail = EmailMessage(policy=email.policy.SMTP)
    mail["Subject"] = HOSTILE_NAMES[0]
    mail.set_content("hi")
    payload = mail.as_bytes()
    if b"\r\nReply-To:" in payload:
        with pytest.raises(HeaderInjection, match="extra \\['reply-to'\\]"):
            check_header_block(payload, mail.keys())
    else:
        check_header_block(payload, mail.keys())
    for forged in (
        b"Subject: a\nReply-To: x@evil.example\r\n\r\nbody",
        b"Subject: a\r\nReply-To: x@evil.example\r\n\r\nbody",
        b"Subject: a\r\n",
        b" folded first\r\nSubject: a\r\n\r\n",
    ):
        with pytest.raises(HeaderInjection):
            check_header_block(forged, ["Subject"])
    check_header_block(b"Subject: a\r\n b\r\n\r\nbody", ["Subject"])


__all__ = ["channel", "sink"]  # fixtures shared from tests/support/mail.py
