"""Applies the tracker's changes: call rows, screen-pops and call updates; the final
record (CRM activity, cost) is written by `final_record`.

Several instances may see the same AMI events (issue 9), so every write is idempotent:
the call's id is derived from its Linkedid, rows are inserted with ON CONFLICT DO NOTHING
and then updated to the same values, ledger and outbox entries have deterministic keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import date
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import update

from gateway.calls.final_record import RecordWriter, insert_ignore
from gateway.calls.ids import call_id_for
from gateway.calls.pops import (
    AgentMessage,
    CallerCard,
    CallUpdate,
    CallUpdateState,
    display_number,
    look_up_caller,
    publish,
    screen_pop_message,
)
from gateway.calls.records import CallChange, CallRecord, ChangeKind, Direction, RingStopReason
from gateway.calls.settings import PbxTopology
from gateway.core.bus import Bus
from gateway.core.clock import Clock
from gateway.core.db.engine import Database
from gateway.core.db.models import Call
from gateway.core.db.sessions import one_statement, read_session
from gateway.core.db.states import CallState
from gateway.core.settings import Settings
from gateway.customers.public import PhoneMatch

log = logging.getLogger(__name__)
_T = TypeVar("_T")


@dataclass
class _LiveCall:
    """What the recorder remembers of a call in progress (for pops and updates)."""

    call_id: str
    match: PhoneMatch | None = None
    popped: set[str] = field(default_factory=set)
    # The row's first insert runs beside the screen-pop; later writes wait for it.
    inserted: asyncio.Task[None] | None = None
    # The call's screen-pops, started the moment their change arrives (see
    # `CallRecorder.start_now`); the call's later changes wait for them.
    popping: asyncio.Task[None] | None = None
    # The caller's lookup and card, read once per call (several extensions may ring).
    looked_up: CallerCard | None = None
    warming: asyncio.Task[CallerCard] | None = None

    async def row_written(self) -> None:
        """Wait until the call's row exists (its insert failing is logged, not raised)."""
        if self.inserted is not None:
            with contextlib.suppress(Exception):
                await self.inserted

    async def pops_sent(self) -> None:
        """Wait until the pops started so far are out (a failure was logged)."""
        if self.popping is not None:
            with contextlib.suppress(Exception):
                await self.popping


