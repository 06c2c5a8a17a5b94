"""Campaign runs and ticks: who enters a journey, and which enrollments move, at `as_of`.

Exactly once with any number of gateway processes:

- A run enrolls its audience in keyset-paged batches of ids straight from the segment
  SQL (never the whole audience in memory); each enrollment is inserted with
  `ON CONFLICT (campaign, customer, occurrence) DO NOTHING`, so a customer enters once
  per occurrence (`once`: ever; `run`: per scheduled run's local date; `payment`: per
  due date of their next payment) however often or by how many processes it runs. A
  bus lock `campaign-run:<name>` (Redis with several instances) keeps two processes from
  doing the same run's work twice; the database constraint is what makes it correct.
- Due enrollments are claimed in batches (`FOR UPDATE SKIP LOCKED` and a lease in
  `enrollments.locked_until` on PostgreSQL; a conditional UPDATE under SQLite's single
  writer) and advanced each by one process; every contact they write carries its
  idempotency key, so even a lease that ran out mid-batch cannot double a message.
- A tick runs each enabled campaign whose cron (in `settings.timezone`) fired in
  (last run, as_of] once, however many fires were missed while nobody ticked.

Enrollments keep the campaign version they started on; new ones take the current one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from croniter import croniter
from sqlalchemy import ColumnElement, and_, func, literal, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import flag_modified

from gateway.bus import Bus, Lock
from gateway.campaigns.arms import HOLDOUT, assign_arm
from gateway.campaigns.definition import END, ValidCampaign, validate_definition
from gateway.campaigns.engine import (
    ACTIVE,
    FAILED,
    LIVE_STATES,
    Effects,
    Engine,
    Journey,
    journey_for,
)
from gateway.campaigns.rules import segment
from gateway.campaigns.rules.fields import local_today
from gateway.clock import as_utc
from gateway.db.engine import Database
from gateway.db.models import (
    Campaign,
    CampaignVersion,
    Customer,
    Enrollment,
    ExperimentAssignment,
    Payment,
)
from gateway.db.types import new_id
from gateway.settings import Settings

log = logging.getLogger(__name__)

ENROLL_BATCH = 2000
ADVANCE_BATCH = 500
LEASE = timedelta(minutes=5)
RUN_LOCK_SECONDS = 300.0


class SchedulerError(Exception):
    """Base of the scheduler's errors."""


class CampaignNotFound(SchedulerError, LookupError):
    """No campaign with that name."""


class CampaignDisabled(SchedulerError):
    """The campaign is switched off; it neither enrolls nor advances."""


@dataclass
class AdvanceReport:
    """What advancing due enrollments did."""

    enrollments: int = 0
    steps: int = 0
    contacts: int = 0
    tasks: int = 0
    status_moves: int = 0
    crm_actions: int = 0
    failed: int = 0

    def add(self, other: AdvanceReport) -> None:
        """Add another report's counts to this one."""
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class RunReport:
    """What one campaign run did."""

    campaign: str
    as_of: datetime
    version: int = 0
    skipped: str | None = None  # why nothing was done (another process holds the run)
    audience: int = 0
    enrolled: int = 0
    holdout: int = 0
    advance: AdvanceReport = field(default_factory=AdvanceReport)


@dataclass
class TickReport:
    """What one tick did: the campaigns it ran and the enrollments it moved."""

    as_of: datetime
    runs: list[RunReport] = field(default_factory=list)
    advance: AdvanceReport = field(default_factory=AdvanceReport)


def latest_fire(schedule: str, timezone: str, as_of: datetime) -> datetime:
    """The last time the cron fired at or before `as_of` (UTC)."""
    zone = ZoneInfo(timezone)
    start = (as_utc(as_of) + timedelta(seconds=1)).astimezone(zone).replace(microsecond=0)
    fires = croniter(schedule, start)
    fire = as_utc(fires.get_prev(datetime))
    while fire > as_of:
        fire = as_utc(fires.get_prev(datetime))
    return fire


