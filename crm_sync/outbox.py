"""The CRM push-back outbox: features enqueue activities; a worker delivers them.

Delivery is at-least-once, never exactly-once. An activity is written in the same
transaction as the domain change that caused it, so it exists iff that change
committed; a worker then POSTs it and records the outcome in a *second* transaction.
If the CRM applied the request but its answer was lost (timeout, reset connection,
our process dying between the POST and the commit), we cannot tell that apart from
a request that never arrived, so we must send it again. Every request therefore
carries `Idempotency-Key: <event id>` (the same on every attempt) and the CRM keeps
the keys it applied: a repeat is acknowledged and ignored, which turns at-least-once
delivery into effectively-once processing on the CRM's side.

Order is kept per `ordering_key` (a customer's id, or "global"): only the oldest
pending item of a key may be claimed, so a key's next item waits until the previous
one is delivered or dead. Dead letters never block their key. Several gateway
processes may run workers: on PostgreSQL a claim takes rows `FOR UPDATE SKIP LOCKED`
and sets a lease (`locked_until`); a crashed worker's lease runs out and the item
comes back. SQLite serialises writers (BEGIN IMMEDIATE), so the same conditional
claim is safe there without row locks. All due times come from the injected clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, TypedDict

from sqlalchemy import and_, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from adapters.crm_http import CrmClient, CrmError, CrmHttpError
from crm_sync.settings import OutboxPolicy
from crm_sync.signature import HEADER as SIGNATURE_HEADER
from crm_sync.signature import sign
from gateway.core.clock import Clock, isoformat_z
from gateway.core.db.dialect import lock_rows
from gateway.core.db.engine import Database
from gateway.core.db.models.crm import OutboxItem
from gateway.core.db.states import OutboxState
from gateway.core.metrics import Metrics
from gateway.core.settings import Settings

log = logging.getLogger(__name__)

STATES = tuple(state.value for state in OutboxState)  # plain strings: argparse shows their repr
GLOBAL_KEY = "global"
# A claim outlives the request by a wide margin so a slow but live worker keeps it.
LEASE_MARGIN_SECONDS = 30.0
DEFAULT_CONCURRENCY = 8
_MAX_ERROR_CHARS = 1000


def envelope_bytes(item: OutboxItem) -> bytes:
    """The body sent to the CRM: the same envelope the CRM sends us."""
    envelope = {
        "id": item.event_id,
        "type": item.type,
        "occurred_at": isoformat_z(item.occurred_at),
        "data": item.payload,
    }
    return json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode()


def backoff_seconds(policy: OutboxPolicy, failures_before: int, rng: random.Random) -> float:
    """Full jitter: uniform in [0, min(max_delay, base * 2^failures_before)]."""
    exponent = min(failures_before, 60)  # 2**60 s is already far past any sane cap
    cap = min(policy.max_delay_seconds, policy.base_delay_seconds * 2.0**exponent)
    return rng.uniform(0.0, cap)


@dataclass(frozen=True)
class OutboxStats:
    """What /health and the gauges show."""

    backlog: int
    dead: int
    oldest_pending_seconds: float


async def outbox_stats(session: AsyncSession, now: datetime) -> OutboxStats:
    """Counts of pending and dead items and the age of the oldest pending one."""
    rows = await session.execute(
        select(OutboxItem.state, func.count(), func.min(OutboxItem.created_at))
        .where(OutboxItem.state.in_((OutboxState.PENDING, OutboxState.DEAD)))
        .group_by(OutboxItem.state)
    )
    counts: dict[str, int] = {OutboxState.PENDING: 0, OutboxState.DEAD: 0}
    oldest: datetime | None = None
    for state, count, first in rows:
        counts[state] = count
        if state == OutboxState.PENDING:
            oldest = first
    age = max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0
    return OutboxStats(counts[OutboxState.PENDING], counts[OutboxState.DEAD], age)


async def list_items(
    session: AsyncSession, *, state: OutboxState | None, limit: int, after_seq: int | None = None
) -> list[OutboxItem]:
    """Up to `limit` items in seq order, optionally of one state, after a cursor."""
    query = select(OutboxItem).order_by(OutboxItem.seq).limit(limit)
    if state is not None:
        query = query.where(OutboxItem.state == state)
    if after_seq is not None:
        query = query.where(OutboxItem.seq > after_seq)
    return list(await session.scalars(query))


async def retry_dead(session: AsyncSession, seq: int, now: datetime) -> OutboxItem | None:
    """Put dead item `seq` back to pending with attempts reset; None if no such dead item."""
    item = await session.scalar(
        update(OutboxItem)
        .where(OutboxItem.seq == seq, OutboxItem.state == OutboxState.DEAD)
        .values(state=OutboxState.PENDING, attempts=0, next_attempt_at=now, locked_until=None)
        .returning(OutboxItem)
    )
    return item


class OutboxWorker:
    """Claims due outbox items and pushes them to the CRM, order kept per key."""

    def __init__(
        self,
        database: Database,
        settings: Settings,
        clock: Clock,
        metrics: Metrics,
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        rng: random.Random | None = None,
    ) -> None:
        """Wire the worker; it opens its HTTP client on first use."""
        if not settings.crm_api_url:
            raise ValueError("the outbox worker needs SWITCHBOARD_CRM_API_URL")
        self.database = database
        self.policy = settings.section(OutboxPolicy)
        self.clock = clock
        self.metrics = metrics
        self._secret = settings.secret("crm_webhook_secret")
        self._client = CrmClient(
            settings.crm_api_url,
            timeout_seconds=self.policy.request_timeout_seconds,
            token=settings.secret("crm_api_token"),
        )
        self._semaphore = asyncio.Semaphore(concurrency)
        self._rng = rng or random.Random()
        self._lease = timedelta(seconds=self.policy.request_timeout_seconds + LEASE_MARGIN_SECONDS)
        if not self._secret:
            log.warning("SWITCHBOARD_CRM_WEBHOOK_SECRET unset: CRM activities go unsigned")

    async def close(self) -> None:
        """Close the HTTP client."""
        await self._client.close()

    async def claim(self) -> list[OutboxItem]:
        """Lease up to batch_size due items, at most one (the oldest) per ordering key."""
        now = self.clock.now()
        earlier = aliased(OutboxItem)
        head_of_key = ~exists().where(
            earlier.ordering_key == OutboxItem.ordering_key,
            earlier.state == OutboxState.PENDING,
            earlier.seq < OutboxItem.seq,
        )
        free = or_(OutboxItem.locked_until.is_(None), OutboxItem.locked_until <= now)
        due = and_(OutboxItem.state == OutboxState.PENDING, OutboxItem.next_attempt_at <= now, free)
        query = (
            select(OutboxItem.seq)
            .where(due, head_of_key)
            .order_by(OutboxItem.seq)
            .limit(self.policy.batch_size)
        )
        # Rows another worker is claiming right now are skipped, not waited for.
        query = lock_rows(query, self.database, skip_locked=True, of=OutboxItem)
        async with self.database.transaction() as session:
            seqs = list(await session.scalars(query))
            if not seqs:
                return []
            claimed = await session.scalars(
                update(OutboxItem)
                .where(OutboxItem.seq.in_(seqs), due)
                .values(locked_until=now + self._lease)
                .returning(OutboxItem)
            )
            return sorted(claimed, key=lambda item: item.seq)

    async def run_once(self) -> int:
        """One pass: claim what is due and deliver it; returns how many were attempted."""
        items = await self.claim()
        if items:
            await self._client.open()
            # One item per key was claimed, so running them side by side never
            # reorders a customer's activities.
            outcomes = await asyncio.gather(*(self._deliver_bounded(item) for item in items))
            await self._record(list(outcomes))
        await self.refresh_gauges()
        return len(items)

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Poll until `stop` is set; a failing pass is logged and retried next poll."""
        while not stop.is_set():
            try:
                attempted = await self.run_once()
            except Exception:
                log.exception("outbox pass failed; retrying after the poll interval")
                attempted = 0
            if attempted:
                continue  # more may be waiting behind the items just delivered
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.policy.poll_seconds)

    async def refresh_gauges(self) -> OutboxStats:
        """Recount backlog and dead letters into the gauges."""
        async with self.database.transaction() as session:
            stats = await outbox_stats(session, self.clock.now())
        self.metrics.outbox_backlog.set(stats.backlog)
        self.metrics.outbox_dead.set(stats.dead)
        return stats

    async def _deliver_bounded(self, item: OutboxItem) -> _Outcome:
        async with self._semaphore:
            return await self._deliver(item)

    async def _deliver(self, item: OutboxItem) -> _Outcome:
        body = envelope_bytes(item)
        headers = {"Idempotency-Key": item.event_id}
        if self._secret:
            headers[SIGNATURE_HEADER] = sign(self._secret, body, int(self.clock.now().timestamp()))
        try:
            status = await self._client.post_activity(body, headers)
        except CrmError as exc:
            code = exc.status if isinstance(exc, CrmHttpError) else None
            return self._failure(item, code, str(exc), retryable=exc.retryable)
        except Exception as exc:
            # A bug here must not spin on the item: count it as a failed attempt.
            log.exception("unexpected error delivering outbox item %s", item.seq)
            return self._failure(item, None, f"internal: {exc!r}", retryable=True)
        values = self._values(item, OutboxState.DELIVERED, status, None)
        values["delivered_at"] = self.clock.now()
        return _Outcome(item, values, "delivered")

    def _failure(
        self, item: OutboxItem, status: int | None, error: str, *, retryable: bool
    ) -> _Outcome:
        attempts = item.attempts + 1
        if retryable and attempts < self.policy.max_attempts:
            delay = backoff_seconds(self.policy, item.attempts, self._rng)
            values = self._values(item, OutboxState.PENDING, status, error)
            values["next_attempt_at"] = self.clock.now() + timedelta(seconds=delay)
            log.info(
                "outbox item %s failed (%s); attempt %d, retry in %.1f s",
                item.seq,
                error[:200],
                attempts,
                delay,
            )
            return _Outcome(item, values, "retry")
        log.warning(
            "outbox item %s (%s) is a dead letter after %d attempt(s): %s",
            item.seq,
            item.type,
            attempts,
            error[:200],
        )
        return _Outcome(item, self._values(item, OutboxState.DEAD, status, error), "dead")

    @staticmethod
    def _values(
        item: OutboxItem, state: OutboxState, status: int | None, error: str | None
    ) -> OutboxUpdate:
        values: OutboxUpdate = {
            "state": state,
            "attempts": item.attempts + 1,
            "locked_until": None,
            "last_status": status,
        }
        if error is not None:
            values["last_error"] = error[:_MAX_ERROR_CHARS]
        return values

    async def _record(self, outcomes: list[_Outcome]) -> None:
        # One transaction for the whole pass: a commit per item was the bottleneck.
        # Each update is fenced on our own lease: if it ran out and another worker
        # re-claimed the item, that worker's outcome is the one that counts.
        lost: list[int] = []
        async with self.database.transaction() as session:
            for outcome in outcomes:
                item = outcome.item
                result = await session.execute(
                    update(OutboxItem)
                    .where(
                        OutboxItem.seq == item.seq,
                        OutboxItem.state == OutboxState.PENDING,
                        OutboxItem.locked_until == item.locked_until,
                    )
                    .values(**outcome.values)
                )
                if getattr(result, "rowcount", 1) == 0:
                    lost.append(item.seq)
        for outcome in outcomes:
            self.metrics.outbox_deliveries.labels(outcome.label).inc()
        if lost:
            log.warning("outbox items %s: lease lost before their outcome was recorded", lost)


class OutboxUpdate(TypedDict, total=False):
    """The columns one delivery attempt writes back to its item."""

    state: OutboxState
    attempts: int
    locked_until: datetime | None
    last_status: int | None
    last_error: str
    next_attempt_at: datetime
    delivered_at: datetime


@dataclass(frozen=True)
class _Outcome:
    """What one delivery attempt decided, to be written with the rest of its pass."""

    item: OutboxItem
    values: OutboxUpdate
    label: Literal["delivered", "retry", "dead"]
