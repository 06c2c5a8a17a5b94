"""The email channel: composes multipart mail and submits it through the SMTP adapter.

Outcomes follow the send pipeline's rules (channels/base.py): a 5xx refusal is final, a
4xx or a network error before the message left us may be retried, and a connection lost
after the final dot is `unknown`. SMTP has no way to ask a server later whether it took
a message, so `find_sent` always answers `unknown` and the pipeline never resends on a
guess. Email has no `delivered` unless a delivery report arrives; `send` says `sent`.

Campaign mail carries `List-Unsubscribe` (RFC 2369) with a signed link and
`List-Unsubscribe-Post` (RFC 8058 one-click). The link's token is the customer id and an
HMAC of it under a key derived from the CRM webhook secret, so nobody can unsubscribe a
customer whose link they were not sent.
"""

from __future__ import annotations

import base64
import email.policy
import hashlib
import hmac
import re
import ssl
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from urllib.parse import quote

from adapters.smtp import SmtpConfig, SmtpError, SmtpSender
from channels.base import Accepted, ChannelName, DeliveryError, Outgoing
from channels.email_headers import HeaderInjection, check_header_block, header_text
from gateway.core.clock import Clock, SystemClock
from gateway.core.settings import Settings

IMPLICIT_TLS_PORT = 465
UNSUBSCRIBE_PATH = "/unsubscribe/email/"
ONE_CLICK = "List-Unsubscribe=One-Click"
# Domain separation: the webhook secret also signs CRM traffic; a token must never be
# usable as (or derivable from) a webhook signature, so it is keyed by a derived key.
_TOKEN_KEY_LABEL = b"switchboard/email-unsubscribe/v1"
_RESERVED_HEADERS = frozenset(
    h.lower()
    for h in (
        "From",
        "To",
        "Cc",
        "Bcc",
        "Subject",
        "Date",
        "Message-ID",
        "MIME-Version",
        "Content-Type",
        "Content-Transfer-Encoding",
        "List-Unsubscribe",
        "List-Unsubscribe-Post",
        "Sender",
        "Return-Path",
    )
)
_HEADER_NAME = re.compile(r"^[!-9;-~]+$")  # RFC 5322 ftext: printable, no colon
# Non-ASCII text goes out quoted-printable or base64, so any relay takes it (no 8BITMIME).
_POLICY = email.policy.SMTP.clone(cte_type="7bit")
_FAILED_RCPT_CODES = frozenset({550, 551, 553})


class EmailConfigError(ValueError):
    """Settings cannot make a working email channel."""


class InvalidUnsubscribeToken(ValueError):
    """An unsubscribe token that we did not issue (forged, truncated or for nobody)."""


def _token_key(secret: str) -> bytes:
    return hmac.new(secret.encode(), _TOKEN_KEY_LABEL, hashlib.sha256).digest()


