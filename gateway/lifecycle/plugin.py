"""The lifecycle: its settings section and the daily status moves, cadence and detectors."""

from __future__ import annotations

from datetime import datetime

from gateway.core.db.engine import Database
from gateway.core.plugin import DailyJob, Plugin
from gateway.core.settings import Settings
from gateway.lifecycle.cadence import due_call_tasks
from gateway.lifecycle.detectors import detect_new_active, detect_recession
from gateway.lifecycle.policy import LifecyclePolicy
from gateway.lifecycle.transitions import refresh_statuses


async def move_statuses(
    database: Database, settings: Settings, as_of: datetime
) -> dict[str, object]:
    """Statuses first: cadence and allocation read them."""
    async with database.transaction() as session:
        counts = await refresh_statuses(session, as_of, settings.section(LifecyclePolicy))
    return {"moves": counts.moves, "reactivations": counts.reactivations}


async def cadence_tasks(database: Database, settings: Settings, as_of: datetime) -> int:
    """Call tasks per status cadence (before allocation, which assigns them)."""
    async with database.transaction() as session:
        return len(await due_call_tasks(session, as_of, settings.section(LifecyclePolicy)))


async def recession(database: Database, settings: Settings, as_of: datetime) -> int:
    """Regular buyers gone quiet."""
    async with database.transaction() as session:
        return len(await detect_recession(session, as_of, settings.section(LifecyclePolicy)))


async def new_active(database: Database, settings: Settings, as_of: datetime) -> int:
    """Customers with a burst of orders."""
    async with database.transaction() as session:
        return len(await detect_new_active(session, as_of, settings.section(LifecyclePolicy)))


PLUGIN = Plugin(
    name="lifecycle",
    settings_section=LifecyclePolicy,
    daily_jobs=(
        DailyJob("lifecycle", 10, move_statuses),
        DailyJob("cadence_tasks", 20, cadence_tasks),
        DailyJob("recession", 30, recession),
        DailyJob("new_active", 40, new_active),
    ),
)
