"""A provider stand-in behind the Channel interface: it keeps what it accepted, keyed by
idempotency key, and can be told how to answer each address. Used to test the pipeline's
state machine; the real channels are tested against real protocol servers."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from channels.base import Accepted, ChannelName, DeliveryError, Outgoing


class RecordingChannel:
    """Accepts messages and remembers them; `script[address]` changes the answer."""

    sandbox = False

    def __init__(self, name: ChannelName = "sms") -> None:
        self.name: ChannelName = name
        self.accepted: dict[str, Accepted] = {}
        self.deliveries: Counter[str] = Counter()  # idempotency key → times accepted
        self.script: dict[str, list[str]] = {}

    def _next(self, address: str) -> str:
        steps = self.script.get(address)
        return steps.pop(0) if steps else "accept"

    async def send(self, message: Outgoing) -> Accepted:
        """Accept, or act out the next scripted answer for this address."""
        step = self._next(message.to)
        if step == "retry":
            raise DeliveryError("retry", "429 too many requests", code="429")
        if step == "invalid":
            raise DeliveryError(
                "failed", "not a mobile number", code="21614", reason="invalid_number"
            )
        if step == "opted_out":
            raise DeliveryError("failed", "recipient opted out", code="21610", reason="opted_out")
        accepted = Accepted(provider_id=f"SM{len(self.accepted):032d}", segments=1)
        if step in ("accept", "unknown_after_accept"):
            self.accepted[message.idempotency_key] = accepted
            self.deliveries[message.idempotency_key] += 1
        if step.startswith("unknown"):
            raise DeliveryError("unknown", "timed out after the request was sent")
        return accepted

    async def find_sent(self, message: Outgoing, since: datetime) -> Accepted | None:
        """What we accepted under this key, if anything."""
        return self.accepted.get(message.idempotency_key)

    async def close(self) -> None:
        """Nothing to close."""
