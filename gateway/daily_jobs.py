"""The once-a-day part of `tick`: lifecycle statuses, cadence call tasks, behaviour
detectors, allocation of open call tasks, and the statistics snapshot of the day before.

Every job is idempotent (deterministic ids, conditional writes), so running them again
for the same day changes nothing; the gateway's worker still runs them once a day per
deployment (a bus lock named by the day) to spare the database the scans.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from gateway.allocation.service import run_allocation
from gateway.clock import FixedClock
from gateway.costs.daily import daily_snapshot
from gateway.costs.model import CostModel
from gateway.db.engine import Database
from gateway.lifecycle.cadence import due_call_tasks
from gateway.lifecycle.detectors import detect_new_active, detect_recession
from gateway.lifecycle.transitions import refresh_statuses
from gateway.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class DailyReport:
    """What each daily job did (counts), and the jobs that failed."""

    as_of: datetime
    done: dict[str, Any] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)


async def run_daily(database: Database, settings: Settings, as_of: datetime) -> DailyReport:
    """Run every daily job as of `as_of`; one failing job is logged and the rest still run."""
    report = DailyReport(as_of)
    policy = settings.lifecycle

    async def lifecycle() -> Any:
        async with database.transaction() as session:
            counts = await refresh_statuses(session, as_of, policy)
        return {"moves": counts.moves, "reactivations": counts.reactivations}

    async def cadence() -> Any:
        async with database.transaction() as session:
            return len(await due_call_tasks(session, as_of, policy))

    async def recession() -> Any:
        async with database.transaction() as session:
            return len(await detect_recession(session, as_of, policy))

    async def new_active() -> Any:
        async with database.transaction() as session:
            return len(await detect_new_active(session, as_of, policy))

    async def allocation() -> Any:
        result = await run_allocation(
            database,
            as_of=as_of,
            now=as_of,
            timezone=settings.timezone,
            policy=settings.allocation,
        )
        return result.summary.get("assigned", result.summary)

    async def snapshot() -> Any:
        yesterday = as_of.astimezone(ZoneInfo(settings.timezone)).date() - timedelta(days=1)
        model = CostModel.from_settings(settings)
        await daily_snapshot(database, model, settings.timezone, FixedClock(as_of), yesterday)
        return yesterday.isoformat()

    # Order matters: statuses first (cadence and allocation read them), tasks before
    # allocation (it assigns them), the snapshot last (it counts the day's moves).
    jobs = {
        "lifecycle": lifecycle,
        "cadence_tasks": cadence,
        "recession": recession,
        "new_active": new_active,
        "allocation": allocation,
        "snapshot": snapshot,
    }
    for name, job in jobs.items():
        try:
            report.done[name] = await job()
        except Exception:
            log.exception("daily job %s failed as of %s", name, as_of.isoformat())
            report.failed.append(name)
    return report