def _mac(secret: str, customer_id: str) -> str:
    digest = hmac.new(_token_key(secret), customer_id.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def unsubscribe_token(secret: str, customer_id: str) -> str:
    """`<customer id>.<HMAC>`: names the customer and proves we issued it."""
    if not customer_id or "." in customer_id or "/" in customer_id:
        raise ValueError("customer id cannot be put in an unsubscribe token")
    return f"{customer_id}.{_mac(secret, customer_id)}"


def customer_from_token(secret: str, token: str) -> str:
    """The customer id a token was issued for; InvalidUnsubscribeToken otherwise."""
    customer_id, dot, mac = token.rpartition(".")
    if not dot or not customer_id or len(token) > 256:
        raise InvalidUnsubscribeToken("not an unsubscribe token")
    if not hmac.compare_digest(_mac(secret, customer_id).encode(), mac.encode()):
        raise InvalidUnsubscribeToken("unsubscribe token signature does not match")
    return customer_id


def unsubscribe_url(settings: Settings, customer_id: str) -> str:
    """The signed one-click link for a customer, under SWITCHBOARD_PUBLIC_URL."""
    secret = settings.secret("crm_webhook_secret")
    if not secret:
        raise EmailConfigError("SWITCHBOARD_CRM_WEBHOOK_SECRET is needed to sign unsubscribe links")
    token = quote(unsubscribe_token(secret, customer_id), safe="")
    return f"{settings.public_url.rstrip('/')}{UNSUBSCRIBE_PATH}{token}"


def smtp_config_from_settings(
    settings: Settings, *, tls_context: ssl.SSLContext | None = None
) -> SmtpConfig:
    """Adapter config from SWITCHBOARD_SMTP_*: port 465 means implicit TLS (SMTPS)."""
    if not settings.smtp_host:
        raise EmailConfigError("SWITCHBOARD_SMTP_HOST is not set (email goes to the sandbox)")
    implicit = settings.smtp_port == IMPLICIT_TLS_PORT
    return SmtpConfig(
        host=settings.smtp_host,
        port=settings.smtp_port,
        username=settings.smtp_username,
        password=settings.secret("smtp_password"),
        starttls=settings.smtp_starttls and not implicit,
        implicit_tls=implicit,
        tls_context=tls_context,
    )


def _ascii_address(address: str) -> str:
    """The envelope form of an address: ASCII local part, IDNA domain; else ValueError."""
    local, at, domain = address.strip().rpartition("@")
    if not at or not local or not domain or any(c.isspace() or c in '<>",' for c in address):
        raise ValueError("not a single e-mail address")
    if not local.isascii():
        raise ValueError("non-ASCII local part (SMTPUTF8) is not supported")
    return f"{local}@{domain.encode('idna').decode('ascii')}"


class EmailChannel:
    """Channel `email` over an SmtpSender; From and the Message-ID domain from settings."""

    name: ChannelName = "email"
    sandbox = False

    def __init__(self, adapter: SmtpSender, settings: Settings, clock: Clock | None = None) -> None:
        """Take the adapter (owned from now on: `close` closes it) and settings."""
        display, address = parseaddr(settings.smtp_from)
        try:
            self._envelope_from = _ascii_address(address)
        except (ValueError, UnicodeError) as exc:
            raise EmailConfigError(f"SWITCHBOARD_SMTP_FROM is not usable: {exc}") from exc
        self._from_header = settings.smtp_from if display else self._envelope_from
        self._domain = self._envelope_from.rpartition("@")[2]
        self._adapter = adapter
        self._settings = settings
        self._clock = clock or SystemClock()

    def compose(self, message: Outgoing) -> tuple[EmailMessage, str]:
        """The MIME message and its Message-ID; DeliveryError(`failed`) if it cannot be built."""
        try:
            to = _ascii_address(message.to)
        except (ValueError, UnicodeError) as exc:
            raise DeliveryError(
                "failed",
                f"recipient address: {exc}",
                code="invalid_address",
                reason="invalid_address",
            ) from exc
        # Our own id, known before the server answers: the pipeline stores it before a
        # reply is lost, and replies and bounces quoting it lead back to the contact.
        message_id = make_msgid(
            idstring=re.sub(r"[^A-Za-z0-9_-]", "", message.contact_id)[:40], domain=self._domain
        )
        mail = EmailMessage(policy=_POLICY)
        try:
            mail["From"] = self._from_header
            mail["To"] = to
            mail["Subject"] = header_text(message.subject or "")
            mail["Date"] = format_datetime(self._clock.now())
            mail["Message-ID"] = message_id
            if message.campaign_id is not None:
                self._add_unsubscribe(mail, message)
            for name, value in message.headers.items():
                if not _HEADER_NAME.match(name) or name.lower() in _RESERVED_HEADERS:
                    raise ValueError(f"header {name!r} may not be set by a template")
                mail[name] = header_text(value)
            mail.set_content(message.text)
            if message.html is not None:
                mail.add_alternative(message.html, subtype="html")
        except (ValueError, TypeError) as exc:
            # Header values with CR/LF or other controls land here: an injection attempt
            # fails the contact (an encoded word hiding one was made inert by header_text).
            raise DeliveryError(
                "failed", f"cannot build the e-mail: {exc}", code="invalid_message"
            ) from exc
        return mail, message_id

    def _add_unsubscribe(self, mail: EmailMessage, message: Outgoing) -> None:
        if message.customer_id is None:
            raise DeliveryError(
                "failed",
                "campaign e-mail without a customer cannot carry List-Unsubscribe",
                code="no_unsubscribe",
            )
        try:
            url = unsubscribe_url(self._settings, message.customer_id)
        except (EmailConfigError, ValueError) as exc:
            raise DeliveryError("failed", str(exc), code="no_unsubscribe") from exc
        mail["List-Unsubscribe"] = f"<{url}>"
        mail["List-Unsubscribe-Post"] = ONE_CLICK

    async def send(self, message: Outgoing) -> Accepted:
        """Submit; Accepted(provider_id=Message-ID) once the server said 250 to the dot."""
        if message.channel != "email":
            raise DeliveryError(
                "failed",
                f"{message.channel} message given to the email channel",
                code="wrong_channel",
            )
        mail, message_id = self.compose(message)
        recipient = str(mail["To"])
        payload = mail.as_bytes()
        try:
            check_header_block(payload, mail.keys())
        except HeaderInjection as exc:
            raise DeliveryError(
                "failed", f"refused to send: {exc}", code="invalid_message"
            ) from exc
        try:
            await self._adapter.send(self._envelope_from, [recipient], payload)
        except SmtpError as exc:
            raise delivery_error(exc) from exc
        costs = self._settings.costs
        return Accepted(
            provider_id=message_id,
            price=costs.email_per_message,
            price_currency=costs.currency,
        )

    async def find_sent(self, message: Outgoing, since: datetime) -> Accepted | None:
        """SMTP cannot be asked what a server accepted earlier: always `unknown`.

        The pipeline therefore leaves an unknown email unknown (or waits for a bounce or
        delivery report) instead of resending one the recipient may already have.
        """
        raise DeliveryError("unknown", "an SMTP server cannot be asked about a past message")

    async def close(self) -> None:
        """QUIT the adapter's SMTP session."""
        await self._adapter.close()


def delivery_error(exc: SmtpError) -> DeliveryError:
    """Translate the adapter's error into the pipeline's outcome."""
    code = str(exc.code) if exc.code is not None else None
    if exc.permanent:
        return DeliveryError(
            "failed", exc.text, code=code or "invalid_address", reason="invalid_address"
        )
    if exc.stage == "connect":
        # Refused before any message was offered (greeting, TLS, AUTH): a fault of our
        # relay or credentials, not of this message; it may pass once that is fixed.
        return DeliveryError("retry", exc.text, code=code or "unreachable")
    if exc.code is not None and exc.code >= 500:
        rcpt = exc.command == "RCPT" and exc.code in _FAILED_RCPT_CODES
        return DeliveryError(
            "failed", exc.text, code=code, reason="invalid_address" if rcpt else None
        )
    if exc.code is not None:
        return DeliveryError("retry", exc.text, code=code)
    if exc.payload_sent:
        return DeliveryError("unknown", exc.text, code="connection_lost")
    return DeliveryError("retry", exc.text, code="unreachable")


def email_channel_from_settings(
    settings: Settings,
    *,
    clock: Clock | None = None,
    tls_context: ssl.SSLContext | None = None,
    reuse: bool = True,
) -> EmailChannel:
    """The channel with its own SmtpSender, as the gateway wires it."""
    sender = SmtpSender(smtp_config_from_settings(settings, tls_context=tls_context), reuse=reuse)
    return EmailChannel(sender, settings, clock)
