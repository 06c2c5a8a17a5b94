"""Applies the tracker's changes: call rows, screen-pops, CRM activities, cost.

Several instances may see the same AMI events (issue 9), so every write is idempotent:
the call's id is derived from its Linkedid, rows are inserted with ON CONFLICT DO NOTHING
and then updated to the same values, ledger and outbox entries have deterministic keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from crm_sync.outbox import enqueue
from gateway.bus import Bus
from gateway.calls.ids import call_id_for
from gateway.calls.pops import call_update, display_number, publish, screen_pop
from gateway.calls.records import CallChange, CallRecord, ChangeKind, Direction, RingStopReason
from gateway.clock import Clock
from gateway.customers.service import PhoneMatch, find_by_phone
from gateway.db.engine import Database
from gateway.db.models import Agent, AgentExtension, Call, CallLeg, CostEntry, Customer
from gateway.db.types import new_id
from gateway.settings import Settings
from gateway.tasks.service import auto_complete_tasks

log = logging.getLogger(__name__)
CENT = Decimal("0.01")


@dataclass
class _LiveCall:
    """What the recorder remembers of a call in progress (for pops and updates)."""

    call_id: str
    match: PhoneMatch | None = None
    popped: set[str] = field(default_factory=set)
    # The row's first insert runs beside the screen-pop; later writes wait for it.
    inserted: asyncio.Task[None] | None = None

    async def row_written(self) -> None:
        """Wait until the call's row exists (its insert failing is logged, not raised)."""
        if self.inserted is not None:
            with contextlib.suppress(Exception):
                await self.inserted


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
    ) -> None:
        """`records_only`: write final records and nothing live (used by rebuilds)."""
        self._database, self._bus, self._settings, self._clock = database, bus, settings, clock
        self._records_only = records_only
        self._live: dict[str, _LiveCall] = {}
        # Records are written by every instance that sees the events (idempotently);
        # pops and call updates only by the leader, or operators would get each twice.
        self.announce = True

    async def _announce(self, extension: str, message: dict[str, Any]) -> None:
        if self.announce:
            await publish(self._bus, extension, message)

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
        live = self._live.get(change.linkedid)
        if live is None:
            live = self._live[change.linkedid] = _LiveCall(call_id_for(change.linkedid))
        pop_on = self._settings.pbx.screen_pop_on
        if change.kind is ChangeKind.STARTED:
            # Not awaited here: the ringing pop that follows must not wait for a write.
            live.inserted = asyncio.create_task(self._insert_started(live.call_id, change))
            live.inserted.add_done_callback(_log_failure)
            return
        if change.kind is ChangeKind.RINGING:
            if pop_on == "ring":
                await self._pop(live, change, change.extensions)
            return
        await live.row_written()
        if change.kind is ChangeKind.ANSWERED:
            if pop_on == "answer":
                await self._pop(live, change, change.extensions)
            for extension in change.extensions:
                await self._announce(extension, call_update(live.call_id, "answered"))
            await self._mark_answered(live.call_id, change)
        elif change.kind is ChangeKind.RING_STOPPED:
            state = (
                "answered_elsewhere"
                if change.reason is RingStopReason.ANSWERED_ELSEWHERE
                else "ended"
            )
            for extension in change.extensions:
                await self._announce(extension, call_update(live.call_id, state))
        elif change.kind is ChangeKind.ENDED and change.record is not None:
            self._live.pop(change.linkedid, None)
            call_id = await self.record(change.record, live.match)
            update_message = call_update(call_id, "ended", change.record.talk_seconds)
            reached = {*change.record.rang_extensions}
            if change.record.extension:
                reached.add(change.record.extension)
            for extension in sorted(reached):
                await self._announce(extension, update_message)

    async def _pop(self, live: _LiveCall, change: CallChange, extensions: tuple[str, ...]) -> None:
        if not extensions or change.direction is not Direction.INBOUND:
            return
        region = self._settings.default_region
        first_look = live.match is None
        # One session for the lookup and the cards: a screen-pop is on the clock.
        async with self._database.sessions() as session:
            if live.match is None:
                live.match = await find_by_phone(session, change.caller or "", region)
            for extension in extensions:
                if extension in live.popped:
                    continue
                live.popped.add(extension)
                message = await screen_pop(
                    session,
                    live.match,
                    call_id=live.call_id,
                    caller=display_number(change.caller, region),
                    extension=extension,
                    now=change.at,
                    timezone=self._settings.timezone,
                )
                await self._announce(extension, message)
        if first_look:
            # After the pops: the live row shows who is calling while the call lasts.
            await live.row_written()
            exact = live.match.match in ("exact", "suffix")
            async with self._database.transaction() as session:
                await session.execute(
                    update(Call)
                    .where(Call.id == live.call_id, Call.state != "ended")
                    .values(
                        match=live.match.match,
                        customer_id=live.match.customers[0].id if exact else None,
                    )
                )

    async def _insert_started(self, call_id: str, change: CallChange) -> None:
        now = self._clock.now()
        async with self._database.transaction() as session:
            await _insert_ignore(
                session,
                id=call_id,
                pbx_linkedid=change.linkedid,
                direction=change.direction.value,
                state="ringing",
                caller=change.caller,
                started_at=change.at,
                match="none",
                details={},
                created_at=now,
                updated_at=now,
            )

    async def _mark_answered(self, call_id: str, change: CallChange) -> None:
        async with self._database.transaction() as session:
            await session.execute(
                update(Call)
                .where(Call.id == call_id, Call.state != "ended")
                .values(
                    state="answered",
                    answered_at=change.at,
                    extension=change.extensions[0] if change.extensions else None,
                    updated_at=self._clock.now(),
                )
            )

    async def record(self, record: CallRecord, known: PhoneMatch | None = None) -> str:
        """Write the final record, match the customer, cost it, tell the CRM; returns id."""
        region = self._settings.default_region
        customer_number = record.callee if record.direction is Direction.OUTBOUND else record.caller
        now = self._clock.now()
        async with self._database.transaction() as session:
            found = known or await find_by_phone(session, customer_number or "", region)
            call_id, requested_customer = await self._claim_row(session, record, now)
            customer_id = found.customers[0].id if found.match in ("exact", "suffix") else None
            if requested_customer is not None:
                # Click-to-call named the customer: that beats any number matching.
                customer_id, found = requested_customer, PhoneMatch("exact")
            cost = self._cost(record)
            agent_id = await _agent_for_extension(session, record.extension)
            await session.execute(
                update(Call)
                .where(Call.id == call_id)
                .values(
                    pbx_linkedid=record.linkedid,
                    direction=record.direction.value,
                    state="ended",
                    caller=record.caller,
                    callee=record.callee,
                    extension=record.extension,
                    agent_id=agent_id,
                    customer_id=customer_id,
                    match=found.match,
                    started_at=record.started_at,
                    answered_at=record.answered_at,
                    ended_at=record.ended_at,
                    ring_seconds=record.ring_seconds,
                    talk_seconds=record.talk_seconds,
                    disposition=record.disposition.value,
                    cost=cost,
                    currency=self._settings.costs.currency if cost is not None else None,
                    details=_details(record),
                    updated_at=now,
                )
            )
            await _write_legs(session, call_id, record)
            if cost is not None:
                await _ledger(session, call_id, customer_id, cost, self._settings, record)
            await self._tell_crm(session, call_id, record, found, customer_id, cost, now)
            if customer_id is not None and self._settings.pbx.auto_complete_tasks:
                await auto_complete_tasks(session, call_id, now, self._settings.lifecycle)
        return call_id

    async def _claim_row(
        self, session: AsyncSession, record: CallRecord, now: datetime
    ) -> tuple[str, str | None]:
        """The row this record belongs to (the click-to-call request's, or the Linkedid's)
        and the customer the request named, if any."""
        derived = call_id_for(record.linkedid)
        if record.originate_action_id:
            requested = (
                await session.execute(
                    select(Call.id, Call.customer_id).where(
                        Call.originate_action_id == record.originate_action_id
                    )
                )
            ).first()
            if requested is not None and requested.id != derived:
                # The API already gave out an id for this call: drop the row made when
                # the first channel appeared and let the requested row take the Linkedid.
                await session.execute(delete(Call).where(Call.id == derived))
                await session.flush()
                return str(requested.id), requested.customer_id
        await _insert_ignore(
            session,
            id=derived,
            pbx_linkedid=record.linkedid,
            direction=record.direction.value,
            state="ended",
            match="none",
            details={},
            created_at=now,
            updated_at=now,
        )
        return derived, None

    def _cost(self, record: CallRecord) -> Decimal | None:
        """Outbound talk time at the configured per-minute rate; inbound costs us nothing."""
        if record.direction is not Direction.OUTBOUND or not record.talk_seconds:
            return None
        rate = self._settings.costs.call_per_minute
        return (rate * record.talk_seconds / 60).quantize(CENT, ROUND_HALF_UP)

    async def _tell_crm(
        self,
        session: AsyncSession,
        call_id: str,
        record: CallRecord,
        found: PhoneMatch,
        customer_id: str | None,
        cost: Decimal | None,
        now: datetime,
    ) -> None:
        region = self._settings.default_region
        data: dict[str, Any] = {
            "call_id": call_id,
            "pbx_linkedid": record.linkedid,
            "direction": record.direction.value,
            "caller": display_number(record.caller, region),
            "callee": display_number(record.callee, region),
            "extension": record.extension,
            "external_id": await session.scalar(
                select(Customer.external_id).where(Customer.id == customer_id)
            )
            if customer_id
            else None,
            "match": found.match,
            "started_at": record.started_at,
            "answered_at": record.answered_at,
            "ended_at": record.ended_at,
            "talk_seconds": record.talk_seconds,
            "disposition": record.disposition.value,
            "cost": cost,
            "currency": self._settings.costs.currency if cost is not None else None,
        }
        ordering_key = customer_id or "calls"
        await enqueue(
            session,
            type="call.completed",
            data=data,
            ordering_key=ordering_key,
            occurred_at=record.ended_at,
            event_id=f"call.completed:{record.linkedid}",
            now=now,
        )
        unknown = found.match == "none" and record.direction is Direction.INBOUND
        if unknown and record.caller and self._settings.pbx.report_unknown_callers:
            await enqueue(
                session,
                type="customer.unknown_caller",
                data={"call_id": call_id, "phone": data["caller"], "at": record.started_at},
                ordering_key="unknown_callers",
                occurred_at=record.started_at,
                event_id=f"customer.unknown_caller:{record.linkedid}",
                now=now,
            )


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("could not insert a call row", exc_info=task.exception())