def next_fire(schedule: str, timezone: str, after: datetime) -> datetime:
    """The first time the cron fires strictly after `after` (UTC)."""
    zone = ZoneInfo(timezone)
    return as_utc(croniter(schedule, as_utc(after).astimezone(zone)).get_next(datetime))


def is_due(schedule: str, timezone: str, last_run: datetime, as_of: datetime) -> bool:
    """Whether the cron fired in (last_run, as_of] — once is enough, however many times."""
    return next_fire(schedule, timezone, last_run) <= as_utc(as_of)


def _insert(session: AsyncSession) -> Any:
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


class _Versions:
    """Campaign versions and their journeys, loaded once per run or tick."""

    def __init__(self) -> None:
        self._valid: dict[tuple[str, int], tuple[str, ValidCampaign]] = {}
        self._journeys: dict[tuple[str, int, str], Journey] = {}

    async def journey(self, session: AsyncSession, enrollment: Enrollment) -> Journey:
        key = (enrollment.campaign_id, enrollment.version, enrollment.arm or "default")
        if key not in self._journeys:
            _, valid = await self.valid(session, enrollment.campaign_id, enrollment.version)
            self._journeys[key] = journey_for(enrollment.campaign_id, valid, key[2])
        return self._journeys[key]

    async def valid(
        self, session: AsyncSession, campaign_id: str, version: int
    ) -> tuple[str, ValidCampaign]:
        key = (campaign_id, version)
        if key not in self._valid:
            row = (
                await session.execute(
                    select(Campaign.name, CampaignVersion.definition)
                    .join(CampaignVersion, CampaignVersion.campaign_id == Campaign.id)
                    .where(Campaign.id == campaign_id, CampaignVersion.version == version)
                )
            ).one()
            self._valid[key] = (row.name, validate_definition(row.definition))
        return self._valid[key]


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
    due = and_(Payment.customer_id == Customer.id, Payment.status == "due")
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
    versions: _Versions,
) -> None:
    """Enroll one batch of (customer id, occurrence) and start the new journeys."""
    definition = valid.definition
    arms: dict[str, str] = {}
    customer_ids = [customer_id for customer_id, _ in rows]
    if definition.experiment is not None:
        await session.execute(
            _insert(session)(ExperimentAssignment).on_conflict_do_nothing(
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
                "state": HOLDOUT if held else ACTIVE,
                "next_run_at": None if held else as_of,
                "arm": arm,
                "context": {},
                "created_at": as_of,
                "updated_at": as_of,
            }
        )
    result = await session.execute(
        _insert(session)(Enrollment)
        .on_conflict_do_nothing(index_elements=["campaign_id", "customer_id", "occurrence"])
        .returning(Enrollment.id, Enrollment.state),
        values,
    )
    fresh = []
    for enrollment_id, state in result.all():
        report.enrolled += 1
        report.holdout += int(state == HOLDOUT)
        if state == ACTIVE:
            fresh.append(enrollment_id)
    if not fresh:
        return
    # Nobody else can see rows this transaction inserted: advance them here, without
    # a claim. Should that fail, they stay due and `advance_due` takes them one by one.
    partial = AdvanceReport()
    try:
        async with session.begin_nested():
            started = await session.scalars(select(Enrollment).where(Enrollment.id.in_(fresh)))
            await _advance_loaded(session, engine, versions, list(started), as_of, partial)
    except Exception:
        log.exception("advancing new enrollments of %s failed; left due", campaign.name)
        return
    report.advance.add(partial)


