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
import zlib
from enum import StrEnum
from typing import Any, cast

from sqlalchemy import Table, insert

from adapters.ami import AmiClient, AmiConfig, AmiError, AmiState
from adapters.ami.protocol import AmiMessage
from gateway.calls.flow import (
    PRUNE_EVERY_SECONDS,
    PRUNE_MAX_SECONDS,
    RAW_BUFFER_MAX,
    WARM_LIMIT,
    WRITES_AT_ONCE,
    FlowControl,
    ShedCounts,
)
from gateway.calls.recorder import CallRecorder
from gateway.calls.records import CallChange, ChangeKind
from gateway.calls.settings import PbxTopology
from gateway.calls.topology import Topology
from gateway.calls.tracker import TRACKED_EVENTS, CallTracker
from gateway.core.bus import Bus, BusError
from gateway.core.clock import Clock
from gateway.core.db.engine import Database
from gateway.core.db.models import AmiRawEvent
from gateway.core.logs import call_context
from gateway.core.metrics import Metrics
from gateway.core.settings import Settings

log = logging.getLogger(__name__)
RAW_EVENTS = cast(Table, AmiRawEvent.__table__)
RAW_FLUSH_SECONDS = 0.2
RAW_BATCH = 500
APPLY_SHARDS = 8
LEADER_TTL = 15.0
LEADER_RENEW = 5.0
LEADER_POLL = 0.25  # how often a non-leader tries the lock, and a leader checks its AMI
# A leader whose AMI session is down this long steps aside: a blip (reconnect at once,
# calls adopted by the resync) keeps it, so their pops still go out.
LEADER_GRACE = 2.0
PRUNE_SLICE = 50
STOP_FLUSH_SECONDS = 5.0  # raw events still unwritten after this on stop are shed


