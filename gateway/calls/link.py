"""The gateway's one AMI session: events → tracker → recorder, resync after reconnects.

The client reconnects by itself (backoff with jitter); after every login we ask the PBX
for its live channels (`CoreShowChannels`) so calls that changed while we were away are
adopted or closed, and screen-pops and records stay right.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from sqlalchemy import insert

from adapters.ami import AmiClient, AmiConfig, AmiError, AmiState
from adapters.ami.protocol import AmiMessage
from gateway.bus import Bus
from gateway.calls.recorder import CallRecorder
from gateway.calls.topology import Topology
from gateway.calls.tracker import TRACKED_EVENTS, CallTracker
from gateway.clock import Clock
from gateway.db.engine import Database
from gateway.db.models import AmiRawEvent
from gateway.metrics import Metrics
from gateway.settings import Settings

log = logging.getLogger(__name__)
RAW_FLUSH_SECONDS = 0.2
RAW_BATCH = 500


class PbxLink:
    """Owns the AMI client, the call tracker and the recorder for one PBX."""

    def __init__(
        self, settings: Settings, database: Database, bus: Bus, clock: Clock, metrics: Metrics
    ) -> None:
        self._settings, self._database, self._clock, self._metrics = (
            settings,
            database,
            clock,
            metrics,
        )
        self.tracker = CallTracker(Topology.from_settings(settings.pbx), clock.now)
        self.recorder = CallRecorder(database, bus, settings, clock)
        self.client = AmiClient(
            AmiConfig(
                host=settings.ami_host or "127.0.0.1",
                port=settings.ami_port,
                username=settings.ami_username,
                secret=settings.secret("ami_secret") or "",
                backoff_max=settings.pbx.reconnect_max_seconds,
            ),
            on_connect=self._resync,
        )
        # One queue for every tracked event, fed by a sync handler: the client gives each
        # async subscription its own queue, which would let a BridgeEnter overtake the
        # DialBegin before it. Call state needs the wire order across event names.
        self._events: asyncio.Queue[AmiMessage] = asyncio.Queue()
        for name in TRACKED_EVENTS:
            self.client.on(name, self._events.put_nowait)
        self._raw: list[dict[str, Any]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._logins = 0

    @property
    def state(self) -> str:
        """`connected` or `disconnected` (the contract's /health words)."""
        return "connected" if self.client.state is AmiState.CONNECTED else "disconnected"

    async def start(self) -> None:
        """Connect in the background: a PBX that is down at start must not stop the gateway."""
        self._tasks.append(asyncio.create_task(self._connect_forever(), name="ami-connect"))
        self._tasks.append(asyncio.create_task(self._consume(), name="ami-calls"))
        self._tasks.append(asyncio.create_task(self._flush_forever(), name="ami-raw-events"))

    async def stop(self) -> None:
        """Close the session and write what is buffered."""
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.client.close()
        await self._flush()

    async def _connect_forever(self) -> None:
        delay = 0.5
        while True:
            try:
                await self.client.connect()
                return
            except AmiError as exc:
                log.warning(
                    "AMI %s:%s unreachable (%s); retrying",
                    self._settings.ami_host,
                    self._settings.ami_port,
                    exc,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._settings.pbx.reconnect_max_seconds)

    async def _resync(self, client: AmiClient) -> None:
        self._logins += 1
        if self._logins > 1:
            self._metrics.ami_reconnects.inc()
        self._metrics.ami_connected.set(1)
        try:
            channels = await client.core_show_channels()
        except AmiError as exc:
            log.warning("CoreShowChannels after login failed: %s", exc)
            return
        await self.recorder.apply(self.tracker.resync(channels))

    async def _consume(self) -> None:
        """Apply events one at a time, in the order they came off the wire."""
        while True:
            event = await self._events.get()
            try:
                await self._on_event(event)
            except Exception:
                log.exception("AMI event %s could not be applied", event.name)

    async def _on_event(self, event: AmiMessage) -> None:
        self._metrics.ami_events.inc()
        if self._settings.pbx.raw_event_retention_days:
            self._raw.append(
                {
                    "received_at": self._clock.now(),
                    "linkedid": event.get("Linkedid"),
                    "name": event.name or "",
                    "fields": dict(event.headers),
                }
            )
        await self.recorder.apply(self.tracker.feed(event))

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(RAW_FLUSH_SECONDS)
            if self.client.state is not AmiState.CONNECTED:
                self._metrics.ami_connected.set(0)
            last = self.client.stats.last_event_at
            if last:
                self._metrics.ami_event_lag.set(max(0.0, time.monotonic() - last))
            try:
                await self._flush()
            except Exception:
                log.exception("could not store raw AMI events; keeping them for the next try")

    async def _flush(self) -> None:
        """Store buffered raw events in batches (one INSERT per batch, not per event)."""
        while self._raw:
            batch, self._raw = self._raw[:RAW_BATCH], self._raw[RAW_BATCH:]
            try:
                async with self._database.transaction() as session:
                    await session.execute(insert(AmiRawEvent), batch)
            except Exception:
                self._raw[:0] = batch
                raise

    async def originate(self, extension: str, number: str, action_id: str) -> None:
        """Ring the operator's extension first, then dial the customer from it."""
        pbx = self._settings.pbx
        await self.client.originate(
            pbx.operator_channel.format(extension=extension),
            context=pbx.originate_context,
            exten=f"{pbx.dial_prefix}{number}",
            caller_id=number,
            action_id=action_id,
        )
