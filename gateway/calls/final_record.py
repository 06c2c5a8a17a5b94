"""A call's final record: the row, its legs, the customer match, cost, CRM activity.

Written by every instance that sees the call (issue 9), so every write is idempotent:
rows are inserted with ON CONFLICT DO NOTHING and then updated to the same values,
ledger and outbox entries have deterministic keys.
"""

from __future__ import annotations

from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import cast

from sqlalchemy import Table, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.calls.ids import call_id_for
from gateway.calls.pops import display_number
from gateway.calls.records import CallRecord, Direction
from gateway.calls.settings import PbxTopology
from gateway.core.db.dialect import insert_for
from gateway.core.db.engine import Database
from gateway.core.db.models import Agent, AgentExtension, Call, CallLeg, CostEntry, Customer
from gateway.core.db.states import CallState
from gateway.core.db.types import new_id
from gateway.core.outbox import enqueue
from gateway.core.settings import Settings
from gateway.customers.public import PhoneMatch, find_by_phone
from gateway.lifecycle.public import LifecyclePolicy
from gateway.tasks.public import auto_complete_tasks

CENT = Decimal("0.01")
CALL_LEGS = cast(Table, CallLeg.__table__)


class RecordWriter:
    """Writes ended calls' records (one transaction each)."""

    def __init__(self, database: Database, settings: Settings) -> None:
        """Write to `database`; rates, region and CRM options come from `settings`."""
        self._database, self._settings = database, settings

    async def write(self, record: CallRecord, known: PhoneMatch | None, now: datetime) -> str:
        """Write the final record, match the customer, cost it, tell the CRM; returns id."""
        region = self._settings.default_region
        customer_number = record.callee if record.direction is Direction.OUTBOUND else record.caller
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
                    state=CallState.ENDED,
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
            if customer_id is not None and self._settings.section(PbxTopology).auto_complete_tasks:
                await auto_complete_tasks(
                    session, call_id, now, self._settings.section(LifecyclePolicy)
                )
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
        await insert_ignore(
            session,
            id=derived,
            pbx_linkedid=record.linkedid,
            direction=record.direction.value,
            state=CallState.ENDED,
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
        data: dict[str, object] = {
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
        if unknown and record.caller and self._settings.section(PbxTopology).report_unknown_callers:
            await enqueue(
                session,
                type="customer.unknown_caller",
                data={"call_id": call_id, "phone": data["caller"], "at": record.started_at},
                ordering_key="unknown_callers",
                occurred_at=record.started_at,
                event_id=f"customer.unknown_caller:{record.linkedid}",
                now=now,
            )


async def insert_ignore(session: AsyncSession, **values: object) -> None:
    """Insert a call row unless its id (or Linkedid) is already there."""
    insert = insert_for(session)
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
    """All the call's legs in one statement (the table's Core insert runs as one
    multi-row INSERT: a round trip for the record, not one per leg)."""
    if not record.legs:
        return
    insert = insert_for(session)
    rows = [
        {
            "uniqueid": leg.uniqueid,
            "call_id": call_id,
            "channel": leg.channel,
            "role": leg.role,
            "extension": leg.extension,
            "started_at": leg.started_at,
            "answered_at": leg.answered_at,
            "ended_at": leg.ended_at,
            "talk_seconds": leg.talk_seconds,
            "hangup_cause": leg.hangup_cause,
        }
        for leg in record.legs
    ]
    await session.execute(insert(CALL_LEGS).on_conflict_do_nothing(), rows)


async def _ledger(
    session: AsyncSession,
    call_id: str,
    customer_id: str | None,
    cost: Decimal,
    settings: Settings,
    record: CallRecord,
) -> None:
    insert = insert_for(session)
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


def _details(record: CallRecord) -> dict[str, object]:
    """Per-operator talk time (transfers), rang extensions and notes, for auditing."""
    return {
        "talk_seconds_by_extension": record.talk_seconds_by_extension(),
        "rang_extensions": list(record.rang_extensions),
        "answer_source": record.answer_source.value if record.answer_source else None,
        "adopted": record.adopted,
        "notes": [{"kind": n.kind, "detail": n.detail} for n in record.notes],
    }