class LinkState(StrEnum):
    """The AMI link as /health reports it."""

    CONNECTED = "connected"
    DISCONNECTED = "disconnected"


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
        self.tracker = CallTracker(
            Topology.from_settings(settings.section(PbxTopology)),
            clock.now,
            max_live=settings.section(PbxTopology).max_live_calls,
        )
        self._bus = bus
        self._write_slots = asyncio.Semaphore(WRITES_AT_ONCE)
        self.recorder = CallRecorder(
            database,
            bus,
            settings,
            clock,
            warm_limit=WARM_LIMIT,
            write_slots=self._write_slots,
        )
        self._queued = 0  # changes waiting in the shards
        self.flow = FlowControl(
            metrics,
            backlog=lambda: self._queued + self.recorder.in_flight,
            counts=self._shed_counts,
            live_calls=lambda: self.tracker.live_calls,
            max_live_calls=settings.section(PbxTopology).max_live_calls,
        )
        # One instance with the in-process bus leads from the start; with Redis the
        # leader loop decides within its first pass.
        self.recorder.announce = bus.kind == "memory"
        self.client = AmiClient(
            AmiConfig(
                host=settings.ami_host or "127.0.0.1",
                port=settings.ami_port,
                username=settings.ami_username,
                secret=settings.secret("ami_secret") or "",
                backoff_max=settings.section(PbxTopology).reconnect_max_seconds,
            ),
            on_connect=self._resync,
            read_gate=self.flow.hold_reader,
        )
        # The tracker is fed synchronously by the reader, in wire order across every event
        # name (the client gives each async subscription its own queue, which would let a
        # BridgeEnter overtake its DialBegin). What a change means for the database and
        # the bus is applied by workers sharded by call: one call's changes stay in
        # order, while a slow write for one call never holds up another call's pop
        # (pops and first inserts do not queue at all: `CallRecorder.start_now`).
        self._shards: list[asyncio.Queue[CallChange]] = [
            asyncio.Queue() for _ in range(APPLY_SHARDS)
        ]
        for name in TRACKED_EVENTS:
            self.client.on(name, self._on_wire)
        self._raw: list[dict[str, Any]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._logins = 0
        self._deaf_since: float | None = None  # monotonic time the AMI session went down
        self._pruned: tuple[float, int] = (0.0, 0)  # last prune: monotonic time, refusals
        self._prune_every = PRUNE_EVERY_SECONDS
        self._pruning: asyncio.Task[None] | None = None

    @property
    def state(self) -> LinkState:
        """`connected` or `disconnected` (the contract's /health words)."""
        if self.client.state is AmiState.CONNECTED:
            return LinkState.CONNECTED
        return LinkState.DISCONNECTED

    async def start(self) -> None:
        """Connect in the background: a PBX that is down at start must not stop the gateway."""
        self._tasks.append(asyncio.create_task(self._connect_forever(), name="ami-connect"))
        for index, shard in enumerate(self._shards):
            self._tasks.append(asyncio.create_task(self._apply(shard), name=f"calls-{index}"))
        self._tasks.append(asyncio.create_task(self._flush_forever(), name="ami-raw-events"))
        self._tasks.append(asyncio.create_task(self._lead_forever(), name="ami-leader"))
        self._tasks.append(asyncio.create_task(self._watch_load(), name="ami-load"))

    async def stop(self) -> None:
        """Close the session and write what is buffered."""
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._pruning is not None:
            self._pruning.cancel()
        await self.client.close()
        await self.recorder.settle()
        try:
            await asyncio.wait_for(self._flush(), STOP_FLUSH_SECONDS)
        except Exception as exc:
            # A stop must not wait on a slow database: what is left is shed, and said so.
            self.flow.raw_events_shed += len(self._raw)
            log.warning("%d raw AMI events not stored on stop (%r)", len(self._raw), exc)
            self._raw.clear()

    def _shed_counts(self) -> ShedCounts:
        return ShedCounts(
            self.recorder.warmups_shed, self.flow.raw_events_shed, self.tracker.refused
        )

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
                delay = min(delay * 2, self._settings.section(PbxTopology).reconnect_max_seconds)

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
        self._dispatch(self.tracker.resync(channels))

    def _dispatch(self, changes: list[CallChange]) -> None:
        for change in changes:
            # The tasks start_now creates copy this context: their log lines name the call.
            with call_context(change.linkedid):
                started = self.recorder.start_now(change)
            if started:
                continue  # a pop (or the row's insert) does not queue behind other calls
            shard = zlib.crc32(change.linkedid.encode()) % APPLY_SHARDS
            self._queued += 1
            self._shards[shard].put_nowait(change)

    async def _apply(self, shard: asyncio.Queue[CallChange]) -> None:
        """Apply one shard's changes in order (the recorder logs per-change failures)."""
        while True:
            change = await shard.get()
            try:
                with call_context(change.linkedid):
                    await self.recorder.ready(change)
                    async with self._write_slots:
                        await self.recorder.apply([change])
            finally:
                self._queued -= 1

    def _on_wire(self, event: AmiMessage) -> None:
        """Called by the AMI reader for each tracked event, in wire order; never blocks."""
        self._metrics.ami_events.inc()
        if len(self._raw) >= RAW_BUFFER_MAX:
            self.flow.raw_events_shed += 1  # the database is behind: the archive goes first
        elif self._settings.section(PbxTopology).raw_event_retention_days:
            self._raw.append(
                {
                    "received_at": self._clock.now(),
                    "linkedid": event.get("Linkedid"),
                    "name": event.name or "",
                    "fields": dict(event.headers),
                }
            )
        try:
            changes = self.tracker.feed(event)
        except Exception:
            log.exception("AMI event %s could not be tracked", event.name)
            return
        self._dispatch(changes)

    async def _lead_forever(self) -> None:
        """Hold the pop-leader lock (with expiry) while alive; others stay quiet.

        Every instance keeps its own AMI session, so a PBX or instance failure loses
        nothing: all of them track calls and write the (idempotent) records. Only the
        leader publishes screen-pops; it steps aside when its AMI session has been down
        for LEADER_GRACE and releases the lock when stopped, and the others try the lock
        every LEADER_POLL, so one of them takes over at once; if the leader dies its lock
        expires and another takes over within LEADER_TTL.
        With the in-process bus there is one instance: it leads.
        """
        lock = self._bus.lock("ami-pop-leader", LEADER_TTL)
        held = False
        try:
            while True:
                hearing, redis_down = self._hears_pbx(), False
                try:
                    if hearing:
                        held = await (lock.extend(LEADER_TTL) if held else lock.acquire())
                    elif held:
                        held = False
                        await lock.release()
                except BusError as exc:
                    # Redis is down: pub/sub is down too, so nobody's pops get through anyway.
                    redis_down = True
                    log.warning("pop leadership unknown (%s)", exc)
                if held != self.recorder.announce:
                    log.info("screen-pop leadership %s", "taken" if held else "lost")
                self.recorder.announce = held
                # Retrying quickly while Redis is down would only repeat the warning.
                await self._until_renewal(hearing, quick=not held and not redis_down)
        finally:
            if held:  # stopping: hand over now, not when the lock expires
                with contextlib.suppress(BusError):
                    await lock.release()

    def _hears_pbx(self) -> bool:
        """May this instance lead the pops? Not once its AMI session has been down for
        LEADER_GRACE: a leader cut off from the PBX would keep its lock and nobody would
        pop. (With the in-process bus there is one instance and nobody to hand over to.)"""
        if self._bus.kind == "memory" or self.client.state is AmiState.CONNECTED:
            self._deaf_since = None
            return True
        now = time.monotonic()
        if self._deaf_since is None:
            self._deaf_since = now
        return now - self._deaf_since < LEADER_GRACE

    async def _until_renewal(self, hearing: bool, *, quick: bool) -> None:
        """Wait LEADER_POLL when `quick` (a non-leader: a released lock is taken at
        once), else LEADER_RENEW, cut short if the AMI session comes or goes."""
        polls = 1 if quick else round(LEADER_RENEW / LEADER_POLL)
        for _ in range(polls):
            await asyncio.sleep(LEADER_POLL)
            if self._hears_pbx() != hearing:
                return

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

    async def _watch_load(self) -> None:
        """Publish the shedding figures and prune while refusing (not behind raw writes)."""
        while True:
            await asyncio.sleep(RAW_FLUSH_SECONDS)
            self.flow.publish()
            self._prune_when_refusing()

    def _prune_when_refusing(self) -> None:
        """While the live-call cap refuses calls, ask the PBX (see PRUNE_EVERY_SECONDS)
        which of ours it still has: calls it never had or lost must not hold the room."""
        at, refused = self._pruned
        now = time.monotonic()
        if self.tracker.refused == refused:
            if now - at >= self._prune_every:
                self._prune_every = PRUNE_EVERY_SECONDS  # refusals stopped: prompt again
            return
        if (
            now - at < self._prune_every
            or (self._pruning is not None and not self._pruning.done())
            or self.client.state is not AmiState.CONNECTED
        ):
            return
        if at:
            self._prune_every = min(self._prune_every * 2, PRUNE_MAX_SECONDS)
        self._pruned = (now, self.tracker.refused)
        self._pruning = asyncio.create_task(self._prune(), name="ami-prune")

    async def _prune(self) -> None:
        known = sorted(self.tracker.live_linkedids())
        try:
            channels = await self.client.core_show_channels()
        except AmiError as exc:
            log.warning("CoreShowChannels to prune refused calls failed: %s", exc)
            return
        closed = 0
        # In slices, the event loop served between them: ending a thousand calls in one go
        # held /health for a second on a busy machine.
        try:
            for start in range(0, len(known), PRUNE_SLICE):
                changes = self.tracker.prune(channels, set(known[start : start + PRUNE_SLICE]))
                closed += sum(change.kind is ChangeKind.ENDED for change in changes)
                self._dispatch(changes)
                await asyncio.sleep(0)
        except Exception:
            log.exception("could not prune the live calls")
        log.warning(
            "live-call cap (%d) reached: %d call events refused so far; closed %d calls "
            "the PBX no longer has",
            self._settings.section(PbxTopology).max_live_calls,
            self.tracker.refused,
            closed,
        )

    async def _flush(self) -> None:
        """Store buffered raw events in batches (one INSERT per batch, not per event).

        A Core insert of the table, not the ORM's bulk insert: the rows are plain dicts
        and the ORM's per-row bookkeeping was the largest piece of work that holds the
        event loop (and so the screen-pops) in one go.
        """
        while self._raw:
            batch, self._raw = self._raw[:RAW_BATCH], self._raw[RAW_BATCH:]
            try:
                async with self._database.transaction() as session:
                    await session.execute(insert(RAW_EVENTS), batch)
            except Exception:
                self._raw[:0] = batch
                raise

    async def originate(self, extension: str, number: str, action_id: str) -> None:
        """Ring the operator's extension first, then dial the customer from it."""
        pbx = self._settings.section(PbxTopology)
        await self.client.originate(
            pbx.operator_channel.format(extension=extension),
            context=pbx.originate_context,
            exten=f"{pbx.dial_prefix}{number}",
            caller_id=number,
            action_id=action_id,
        )
