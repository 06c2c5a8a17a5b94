"""The sandbox channel: what sms, email and voice use when no provider is configured.

Nothing leaves the process. Each send is recorded and accepted at once as delivered
(a simulated delivery report), with a provider id derived from the contact id so a
repeated send of one contact is recognisable, and SMS segments counted as the real
channel would. `find_sent` looks in the record. The record is bounded: the oldest
entries go first, which only matters to a resolver asking about a very old send.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime

from channels.base import Accepted, ChannelName, Outgoing
from channels.segments import count_segments
from gateway.core.db.states import ContactStatus

DEFAULT_CAPACITY = 10_000


@dataclass(frozen=True)
class SandboxRecord:
    """One message the sandbox took."""

    message: Outgoing
    accepted: Accepted


class SandboxChannel:
    """Records messages instead of sending them."""

    sandbox = True

    def __init__(self, name: ChannelName, *, capacity: int = DEFAULT_CAPACITY) -> None:
        """A sandbox for channel `name`, remembering up to `capacity` messages."""
        self.name: ChannelName = name
        self._capacity = capacity
        self._records: OrderedDict[str, SandboxRecord] = OrderedDict()

    @property
    def records(self) -> list[SandboxRecord]:
        """What was "sent", oldest first."""
        return list(self._records.values())

    async def send(self, message: Outgoing) -> Accepted:
        """Record and accept; the same idempotency key is accepted once, as before."""
        known = self._records.get(message.idempotency_key)
        if known is not None:
            return known.accepted
        segments = count_segments(message.text).segments if self.name == "sms" else None
        accepted = Accepted(
            provider_id=f"sandbox-{message.contact_id}",
            status=ContactStatus.DELIVERED,
            segments=segments,
        )
        self._records[message.idempotency_key] = SandboxRecord(message, accepted)
        while len(self._records) > self._capacity:
            self._records.popitem(last=False)
        return accepted

    async def find_sent(self, message: Outgoing, since: datetime) -> Accepted | None:
        """The recorded acceptance of this message, if the sandbox took it."""
        known = self._records.get(message.idempotency_key)
        return known.accepted if known is not None else None

    async def close(self) -> None:
        """Nothing to release."""