class CallRecorder:
    """Turns `CallChange`s into database rows, bus messages and outbox activities."""

    def __init__(
        self,
        database: Database,
        bus: Bus,
        settings: Settings,
        clock: Clock,
        *,
        records_only: bool = False,
        warm_limit: int | None = None,
        write_slots: asyncio.Semaphore | None = None,
    ) -> None:
        """`records_only`: write final records and nothing live (used by rebuilds);
        `warm_limit`: no warm-up starts while this much work is in flight (`warmups_shed`);
        `write_slots`: held while a call's row is inserted (the caller holds it for `apply`)."""
        self._database, self._bus, self._settings, self._clock = database, bus, settings, clock
        self._records_only = records_only
        self._records = RecordWriter(database, settings)
        self._live: dict[str, _LiveCall] = {}
        self._running: set[asyncio.Task[object]] = set()
        self._warm_limit = warm_limit
        self._write_slots = write_slots
        self.warmups_shed = 0
        # Records are written by every instance that sees the events (idempotently);
        # pops and call updates only by the leader, or operators would get each twice.
        self.announce = True

    async def _announce(self, extension: str, message: AgentMessage) -> None:
        if self.announce:
            await publish(self._bus, extension, message)

    def start_now(self, change: CallChange) -> bool:
        """Start what must not queue behind other calls' writes; False: `apply` it in order.

        The row's first insert, the caller's lookup and the ringing screen-pop run as
        tasks from here; the call's later changes, applied in order by `apply`, wait for
        them (`row_written`, `pops_sent`), so one call's messages keep their order.
        """
        if self._records_only:
            return False
        if change.kind is ChangeKind.STARTED:
            self._started(self._live_call(change), change)
            return True
        if (
            change.kind is ChangeKind.RINGING
            and self._settings.section(PbxTopology).screen_pop_on == "ring"
        ):
            live = self._live_call(change)
            live.popping = self._background(self._pop_after(live.popping, live, change))
            return True
        return False

    async def settle(self, timeout: float = 5.0) -> None:
        """Let started inserts and pops finish (on shutdown); cancel what is still slow."""
        if self._running:
            await asyncio.wait(set(self._running), timeout=timeout)
        for task in set(self._running):
            task.cancel()

    @property
    def in_flight(self) -> int:
        """Inserts, pops and warm-ups started and not finished."""
        return len(self._running)

    def _background(self, work: Coroutine[Any, Any, _T]) -> asyncio.Task[_T]:
        task = asyncio.create_task(work)
        self._running.add(task)
        task.add_done_callback(_finished)
        task.add_done_callback(self._running.discard)
        return task

    def _live_call(self, change: CallChange) -> _LiveCall:
        live = self._live.get(change.linkedid)
        if live is None:
            live = self._live[change.linkedid] = _LiveCall(call_id_for(change.linkedid))
        return live

    async def ready(self, change: CallChange) -> None:
        """Wait for what applying `change` waits for (the call's pops and first insert), so
        a caller holding a write slot for `apply` never holds it waiting on an insert that
        needs one."""
        live = self._live.get(change.linkedid)
        if live is not None:
            await live.pops_sent()
            await live.row_written()

    async def apply(self, changes: list[CallChange]) -> None:
        """Apply changes in order; one failing change is logged, the rest still apply."""
        for change in changes:
            try:
                await self._apply(change)
            except Exception:
                log.exception("could not apply %s of call %s", change.kind, change.linkedid)

    async def _apply(self, change: CallChange) -> None:
        if self._records_only:
            if change.kind is ChangeKind.ENDED and change.record is not None:
                await self.record(change.record)
            return
        live = self._live_call(change)
        pop_on = self._settings.section(PbxTopology).screen_pop_on
        if change.kind is ChangeKind.STARTED:
            self._started(live, change)
            return
        await live.pops_sent()
        if change.kind is ChangeKind.RINGING:
            if pop_on == "ring":
                await self._pop(live, change, change.extensions)
            return
        await live.row_written()
        if change.kind is ChangeKind.ANSWERED:
            await self._answered(live, change, pop_on)
        elif change.kind is ChangeKind.RING_STOPPED:
            await self._ring_stopped(live, change)
        elif change.kind is ChangeKind.ENDED and change.record is not None:
            await self._ended(live, change, change.record)

    async def _answered(self, live: _LiveCall, change: CallChange, pop_on: str) -> None:
        if pop_on == "answer":
            await self._pop(live, change, change.extensions)
        for extension in change.extensions:
            await self._announce(extension, CallUpdate(live.call_id, CallUpdateState.ANSWERED))
        await self._mark_answered(live.call_id, change)

    async def _ring_stopped(self, live: _LiveCall, change: CallChange) -> None:
        state = (
            CallUpdateState.ANSWERED_ELSEWHERE
            if change.reason is RingStopReason.ANSWERED_ELSEWHERE
            else CallUpdateState.ENDED
        )
        for extension in change.extensions:
            await self._announce(extension, CallUpdate(live.call_id, state))

    async def _ended(self, live: _LiveCall, change: CallChange, record: CallRecord) -> None:
        self._live.pop(change.linkedid, None)
        if live.warming is not None:
            live.warming.cancel()  # a call that never rang: its card is not needed
        call_id = await self.record(record, live.match)
        update_message = CallUpdate(call_id, CallUpdateState.ENDED, record.talk_seconds)
        reached = {*record.rang_extensions}
        if record.extension:
            reached.add(record.extension)
        for extension in sorted(reached):
            await self._announce(extension, update_message)

    def _started(self, live: _LiveCall, change: CallChange) -> None:
        # Not awaited: the ringing pop that follows must not wait for a write.
        live.inserted = self._background(self._insert_started(live.call_id, change))
        live.inserted.add_done_callback(_log_failure)
        if self.announce and change.direction is Direction.INBOUND:
            if self._warm_limit is not None and len(self._running) >= self._warm_limit:
                self.warmups_shed += 1  # the pop reads the card itself
                return
            # Who is calling is read while the call is still in the IVR or the queue, so
            # the pop is ready when an extension rings (the card is as of the call's start).
            live.warming = self._background(self._warm(change))

    async def _warm(self, change: CallChange) -> CallerCard:
        async with read_session(self._database) as session:
            return await look_up_caller(
                session, change.caller, self._settings.default_region, self._day(change), None
            )

    def _day(self, change: CallChange) -> date:
        """The change's date in the configured timezone (it picks the next payment)."""
        return change.at.astimezone(ZoneInfo(self._settings.timezone)).date()

    async def _caller(self, live: _LiveCall, change: CallChange) -> CallerCard:
        """The caller's match and card, read once per call (again for a new day, or when
        the number the call started with was not the caller's yet)."""
        if live.warming is not None:
            warming, live.warming = live.warming, None
            try:
                live.looked_up = await warming
            except Exception as exc:
                log.warning("caller lookup at call start failed (%s); reading again", exc)
        day, looked_up = self._day(change), live.looked_up
        if looked_up is None or looked_up.day != day or looked_up.caller != change.caller:
            async with read_session(self._database) as session:
                region = self._settings.default_region
                looked_up = await look_up_caller(session, change.caller, region, day, live.match)
            live.looked_up = looked_up
        return looked_up

    async def _pop_after(
        self, previous: asyncio.Task[None] | None, live: _LiveCall, change: CallChange
    ) -> None:
        if previous is not None:
            await asyncio.wait({previous})  # the same call's earlier pops go first
        try:
            await self._pop(live, change, change.extensions)
        except Exception:
            log.exception("could not apply %s of call %s", change.kind, change.linkedid)

    async def _pop(self, live: _LiveCall, change: CallChange, extensions: tuple[str, ...]) -> None:
        if not extensions or change.direction is not Direction.INBOUND:
            return
        region = self._settings.default_region
        first_look = live.match is None
        caller = await self._caller(live, change)
        if live.match is None:
            live.match = caller.match
        shown = display_number(change.caller, region)
        for extension in extensions:
            if extension in live.popped:
                continue
            live.popped.add(extension)
            message = screen_pop_message(
                live.match, caller.card, call_id=live.call_id, caller=shown, extension=extension
            )
            await self._announce(extension, message)
        if first_look:
            # After the pops: the live row shows who is calling while the call lasts.
            await live.row_written()
            exact = live.match.match in ("exact", "suffix")
            async with one_statement(self._database) as session:
                await session.execute(
                    update(Call)
                    .where(Call.id == live.call_id, Call.state != CallState.ENDED)
                    .values(
                        match=live.match.match,
                        customer_id=live.match.customers[0].id if exact else None,
                    )
                )

    async def _insert_started(self, call_id: str, change: CallChange) -> None:
        if self._write_slots is None:
            await self._insert_row(call_id, change)
            return
        async with self._write_slots:
            await self._insert_row(call_id, change)

    async def _insert_row(self, call_id: str, change: CallChange) -> None:
        now = self._clock.now()
        async with one_statement(self._database) as session:
            await insert_ignore(
                session,
                id=call_id,
                pbx_linkedid=change.linkedid,
                direction=change.direction.value,
                state=CallState.RINGING,
                caller=change.caller,
                started_at=change.at,
                match="none",
                details={},
                created_at=now,
                updated_at=now,
            )

    async def _mark_answered(self, call_id: str, change: CallChange) -> None:
        async with one_statement(self._database) as session:
            await session.execute(
                update(Call)
                .where(Call.id == call_id, Call.state != CallState.ENDED)
                .values(
                    state=CallState.ANSWERED,
                    answered_at=change.at,
                    extension=change.extensions[0] if change.extensions else None,
                    updated_at=self._clock.now(),
                )
            )

    async def record(self, record: CallRecord, known: PhoneMatch | None = None) -> str:
        """Write the final record, match the customer, cost it, tell the CRM; returns id."""
        return await self._records.write(record, known, self._clock.now())


def _finished(task: asyncio.Task[Any]) -> None:
    """Retrieve the exception of every background task: a warm-up nobody awaits (its
    call never rang) would otherwise be logged as never retrieved, once per call.
    Whoever needs the failure logs it (`_log_failure`, `_caller`, `_pop_after`)."""
    if not task.cancelled():
        task.exception()


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("could not insert a call row", exc_info=task.exception())
