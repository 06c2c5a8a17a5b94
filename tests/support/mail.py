"""E-mail test helpers: a rendered message and settings pointing the channel at the sink."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from channels.base import Outgoing
from channels.email import EmailChannel, email_channel_from_settings
from gateway.core.clock import FixedClock
from gateway.core.settings import Settings as KernelSettings
from gateway.settings import Settings
from tests.support.auth import WEBHOOK_SECRET
from tests.support.smtp_sink import SmtpSink

FROM = "Switchboard Shop <news@shop.example>"
PUBLIC = "https://switchboard.example/base"


def outgoing(n: int = 1, **overrides: Any) -> Outgoing:
    """A rendered email to one customer."""
    values: dict[str, Any] = {
        "contact_id": f"msg_{n:04d}",
        "idempotency_key": f"test:{n}",
        "channel": "email",
        "to": f"olena{n}@example.com",
        "subject": "Ваш бонус чекає",
        "text": "Привіт, Олено!\n.a line starting with a dot\n",
        "html": "<p>Привіт, <b>Олено</b>!</p>",
        "customer_id": "cus_0001",
    }
    values.update(overrides)
    return Outgoing(**values)


def mail_settings(port: int, **extra: Any) -> KernelSettings:
    """Settings pointing the channel at the sink."""
    values: dict[str, Any] = {
        "smtp_host": "127.0.0.1",
        "smtp_port": port,
        "smtp_starttls": False,
        "smtp_from": FROM,
        "public_url": PUBLIC,
        "crm_webhook_secret": WEBHOOK_SECRET,
        **extra,
    }
    return Settings(**values)


@pytest.fixture
async def sink() -> AsyncIterator[SmtpSink]:
    """A plain SMTP server on loopback."""
    server = await SmtpSink().start()
    yield server
    await server.stop()


@pytest.fixture
async def channel(sink: SmtpSink, clock: FixedClock) -> AsyncIterator[EmailChannel]:
    """The email channel on the plain sink."""
    email_channel = email_channel_from_settings(mail_settings(sink.port), clock=clock)
    yield email_channel
    await email_channel.close()