async def _enroll(
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
    engine, versions = Engine(settings), _Versions()
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


async def run_campaign(
    database: Database,
    settings: Settings,
    name: str,
    as_of: datetime,
    bus: Bus | None = None,
    *,
    only_if_due: bool = False,
) -> RunReport:
    """Enroll the campaign's audience at `as_of`, then advance its due enrollments.

    CampaignNotFound / CampaignDisabled change nothing. With `only_if_due` (the tick),
    a campaign whose schedule has not fired since its last run does nothing.
    """
    as_of = as_utc(as_of)
    report = RunReport(campaign=name, as_of=as_of)
    lock = bus.lock(f"campaign-run:{name}", RUN_LOCK_SECONDS) if bus is not None else None
    if lock is not None and not await lock.acquire():
        report.skipped = "another process is running this campaign"
        return report
    try:
        async with database.sessions() as session:
            campaign = (
                await session.scalars(select(Campaign).where(Campaign.name == name))
            ).one_or_none()
            if campaign is None:
                raise CampaignNotFound(f"no campaign {name}")
            if not campaign.enabled:
                raise CampaignDisabled(f"campaign {name} is disabled")
            _, valid = await _Versions().valid(session, campaign.id, campaign.current_version)
        schedule = valid.definition.schedule
        if only_if_due and not is_due(
            schedule, settings.timezone, as_utc(campaign.last_run_at or campaign.created_at), as_of
        ):
            report.skipped = "not due"
            return report
        report.version = campaign.current_version
        fire = latest_fire(schedule, settings.timezone, as_of)
        await _enroll(database, settings, campaign, valid, fire, as_of, report, lock)
        async with database.transaction() as session:
            row = await session.get(Campaign, campaign.id)
            if row is not None:
                last = row.last_run_at
                row.last_run_at = as_of if last is None or as_utc(last) < as_of else last
                row.next_run_at = next_fire(schedule, settings.timezone, as_of)
                row.updated_at = as_of
        report.advance.add(await advance_due(database, settings, as_of, campaign_id=campaign.id))
        return report
    finally:
        if lock is not None:
            await lock.release()


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
        for state in LIVE_STATES:
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
            if not database.is_sqlite:
                query = query.with_for_update(skip_locked=True, of=Enrollment)
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


async def _advance_loaded(
    session: AsyncSession,
    engine: Engine,
    versions: _Versions,
    enrollments: list[Enrollment],
    as_of: datetime,
    report: AdvanceReport,
) -> None:
    """Advance enrollments this transaction holds, their contacts in one insert."""
    effects, batch = Effects(), []
    for enrollment in enrollments:
        due = enrollment.next_run_at
        if enrollment.state not in LIVE_STATES or due is None or as_utc(due) > as_of:
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
    versions: _Versions,
    ids: list[str],
    as_of: datetime,
    report: AdvanceReport,
) -> None:
    """Advance claimed enrollments in one transaction."""
    partial = AdvanceReport()
    async with database.transaction() as session:
        enrollments = list(await session.scalars(select(Enrollment).where(Enrollment.id.in_(ids))))
        await _advance_loaded(session, engine, versions, enrollments, as_of, partial)
    report.add(partial)  # counted only once committed


async def _mark_failed(database: Database, enrollment_id: str, error: str, as_of: datetime) -> None:
    async with database.transaction() as session:
        enrollment = await session.get(Enrollment, enrollment_id)
        if enrollment is not None:
            enrollment.state = FAILED
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
    engine, versions, report = Engine(settings), _Versions(), AdvanceReport()
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


async def tick(
    database: Database, settings: Settings, as_of: datetime, bus: Bus | None = None
) -> TickReport:
    """Run every enabled campaign whose schedule fired, then advance every due enrollment."""
    as_of = as_utc(as_of)
    report = TickReport(as_of=as_of)
    async with database.sessions() as session:
        names = list(
            await session.scalars(
                select(Campaign.name).where(Campaign.enabled.is_(True)).order_by(Campaign.name)
            )
        )
    for name in names:
        try:
            run = await run_campaign(database, settings, name, as_of, bus, only_if_due=True)
        except (CampaignNotFound, CampaignDisabled):
            continue  # switched off or removed since the list was read
        if run.skipped != "not due":
            report.runs.append(run)
            report.advance.add(run.advance)
    report.advance.add(await advance_due(database, settings, as_of))
    return report


__all__ = [
    "AdvanceReport",
    "CampaignDisabled",
    "CampaignNotFound",
    "RunReport",
    "SchedulerError",
    "TickReport",
    "advance_due",
    "is_due",
    "latest_fire",
    "next_fire",
    "run_campaign",
    "tick",
]
