"""The send queue as metrics: due outbound contacts per channel and how long the oldest
has waited, read on each /metrics scrape with one query on the due index."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import func, or_, select

from gateway.core.db.engine import Database
from gateway.core.db.models import OutboundContact
from gateway.core.db.states import DUE_CONTACT_STATES
from gateway.core.db.types import UtcDateTime
from gateway.core.metrics import Metrics


async def refresh_send_queue(
    database: Database, metrics: Metrics, now: datetime, channels: Iterable[str] = ()
) -> None:
    """Set the depth and oldest-due age of every channel (0 for `channels` with none due).

    Computed at scrape time rather than kept by the workers: the numbers then hold with
    any number of instances and with no worker running, and a scrape every few seconds
    costs one range scan of ix_outbound_contacts_due (status, not_before).
    """
    due_since = func.coalesce(OutboundContact.not_before, OutboundContact.created_at)
    query = (
        select(
            OutboundContact.channel,
            func.count(),
            func.min(due_since, type_=UtcDateTime),
        )
        .where(
            OutboundContact.status.in_(DUE_CONTACT_STATES),
            or_(OutboundContact.not_before.is_(None), OutboundContact.not_before <= now),
        )
        .group_by(OutboundContact.channel)
    )
    async with database.sessions() as session:
        rows = (await session.execute(query)).all()
    seen = {channel: (0, 0.0) for channel in channels}
    for channel, depth, oldest in rows:
        seen[channel] = (depth, max(0.0, (now - oldest).total_seconds()) if oldest else 0.0)
    metrics.send_queue_depth.clear()
    metrics.send_queue_oldest_due.clear()
    for channel, (depth, age) in seen.items():
        metrics.send_queue_depth.labels(channel).set(depth)
        metrics.send_queue_oldest_due.labels(channel).set(age)
