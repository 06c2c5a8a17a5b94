"""Retention: personal data of cancelled and deleted customers, and old raw AMI events.

Customers are anonymised, not deleted. The row keeps its id (call records, tasks, status
changes, enrollments and the cost ledger point at it, so reports keep adding up) and its
status and dates (statistics), while everything that identifies a person goes: name,
e-mail, attributes, products, time zone, bonus balance, phones (rows deleted), the
numbers on its call records, the addresses and rendered texts of its messages, and its
activities, payments and complaints (deleted). `external_id` becomes
`purged:<sha256 of the CRM's id>`: unique still, and the CRM can check whether one of
its ids was purged by hashing it, but the id itself is gone. A CRM event about the same
id afterwards creates a new customer (the CRM has sent the data again).

A customer qualifies when the CRM deleted it, or its status became `cancelled`, more than
`older_than_days` ago. Raw AMI events follow their own configured retention
(`pbx.raw_event_retention_days`; 0 keeps none), since they are operational data with a
different lifetime; the caller passes it. Both are idempotent and batched, one
transaction per batch, so an interrupted purge is completed by running it again.

Processed webhook ids (the CRM's event ids, Twilio's inbound MessageSids) are what makes
a re-delivery a no-op, so they go only after `older_than_days` and never sooner than
`PROCESSED_ID_MIN_DAYS`: a CRM retries a delivery for hours or days (re-signed each
time), while a versioned entity's stale guard still drops an event replayed after that.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, func, null, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from gateway.core.db.engine import Database
from gateway.core.db.models import (
    Activity,
    AmiRawEvent,
    Call,
    Complaint,
    Customer,
    CustomerPhone,
    EntityVersion,
    OutboundContact,
    Payment,
    ProcessedWebhook,
)
from gateway.core.db.states import CustomerStatus

PURGED_PREFIX = "purged:"
CUSTOMER_BATCH = 500
RAW_EVENT_BATCH = 10_000
PROCESSED_ID_MIN_DAYS = 30

Progress = Callable[[str, int], None]
"""Called with a stage ("customers"/"raw_events") and how many rows were just done."""


class RetentionError(ValueError):
    """A retention period that makes no sense (negative)."""


@dataclass
class PurgeReport:
    """What a purge did."""

    customers_anonymised: int = 0
    phones_deleted: int = 0
    activities_deleted: int = 0
    payments_deleted: int = 0
    complaints_deleted: int = 0
    calls_scrubbed: int = 0
    messages_scrubbed: int = 0
    raw_events_deleted: int = 0
    processed_ids_deleted: int = 0


def purged_external_id(external_id: str) -> str:
    """What an anonymised customer's `external_id` becomes."""
    return PURGED_PREFIX + hashlib.sha256(external_id.encode()).hexdigest()


async def count_due(database: Database, older_than_days: int, now: datetime) -> int:
    """How many customers a purge with these arguments would anonymise."""
    cutoff = _cutoff(older_than_days, now)
    async with database.transaction() as session:
        total = await session.scalar(
            select(func.count()).select_from(Customer).where(_qualifies(cutoff))
        )
    return int(total or 0)


async def purge(
    database: Database,
    older_than_days: int,
    now: datetime,
    *,
    raw_event_retention_days: int | None = None,
    progress: Progress | None = None,
) -> PurgeReport:
    """Anonymise qualifying customers and delete raw AMI events past their retention.

    `raw_event_retention_days=None` leaves raw events alone.
    """
    cutoff = _cutoff(older_than_days, now)
    # Both periods checked before anything is written.
    raw_cutoff = None
    if raw_event_retention_days is not None:
        raw_cutoff = _cutoff(raw_event_retention_days, now)
    report = PurgeReport()
    while True:
        async with database.transaction() as session:
            ids = list(
                await session.scalars(
                    select(Customer.id)
                    .where(_qualifies(cutoff))
                    .order_by(Customer.id)
                    .limit(CUSTOMER_BATCH)
                )
            )
            if not ids:
                break
            await _anonymise(session, ids, now, report)
        if progress is not None:
            progress("customers", len(ids))
    if raw_cutoff is not None:
        await _purge_raw_events(database, raw_cutoff, report, progress)
    ids_cutoff = _cutoff(max(older_than_days, PROCESSED_ID_MIN_DAYS), now)
    async with database.transaction() as session:
        result = await session.execute(
            delete(ProcessedWebhook).where(ProcessedWebhook.received_at < ids_cutoff)
        )
        report.processed_ids_deleted = _rowcount(result)
    return report


