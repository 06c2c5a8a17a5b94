"""The send worker: nothing lost, nothing sent twice.

The rule, step by step, for one outbound contact:

1. The contact row exists, committed with its idempotency key (a second insert for the
   same source/customer/step/occurrence collides on the unique key), before anything is
   sent. Nothing is lost: a due row stays due until a worker records an outcome.
2. A worker leases it (`claim.py`), prepares it (render, consent, window, cap): skipped
   and deferred contacts are recorded and never reach a provider.
3. It commits `sending` together with the exact rendered text and address, and only then
   calls the provider. A crash before this commit: the row is still due, sent later. A
   crash after it: the row stays `sending`; when its lease expires it is claimed for
   *resolution*, not resent.
4. The provider's answer is recorded: `sent` (with its id), a retryable refusal (nothing
   left us: due again after a backoff), a final failure, or an *unknown* outcome (a
   timeout after the request left us, or a 5xx: the provider, or a gateway in front of
   it, may answer one after the message was created; the channel classifies it, see
   adapters/twilio.py). An unknown outcome, like a stranded `sending`,
   is resolved by asking the provider (`Channel.find_sent`, by our idempotency key)
   before any retry: found → `sent`; provably absent → sent again; can't tell →
   asked again later, and after `RESOLVE_GIVE_UP` `unknown`, left for a person, never
   retried blindly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from channels.base import Accepted, Channel, DeliveryError, Outgoing
from gateway.core.clock import Clock
from gateway.core.db.engine import Database
from gateway.core.db.models import Customer, CustomerPhone, OutboundContact
from gateway.core.db.states import ContactStatus
from gateway.core.outbox import enqueue
from gateway.core.settings import Settings
from gateway.messages.claim import claim_due
from gateway.messages.costs import record_cost
from gateway.messages.prepare import Defer, Prepared, Skip
from gateway.messages.ratelimit import RateLimiter, Unlimited

log = logging.getLogger(__name__)

Preparer = Callable[[AsyncSession, OutboundContact, datetime], Awaitable[Prepared]]
MAX_ATTEMPTS = 8
BASE_BACKOFF_SECONDS = 30.0
MAX_BACKOFF_SECONDS = 3600.0
# A provider may not list a message it has only queued (Twilio filters its list by send
# date): "not found" counts as "not sent" only once the attempt is this old.
RESOLVE_GRACE = timedelta(minutes=10)
RESOLVE_RECHECK = timedelta(minutes=2)
# A lookup that fails (the provider's 5xx, a timeout) is a "can't tell" of the moment: the
# attempt is asked about again until it is this old, and only then left `unknown`.
RESOLVE_GIVE_UP = timedelta(hours=1)


class SendWorker:
    """Claims due contacts and sends each at most once; several may run at once."""

    def __init__(
        self,
        database: Database,
        settings: Settings,
        clock: Clock,
        channels: Mapping[str, Channel],
        prepare: Preparer,
        *,
        limiters: Mapping[str, RateLimiter] | None = None,
        concurrency: int = 50,
        batch: int = 200,
        lease: timedelta = timedelta(minutes=2),
        resolve_grace: timedelta = RESOLVE_GRACE,
    ) -> None:
        self.database, self.settings, self.clock = database, settings, clock
        self.channels, self.prepare = channels, prepare
        self.limiters = dict(limiters or {})
        self.batch, self.lease, self.resolve_grace = batch, lease, resolve_grace
        self.name = f"sender-{secrets.token_hex(4)}"
        self._slots = asyncio.Semaphore(concurrency)
        self._rng = random.Random()

    async def run_once(self) -> int:
        """One pass over what is due now; returns how many contacts were handled."""
        contacts = await claim_due(
            self.database, self.clock.now(), self.lease, self.batch, self.name
        )
        await asyncio.gather(*(self._bounded(contact) for contact in contacts))
        return len(contacts)

    async def run_forever(self, stop: asyncio.Event, poll_seconds: float = 1.0) -> None:
        """Poll until `stop` is set; a failing pass is logged and retried."""
        while not stop.is_set():
            try:
                handled = await self.run_once()
            except Exception:
                log.exception("send pass failed; retrying after the poll interval")
                handled = 0
            if not handled:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), poll_seconds)

    async def _bounded(self, contact: OutboundContact) -> None:
        async with self._slots:
            try:
                await self._handle(contact)
            except Exception:
                # The lease runs out and the contact is claimed again (resolved if it
                # had reached `sending`): logged, never dropped.
                log.exception("contact %s could not be handled this pass", contact.id)

    async def _handle(self, contact: OutboundContact) -> None:
        channel = self.channels.get(contact.channel)
        if channel is None:
            await self._finish(contact, status=ContactStatus.SKIPPED, reason="channel_unavailable")
            return
        if contact.status == ContactStatus.SENDING:
            await self._resolve(contact, channel, self._stored_message(contact))
            return
        async with self.database.sessions() as session:
            prepared = await self.prepare(session, contact, self.clock.now())
        if isinstance(prepared, Skip):
            await self._finish(
                contact,
                status=ContactStatus.SKIPPED,
                reason=prepared.reason,
                error=prepared.detail or None,
            )
            return
        if isinstance(prepared, Defer):
            await self._update(
                contact,
                status=ContactStatus.DEFERRED,
                not_before=prepared.until,
                reason=prepared.reason,
                locked_until=None,
            )
            return
        await self._update(
            contact,
            status=ContactStatus.SENDING,
            to_address=prepared.to,
            body=prepared.text,
            subject=prepared.subject,
            attempts=contact.attempts + 1,
        )
        await self._send(contact, channel, prepared)

    async def _send(self, contact: OutboundContact, channel: Channel, message: Outgoing) -> None:
        await self.limiters.get(contact.channel, Unlimited()).acquire()
        try:
            accepted = await channel.send(message)
        except DeliveryError as error:
            await self._refused(contact, channel, message, error)
            return
        await self._accepted(contact, channel, accepted)

    async def _resolve(self, contact: OutboundContact, channel: Channel, message: Outgoing) -> None:
        """Did the provider get it? Ask before anything is sent again."""
        since = contact.updated_at - timedelta(minutes=5)
        try:
            found = await channel.find_sent(message, since)
        except DeliveryError as error:
            # Giving up at the first failed lookup left a message that was never sent
            # `unknown` for good: lost, whenever the provider failed twice in a row
            # (tests/faults/test_twilio_chaos.py). Ask again later instead.
            if self.clock.now() - contact.updated_at < RESOLVE_GIVE_UP:
                await self._hold(contact, min(RESOLVE_RECHECK, self.resolve_grace))
            else:
                await self._finish(
                    contact, status=ContactStatus.UNKNOWN, error=str(error), code=error.code
                )
            return
        if found is not None:
            await self._accepted(contact, channel, found)
        elif self.clock.now() - contact.updated_at < self.resolve_grace:
            # Too early to call it lost: keep `sending` and look again later.
            await self._hold(contact, min(RESOLVE_RECHECK, self.resolve_grace))
        elif contact.attempts >= MAX_ATTEMPTS:
            await self._finish(contact, status=ContactStatus.FAILED, error="provider never took it")
        else:
            await self._update(contact, attempts=contact.attempts + 1)
            await self._send(contact, channel, message)

    async def _refused(
        self, contact: OutboundContact, channel: Channel, message: Outgoing, error: DeliveryError
    ) -> None:
        if error.outcome == "unknown":
            await self._resolve(contact, channel, message)
        elif error.outcome == "retry" and contact.attempts < MAX_ATTEMPTS:
            delay = min(MAX_BACKOFF_SECONDS, BASE_BACKOFF_SECONDS * 2 ** (contact.attempts - 1))
            await self._update(
                contact,
                status=ContactStatus.PENDING,
                not_before=self.clock.now() + timedelta(seconds=self._rng.uniform(0, delay)),
                error=str(error),
                error_code=error.code,
                locked_until=None,
            )
        else:
            await self._finish(
                contact,
                status=ContactStatus.FAILED,
                reason=error.reason,
                error=str(error),
                code=error.code,
            )

    async def _accepted(
        self, contact: OutboundContact, channel: Channel, accepted: Accepted
    ) -> None:
        now = self.clock.now()
        async with self.database.transaction() as session:
            await session.execute(
                update(OutboundContact)
                .where(OutboundContact.id == contact.id)
                .values(
                    status=accepted.status,
                    provider_id=accepted.provider_id,
                    segments=accepted.segments,
                    sandbox=channel.sandbox,
                    sent_at=now,
                    delivered_at=now if accepted.status == ContactStatus.DELIVERED else None,
                    locked_until=None,
                    error=None,
                    error_code=None,
                    updated_at=now,
                )
            )
            cost = await record_cost(session, contact, accepted, self.settings, now)
            if cost is not None:
                await session.execute(
                    update(OutboundContact)
                    .where(OutboundContact.id == contact.id)
                    .values(cost=cost[0], currency=cost[1])
                )
            if accepted.status == ContactStatus.DELIVERED:
                await _tell_crm(session, contact, "message.delivered", now)

    async def _finish(
        self,
        contact: OutboundContact,
        *,
        status: ContactStatus,
        reason: str | None = None,
        error: str | None = None,
        code: str | None = None,
    ) -> None:
        now = self.clock.now()
        async with self.database.transaction() as session:
            await session.execute(
                update(OutboundContact)
                .where(OutboundContact.id == contact.id)
                .values(
                    status=status,
                    reason=reason,
                    error=error,
                    error_code=code,
                    failed_at=now if status == ContactStatus.FAILED else None,
                    locked_until=None,
                    updated_at=now,
                )
            )
            if status == ContactStatus.FAILED:
                await _apply_reason(session, contact, reason)
                await _tell_crm(session, contact, "message.failed", now)

    async def _hold(self, contact: OutboundContact, wait: timedelta) -> None:
        """Keep the lease (and `updated_at`, the attempt's time) for another look later."""
        async with self.database.transaction() as session:
            await session.execute(
                update(OutboundContact)
                .where(OutboundContact.id == contact.id)
                .values(locked_until=self.clock.now() + wait)
            )

    async def _update(self, contact: OutboundContact, **values: object) -> None:
        values["updated_at"] = self.clock.now()
        async with self.database.transaction() as session:
            await session.execute(
                update(OutboundContact).where(OutboundContact.id == contact.id).values(**values)
            )
        for key, value in values.items():
            setattr(contact, key, value)

    @staticmethod
    def _stored_message(contact: OutboundContact) -> Outgoing:
        """The exact message committed with `sending` (for resolution and resends)."""
        return Outgoing(
            contact_id=contact.id,
            idempotency_key=contact.idempotency_key,
            channel=contact.channel,  # type: ignore[arg-type]
            to=contact.to_address or "",
            text=contact.body or "",
            subject=contact.subject,
            customer_id=contact.customer_id,
            campaign_id=contact.campaign_id,
        )


async def _apply_reason(
    session: AsyncSession, contact: OutboundContact, reason: str | None
) -> None:
    """A provider's final word about the customer: opted out, or a dead number."""
    if contact.customer_id is None:
        return
    if reason == "opted_out":
        await session.execute(
            update(Customer)
            .where(Customer.id == contact.customer_id)
            .values({f"{contact.channel}_opt_out": True})
        )
    elif reason == "invalid_number" and contact.to_address:
        await session.execute(
            update(CustomerPhone)
            .where(
                CustomerPhone.customer_id == contact.customer_id,
                CustomerPhone.e164 == contact.to_address,
            )
            .values(invalid=True)
        )


async def _tell_crm(
    session: AsyncSession, contact: OutboundContact, kind: str, now: datetime
) -> None:
    await enqueue(
        session,
        type=kind,
        data={
            "message_id": contact.id,
            "channel": contact.channel,
            "customer_id": contact.customer_id,
            "campaign_id": contact.campaign_id,
            "error_code": contact.error_code,
        },
        ordering_key=contact.customer_id or "messages",
        occurred_at=now,
        event_id=f"{kind}:{contact.id}",
        now=now,
    )
