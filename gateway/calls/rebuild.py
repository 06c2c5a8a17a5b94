"""Rebuild call records from the stored raw AMI events (`switchboard calls rebuild`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime

from sqlalchemy import select

from adapters.ami.protocol import AmiMessage
from gateway.calls.recorder import CallRecorder
from gateway.calls.settings import PbxTopology
from gateway.calls.topology import Topology
from gateway.calls.tracker import CallTracker
from gateway.core.bus import MemoryBus
from gateway.core.clock import Clock
from gateway.core.db.engine import Database
from gateway.core.db.models import AmiRawEvent
from gateway.core.settings import Settings

PAGE = 5000


async def _raw_events(database: Database, since: datetime) -> AsyncIterator[AmiRawEvent]:
    """Stored events in arrival order, a page at a time (a month of events won't fit)."""
    last_id = 0
    while True:
        async with database.sessions() as session:
            page = (
                (
                    await session.execute(
                        select(AmiRawEvent)
                        .where(AmiRawEvent.received_at >= since, AmiRawEvent.id > last_id)
                        .order_by(AmiRawEvent.id)
                        .limit(PAGE)
                    )
                )
                .scalars()
                .all()
            )
        if not page:
            return
        for event in page:
            yield event
        last_id = page[-1].id


async def rebuild_calls(
    database: Database, settings: Settings, clock: Clock, since: datetime
) -> int:
    """Replay stored events through a fresh tracker; returns how many records were written.

    Writes are the recorder's idempotent upserts, so a rebuild over records that already
    exist rewrites them in place; calls that began before `since` are adopted mid-way.
    """
    received_at = since
    tracker = CallTracker(
        Topology.from_settings(settings.section(PbxTopology)), lambda: received_at
    )
    recorder = CallRecorder(database, MemoryBus(), settings, clock, records_only=True)
    written = 0
    async for raw in _raw_events(database, since):
        received_at = raw.received_at
        message = AmiMessage.from_pairs(list(raw.fields.items()))
        changes = tracker.feed(message)
        written += sum(1 for change in changes if change.record is not None)
        await recorder.apply(changes)
    return written