async def _insert_ignore(session: AsyncSession, **values: Any) -> None:
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    await session.execute(insert(Call).values(**values).on_conflict_do_nothing())


async def _agent_for_extension(session: AsyncSession, extension: str | None) -> str | None:
    if not extension:
        return None
    return await session.scalar(
        select(Agent.agent_id)
        .join(AgentExtension, AgentExtension.agent_id == Agent.id)
        .where(AgentExtension.extension == extension)
    )


async def _write_legs(session: AsyncSession, call_id: str, record: CallRecord) -> None:
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    for leg in record.legs:
        await session.execute(
            insert(CallLeg)
            .values(
                uniqueid=leg.uniqueid,
                call_id=call_id,
                channel=leg.channel,
                role=leg.role,
                extension=leg.extension,
                started_at=leg.started_at,
                answered_at=leg.answered_at,
                ended_at=leg.ended_at,
                talk_seconds=leg.talk_seconds,
                hangup_cause=leg.hangup_cause,
            )
            .on_conflict_do_nothing()
        )


async def _ledger(
    session: AsyncSession,
    call_id: str,
    customer_id: str | None,
    cost: Decimal,
    settings: Settings,
    record: CallRecord,
) -> None:
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    await session.execute(
        insert(CostEntry)
        .values(
            id=new_id("cost"),
            at=record.ended_at,
            channel="voice",
            customer_id=customer_id,
            call_id=call_id,
            amount=cost,
            currency=settings.costs.currency,
            source="configured",
            units=record.talk_seconds,
        )
        .on_conflict_do_nothing()
    )


def _details(record: CallRecord) -> dict[str, Any]:
    """Per-operator talk time (transfers), rang extensions and notes, for auditing."""
    return {
        "talk_seconds_by_extension": record.talk_seconds_by_extension(),
        "rang_extensions": list(record.rang_extensions),
        "answer_source": record.answer_source.value if record.answer_source else None,
        "adopted": record.adopted,
        "notes": [{"kind": n.kind, "detail": n.detail} for n in record.notes],
    }
