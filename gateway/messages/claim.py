"""Claiming due outbound contacts so that exactly one worker handles each, on any number
of processes: `FOR UPDATE SKIP LOCKED` on PostgreSQL, a conditional UPDATE on SQLite
(one writer at a time there, and `BEGIN IMMEDIATE` makes the claim atomic).

A claim is a lease (`locked_until`): a worker that dies keeps nothing forever. A contact
found in state `sending` with an expired lease is one whose worker died between "about
to call the provider" and "recorded the answer": it is handed out again for *resolution*
(ask the provider), never for a blind resend.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select, update

from gateway.core.db.dialect import lock_rows
from gateway.core.db.engine import Database
from gateway.core.db.models import OutboundContact
from gateway.core.db.states import DUE_CONTACT_STATES, ContactStatus


def _claimable(now: datetime):  # type: ignore[no-untyped-def]
    free = or_(OutboundContact.locked_until.is_(None), OutboundContact.locked_until <= now)
    due = and_(
        OutboundContact.status.in_(DUE_CONTACT_STATES),
        or_(OutboundContact.not_before.is_(None), OutboundContact.not_before <= now),
    )
    stranded = OutboundContact.status == ContactStatus.SENDING
    return and_(free, or_(due, stranded))


async def claim_due(
    database: Database, now: datetime, lease: timedelta, limit: int, worker: str
) -> list[OutboundContact]:
    """Lease up to `limit` contacts that are due (or stranded in `sending`)."""
    condition = _claimable(now)
    query = (
        select(OutboundContact.id)
        .where(condition)
        .order_by(
            OutboundContact.not_before.is_not(None), OutboundContact.not_before, OutboundContact.id
        )
        .limit(limit)
    )
    query = lock_rows(query, database, skip_locked=True)
    async with database.transaction() as session:
        ids = list(await session.scalars(query))
        if not ids:
            return []
        claimed = await session.scalars(
            update(OutboundContact)
            .where(OutboundContact.id.in_(ids), condition)
            .values(locked_until=now + lease, claimed_by=worker)
            .returning(OutboundContact)
        )
        return list(claimed)