def _cutoff(days: int, now: datetime) -> datetime:
    if days < 0:
        raise RetentionError(f"a retention period cannot be negative ({days} days)")
    return now - timedelta(days=days)


def _qualifies(cutoff: datetime) -> ColumnElement[bool]:
    deleted = and_(Customer.deleted_at.is_not(None), Customer.deleted_at <= cutoff)
    cancelled = and_(
        Customer.status == CustomerStatus.CANCELLED,
        Customer.status_changed_at.is_not(None),
        Customer.status_changed_at <= cutoff,
    )
    return and_(~Customer.external_id.startswith(PURGED_PREFIX), or_(deleted, cancelled))


async def _anonymise(
    session: AsyncSession, ids: list[str], now: datetime, report: PurgeReport
) -> None:
    """Strip one batch of customers of everything personal, in one transaction."""
    rows = (
        await session.execute(
            select(Customer.id, Customer.external_id, Customer.deleted_at).where(
                Customer.id.in_(ids)
            )
        )
    ).all()
    for model in (CustomerPhone, Activity, Payment, Complaint):
        result = await session.execute(delete(model).where(model.customer_id.in_(ids)))
        deleted = _rowcount(result)
        if model is CustomerPhone:
            report.phones_deleted += deleted
        elif model is Activity:
            report.activities_deleted += deleted
        elif model is Payment:
            report.payments_deleted += deleted
        else:
            report.complaints_deleted += deleted
    # The customer's own number is the caller of an inbound call and the callee of an
    # outbound one; the other end is an extension or a trunk, kept for the statistics.
    for direction, column in (("inbound", "caller"), ("outbound", "callee")):
        result = await session.execute(
            update(Call)
            .where(Call.customer_id.in_(ids), Call.direction == direction)
            .values({column: null(), "updated_at": now})
        )
        report.calls_scrubbed += _rowcount(result)
    result = await session.execute(
        update(OutboundContact)
        .where(OutboundContact.customer_id.in_(ids))
        .values(to_address=null(), subject=null(), body=null(), variables={}, updated_at=now)
    )
    report.messages_scrubbed += _rowcount(result)
    # The entity key holds the CRM's id in clear; without it a later event for that id
    # is simply a new customer.
    await session.execute(
        delete(EntityVersion).where(
            EntityVersion.entity.in_([f"customer:{row.external_id}" for row in rows])
        )
    )
    await session.execute(
        update(Customer),
        [
            {
                "id": row.id,
                "external_id": purged_external_id(row.external_id),
                "name": "",
                "email": None,
                "timezone": None,
                "products": [],
                "attributes": {},
                "bonus_balance": None,
                "do_not_contact": True,
                "deleted_at": row.deleted_at or now,
                "updated_at": now,
            }
            for row in rows
        ],
    )
    report.customers_anonymised += len(rows)


async def _purge_raw_events(
    database: Database, cutoff: datetime, report: PurgeReport, progress: Progress | None
) -> None:
    """Delete raw events received before `cutoff`, a bounded batch per transaction."""
    while True:
        async with database.transaction() as session:
            batch = (
                select(AmiRawEvent.id)
                .where(AmiRawEvent.received_at < cutoff)
                .order_by(AmiRawEvent.id)
                .limit(RAW_EVENT_BATCH)
                .scalar_subquery()
            )
            result = await session.execute(delete(AmiRawEvent).where(AmiRawEvent.id.in_(batch)))
            done = _rowcount(result)
        if not done:
            return
        report.raw_events_deleted += done
        if progress is not None:
            progress("raw_events", done)


def _rowcount(result: object) -> int:
    return int(getattr(result, "rowcount", 0) or 0)
