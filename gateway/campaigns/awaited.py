"""The events a journey's `wait ... until` waits for, looked up in batches and cached.

A wait `until` events ends at the first of them that happened after `wait_started_at`
(and not after `as_of`); the scheduler looks up a whole batch of parked enrollments
with one query per kind of event before advancing them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.campaigns.definition import WaitStep
from gateway.campaigns.journey import Journey
from gateway.core.clock import as_utc
from gateway.core.db.models import Activity, Call, Enrollment, OutboundContact
from gateway.core.db.states import EnrollmentState


class AwaitedEvents:
    """Earliest awaited events per enrollment and wait; one instance per tick."""

    def __init__(self) -> None:
        # (enrollment, event, wait start, as_of) → earliest such event, or None
        self._events: dict[tuple[str, str, datetime, datetime], datetime | None] = {}

    async def prefetch(
        self, session: AsyncSession, batch: Sequence[tuple[Enrollment, Journey]], as_of: datetime
    ) -> None:
        """Look up the awaited events of a batch's parked enrollments: one query per kind."""
        wanted: dict[str, list[Enrollment]] = {}
        for enrollment, journey in batch:
            if enrollment.state != EnrollmentState.WAITING or enrollment.wait_started_at is None:
                continue
            step = next((s for s in journey.steps if s.id == enrollment.step), None)
            if isinstance(step, WaitStep):
                for awaited in step.until:
                    wanted.setdefault(awaited, []).append(enrollment)
        for kind, enrollments in wanted.items():
            await self.lookup(session, kind, enrollments, as_of)

    async def lookup(
        self, session: AsyncSession, event: str, enrollments: Sequence[Enrollment], as_of: datetime
    ) -> None:
        """The earliest `event` in (wait_started_at, as_of] of each enrollment, cached."""
        ids = [enrollment.id for enrollment in enrollments]
        start = Enrollment.wait_started_at
        query: Select[*tuple[Any, ...]]
        if event in ("activity", "order"):
            query = (
                select(Enrollment.id, func.min(Activity.at))
                .join(Activity, Activity.customer_id == Enrollment.customer_id)
                .where(Activity.at > start, Activity.at <= as_of)
            )
            if event == "order":
                query = query.where(Activity.kind == "order")
        elif event == "replied":
            query = (
                select(Enrollment.id, func.min(OutboundContact.replied_at))
                .join(OutboundContact, OutboundContact.customer_id == Enrollment.customer_id)
                .where(OutboundContact.replied_at > start, OutboundContact.replied_at <= as_of)
            )
        elif event == "delivered":
            # Delivery of this journey's own messages, not of anything else we sent.
            query = (
                select(Enrollment.id, func.min(OutboundContact.delivered_at))
                .join(OutboundContact, OutboundContact.enrollment_id == Enrollment.id)
                .where(OutboundContact.delivered_at > start, OutboundContact.delivered_at <= as_of)
            )
        else:  # call_answered
            query = (
                select(Enrollment.id, func.min(Call.answered_at))
                .join(Call, Call.customer_id == Enrollment.customer_id)
                .where(Call.answered_at > start, Call.answered_at <= as_of)
            )
        rows = await session.execute(query.where(Enrollment.id.in_(ids)).group_by(Enrollment.id))
        found = {enrollment_id: as_utc(at) for enrollment_id, at in rows.all() if at is not None}
        for enrollment in enrollments:
            key = (enrollment.id, event, as_utc(enrollment.wait_started_at or as_of), as_of)
            self._events[key] = found.get(enrollment.id)

    async def first(
        self,
        session: AsyncSession,
        enrollment: Enrollment,
        events: Sequence[str],
        after: datetime,
        until: datetime,
        as_of: datetime,
    ) -> tuple[str, datetime] | None:
        """The earliest awaited event in (after, until], with its time."""
        if after >= until:
            return None  # the wait has only just begun: nothing can have happened in it
        best: tuple[str, datetime] | None = None
        for event in events:
            key = (enrollment.id, event, after, as_of)
            if key not in self._events:
                # The wait started in this very advance: its row is flushed, look it up.
                await session.flush()
                await self.lookup(session, event, [enrollment], as_of)
            # The earliest up to as_of; past the deadline it means none within the wait.
            at = self._events.get(key)
            if at is not None and at <= until and (best is None or at < best[1]):
                best = (event, at)
        return best
