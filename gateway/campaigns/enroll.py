"""Enrolling a campaign's audience: keyset-paged batches straight from the segment SQL.

Each enrollment is inserted with `ON CONFLICT (campaign, customer, occurrence) DO
NOTHING`, so a customer enters once per occurrence (`once`: ever; `run`: per scheduled
run's local date; `payment`: per due date of their next payment) however often or by
how many processes it runs; the whole audience is never held in memory.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.campaigns.advance import advance_loaded
from gateway.campaigns.arms import HOLDOUT, assign_arm
from gateway.campaigns.definition import END, ValidCampaign
from gateway.campaigns.engine import Engine
from gateway.campaigns.run_reports import AdvanceReport, RunReport
from gateway.campaigns.versions import CampaignVersions
from gateway.core.bus import Lock
from gateway.core.db.dialect import insert_for
from gateway.core.db.engine import Database
from gateway.core.db.models import Campaign, Customer, Enrollment, ExperimentAssignment, Payment
from gateway.core.db.states import EnrollmentState, PaymentStatus
from gateway.core.db.types import new_id
from gateway.core.rules import segment
from gateway.core.rules.fields import local_today
from gateway.core.settings import Settings

log = logging.getLogger(__name__)

ENROLL_BATCH = 2000
RUN_LOCK_SECONDS = 300.0


def _occurrence_column(
    valid: ValidCampaign, fire: datetime, as_of: datetime, settings: Settings
) -> ColumnElement[Any]:
    """Each selected customer's occurrence key, as a column of the segment query."""
    kind = valid.definition.occurrence
    if kind == "once":
        return literal("once")
    if kind == "run":
        return literal(fire.astimezone(ZoneInfo(settings.timezone)).date().isoformat())
    today = local_today(as_of, settings.timezone)
    due = and_(Payment.customer_id == Customer.id, Payment.status == PaymentStatus.DUE)
    upcoming = select(func.min(Payment.due_date)).where(due, Payment.due_date >= today)
    overdue = select(func.max(Payment.due_date)).where(due, Payment.due_date < today)
    return func.coalesce(
        upcoming.scalar_subquery(), overdue.scalar_subquery()
    )  # a date; made a string in Python (the dialects format dates differently)


async def _enroll_batch(
    session: AsyncSession,
    campaign: Campaign,
    valid: ValidCampaign,
    rows: list[tuple[str, Any]],
    as_of: datetime,
    report: RunReport,
    engine: Engine,
    versions: CampaignVersions,
) -> None:
    """Enroll one batch of (customer id, occurrence) and start the new journeys."""
    definition = valid.definition
    arms: dict[str, str] = {}
    customer_ids = [customer_id for customer_id, _ in rows]
    if definition.experiment is not None:
        await session.execute(
            insert_for(session)(ExperimentAssignment).on_conflict_do_nothing(
                index_elements=["campaign_id", "customer_id"]
            ),
            [
                {
                    "campaign_id": campaign.id,
                    "customer_id": customer_id,
                    "arm": assign_arm(definition.name, customer_id, definition.experiment),
                    "assigned_at": as_of,
                }
                for customer_id in customer_ids
            ],
        )
        # The stored arm wins: a later change of weights never moves anyone.
        stored = await session.execute(
            select(ExperimentAssignment.customer_id, ExperimentAssignment.arm).where(
                ExperimentAssignment.campaign_id == campaign.id,
                ExperimentAssignment.customer_id.in_(customer_ids),
            )
        )
        arms = {customer_id: arm for customer_id, arm in stored.all()}
    firsts = {name: str(steps[0].id) for name, steps in definition.journeys().items()}
    values = []
    for customer_id, occurrence in rows:
        arm = arms.get(customer_id, "default")
        held = arm == HOLDOUT or arm not in firsts
        values.append(
            {
                "id": new_id("enr"),
                "campaign_id": campaign.id,
                "version": campaign.current_version,
                "customer_id": customer_id,
                "occurrence": "none" if occurrence is None else str(occurrence),
                "step": END if held else firsts[arm],
                "state": EnrollmentState.HOLDOUT if held else EnrollmentState.ACTIVE,
                "next_run_at": None if held else as_of,
                "arm": arm,
                "context": {},
                "created_at": as_of,
                "updated_at": as_of,
            }
        )
    result = await session.execute(
        insert_for(session)(Enrollment)
        .on_conflict_do_nothing(index_elements=["campaign_id", "customer_id", "occurrence"])
        .returning(Enrollment.id, Enrollment.state),
        values,
    )
    fresh = []
    for enrollment_id, state in result.all():
        report.enrolled += 1
        report.holdout += int(state == EnrollmentState.HOLDOUT)
        if state == EnrollmentState.ACTIVE:
            fresh.append(enrollment_id)
    if not fresh:
        return
    # Nobody else can see rows this transaction inserted: advance them here, without
    # a claim. Should that fail, they stay due and `advance_due` takes them one by one.
    partial = AdvanceReport()
    try:
        async with session.begin_nested():
            started = await session.scalars(select(Enrollment).where(Enrollment.id.in_(fresh)))
            await advance_loaded(session, engine, versions, list(started), as_of, partial)
    except Exception:
        log.exception("advancing new enrollments of %s failed; left due", campaign.name)
        return
    report.advance.add(partial)


async def enroll(
    database: Database,
    settings: Settings,
    campaign: Campaign,
    valid: ValidCampaign,
    fire: datetime,
    as_of: datetime,
    report: RunReport,
    lock: Lock | None,
) -> None:
    last = ""
    engine, versions = Engine(settings), CampaignVersions()
    while True:
        async with database.transaction() as session:
            audience = segment(session, valid.audience, as_of, timezone=settings.timezone)
            query = (
                audience.add_columns(_occurrence_column(valid, fire, as_of, settings))
                .where(Customer.id > last)
                .order_by(Customer.id)
                .limit(ENROLL_BATCH)
            )
            rows = [(str(row[0]), row[1]) for row in (await session.execute(query)).all()]
            if not rows:
                return
            report.audience += len(rows)
            await _enroll_batch(session, campaign, valid, rows, as_of, report, engine, versions)
        last = rows[-1][0]
        if lock is not None:
            await lock.extend(RUN_LOCK_SECONDS)
