"""The one interface every channel (sms, email, voice) implements for the send pipeline.

The pipeline (gateway/messages) has already committed the outbound contact in state
`sending` before it calls `send`; a channel only speaks to its adapter and reports what
happened in these terms. `find_sent` is how the pipeline resolves an *unknown* outcome
(a timeout after the request left us, a crash between commit and answer) before it ever
retries: ask the provider whether the message exists, never guess.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Literal, Protocol

from gateway.core.db.states import ContactStatus

ChannelName = Literal["sms", "email", "voice"]
Outcome = Literal["retry", "failed", "unknown"]


@dataclass(frozen=True)
class Outgoing:
    """A rendered message, ready for the provider."""

    contact_id: str
    idempotency_key: str
    channel: ChannelName
    to: str
    text: str
    subject: str | None = None
    html: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    customer_id: str | None = None
    campaign_id: str | None = None


@dataclass(frozen=True)
class Accepted:
    """The provider took the message."""

    provider_id: str
    status: Literal[ContactStatus.SENT, ContactStatus.DELIVERED] = ContactStatus.SENT
    segments: int | None = None
    price: Decimal | None = None
    price_currency: str | None = None


class DeliveryError(Exception):
    """The provider refused or could not be reached.

    `outcome`: `retry` (nothing was sent; try again later), `failed` (final), `unknown`
    (the request may have been accepted; resolve with `find_sent`, never resend blindly).
    `reason` names a consequence for the customer: `opted_out`, `invalid_number`.
    """

    def __init__(
        self,
        outcome: Outcome,
        message: str,
        *,
        code: str | None = None,
        reason: str | None = None,
    ) -> None:
        super().__init__(message)
        self.outcome = outcome
        self.code = code
        self.reason = reason


class Channel(Protocol):
    """What the pipeline needs of a channel."""

    name: ChannelName
    sandbox: bool

    async def send(self, message: Outgoing) -> Accepted:
        """Hand the message to the provider; raise DeliveryError when it did not take it."""
        ...

    async def find_sent(self, message: Outgoing, since: datetime) -> Accepted | None:
        """The provider's record of this message (by its idempotency key), or None when the
        provider has no such message; DeliveryError(`unknown`) when it cannot tell."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...
