"""Campaign runs and ticks: who enters a journey, and which enrollments move, at `as_of`.

Exactly once with any number of gateway processes:

- A run enrolls its audience (`enroll`): a customer enters once per occurrence however
  often or by how many processes it runs. A bus lock `campaign-run:<name>` (Redis with
  several instances) keeps two processes from doing the same run's work twice; the
  database constraint is what makes it correct.
- Due enrollments are claimed and advanced each by one process (`advance`).
- A tick runs each enabled campaign whose cron (in `settings.timezone`) fired in
  (last run, as_of] once, however many fires were missed while nobody ticked.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from gateway.campaigns.advance import advance_due
from gateway.campaigns.enroll import RUN_LOCK_SECONDS, enroll
from gateway.campaigns.run_reports import RunReport, TickReport
from gateway.campaigns.versions import CampaignVersions
from gateway.core.bus import Bus
from gateway.core.clock import as_utc
from gateway.core.cron import is_due, latest_fire, next_fire
from gateway.core.db.engine import Database
from gateway.core.db.models import Campaign
from gateway.core.settings import Settings


class SchedulerError(Exception):
    """Base of the scheduler's errors."""


class CampaignNotFound(SchedulerError, LookupError):
    """No campaign with that name."""


class CampaignDisabled(SchedulerError):
    """The campaign is switched off; it neither enrolls nor advances."""


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
            _, valid = await CampaignVersions().valid(
                session, campaign.id, campaign.current_version
            )
        schedule = valid.definition.schedule
        if only_if_due and not is_due(
            schedule, settings.timezone, as_utc(campaign.last_run_at or campaign.created_at), as_of
        ):
            report.skipped = "not due"
            return report
        report.version = campaign.current_version
        fire = latest_fire(schedule, settings.timezone, as_of)
        await enroll(database, settings, campaign, valid, fire, as_of, report, lock)
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
