"""Advancing due enrollments, exactly once with any number of gateway processes.

Due enrollments are claimed in batches (`FOR UPDATE SKIP LOCKED` and a lease in
`enrollments.locked_until` on PostgreSQL; a conditional UPDATE under SQLite's single
writer) and advanced each by one process; every contact they write carries its
idempotency key, so even a lease that ran out mid-batch cannot double a message.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import flag_modified

from gateway.campaigns.effects import Effects
from gateway.campaigns.engine import Engine
from gateway.campaigns.run_reports import AdvanceReport
from gateway.campaigns.versions import CampaignVersions
from gateway.core.clock import as_utc
from gateway.core.db.dialect import lock_rows
from gateway.core.db.engine import Database
from gateway.core.db.models import Campaign, Enrollment
from gateway.core.db.states import LIVE_ENROLLMENT_STATES, EnrollmentState
from gateway.core.settings import Settings

log = logging.getLogger(__name__)

ADVANCE_BATCH = 500
LEASE = timedelta(minutes=5)


async def _claim(
    database: Database, as_of: datetime, limit: int, campaign_id: str | None
) -> list[str]:
    """Lease up to `limit` due enrollments of enabled campaigns."""
    free = or_(Enrollment.locked_until.is_(None), Enrollment.locked_until <= as_of)
    enabled = Enrollment.campaign_id.in_(select(Campaign.id).where(Campaign.enabled.is_(True)))
    async with database.transaction() as session:
        claimed: list[str] = []
        # One state at a time, in `ix_enrollments_due` order: a plain index scan that
        # stops at `limit` (an IN over both states sorted or bitmap-scanned every due
        # row for every batch, which made a large tick quadratic).
        for state in LIVE_ENROLLMENT_STATES:
            condition = and_(
                Enrollment.state == state, Enrollment.next_run_at <= as_of, free, enabled
            )
            if campaign_id is not None:
                condition = and_(condition, Enrollment.campaign_id == campaign_id)
            query = (
                select(Enrollment.id)
                .where(condition)
                .order_by(Enrollment.next_run_at)
                .limit(limit - len(claimed))
            )
            query = lock_rows(query, database, skip_locked=True, of=Enrollment)
            ids = list(await session.scalars(query))
            if ids:
                claimed += await session.scalars(
                    update(Enrollment)
                    .where(Enrollment.id.in_(ids), condition)
                    .values(locked_until=as_of + LEASE)
                    .returning(Enrollment.id)
                )
            if len(claimed) >= limit:
                break
        return claimed


async def advance_loaded(
    session: AsyncSession,
    engine: Engine,
    versions: CampaignVersions,
    enrollments: list[Enrollment],
    as_of: datetime,
    report: AdvanceReport,
) -> None:
    """Advance enrollments this transaction holds, their contacts in one insert."""
    effects, batch = Effects(), []
    for enrollment in enrollments:
        due = enrollment.next_run_at
        if enrollment.state not in LIVE_ENROLLMENT_STATES or due is None or as_utc(due) > as_of:
            continue  # advanced by another process after our claim's lease ran out
        batch.append((enrollment, await versions.journey(session, enrollment)))
    await engine.prefetch(session, batch, as_of)
    for enrollment, journey in batch:
        await engine.advance(session, enrollment, journey, as_of, effects)
        flag_modified(enrollment, "context")
        enrollment.locked_until = None
        enrollment.updated_at = as_of
    contacts, tasks = await effects.flush(session)
    await session.flush()
    report.enrollments += len(batch)
    report.steps += effects.steps
    report.contacts += contacts
    report.tasks += tasks
    report.status_moves += effects.status_moves
    report.crm_actions += effects.crm_actions


async def _advance_ids(
    database: Database,
    engine: Engine,
    versions: CampaignVersions,
    ids: list[str],
    as_of: datetime,
    report: AdvanceReport,
) -> None:
    """Advance claimed enrollments in one transaction."""
    partial = AdvanceReport()
    async with database.transaction() as session:
        enrollments = list(await session.scalars(select(Enrollment).where(Enrollment.id.in_(ids))))
        await advance_loaded(session, engine, versions, enrollments, as_of, partial)
    report.add(partial)  # counted only once committed


async def _mark_failed(database: Database, enrollment_id: str, error: str, as_of: datetime) -> None:
    async with database.transaction() as session:
        enrollment = await session.get(Enrollment, enrollment_id)
        if enrollment is not None:
            enrollment.state = EnrollmentState.FAILED
            enrollment.next_run_at = None
            enrollment.locked_until = None
            enrollment.context = {**(enrollment.context or {}), "error": error[:500]}
            enrollment.updated_at = as_of


async def advance_due(
    database: Database,
    settings: Settings,
    as_of: datetime,
    *,
    campaign_id: str | None = None,
    batch: int = ADVANCE_BATCH,
) -> AdvanceReport:
    """Advance every enrollment due by `as_of` (of one campaign, or of all enabled ones)."""
    as_of = as_utc(as_of)
    engine, versions, report = Engine(settings), CampaignVersions(), AdvanceReport()
    while ids := await _claim(database, as_of, batch, campaign_id):
        try:
            await _advance_ids(database, engine, versions, ids, as_of, report)
        except Exception:
            # One bad enrollment must not hold back the batch: retry them one by one,
            # and mark only the one that still fails.
            for enrollment_id in ids:
                try:
                    await _advance_ids(database, engine, versions, [enrollment_id], as_of, report)
                except Exception as exc:
                    log.exception("enrollment %s failed", enrollment_id)
                    await _mark_failed(
                        database, enrollment_id, f"{type(exc).__name__}: {exc}", as_of
                    )
                    report.failed += 1
    return report
