"""Allocation: the run and explain API, agents and partners, `allocate`, the daily run."""

from __future__ import annotations

from datetime import datetime

from aiohttp import web

from gateway.allocation import cli
from gateway.allocation.explain_http import explain_run
from gateway.allocation.http import run
from gateway.allocation.people_http import (
    get_agent,
    get_partner,
    list_agents,
    list_partners,
    put_agent,
    put_partner,
)
from gateway.allocation.policy import AllocationPolicy
from gateway.allocation.service import run_allocation
from gateway.core.db.engine import Database
from gateway.core.http.endpoints import add_endpoints
from gateway.core.plugin import DailyJob, Plugin
from gateway.core.settings import Settings


def setup(app: web.Application, workers: bool) -> None:
    """Add the allocation run and explain routes and the agents/partners API."""
    add_endpoints(app, run, explain_run)
    add_endpoints(app, list_partners, get_partner, put_partner, list_agents, get_agent, put_agent)


async def allocate_open_tasks(database: Database, settings: Settings, as_of: datetime) -> object:
    """Give the open call tasks to agents and partners (after the day's tasks exist)."""
    result = await run_allocation(
        database,
        as_of=as_of,
        now=as_of,
        timezone=settings.timezone,
        policy=settings.section(AllocationPolicy),
    )
    return result.summary.get("assigned", result.summary)


PLUGIN = Plugin(
    name="allocation",
    setup=setup,
    commands=(cli.register,),
    settings_section=AllocationPolicy,
    daily_jobs=(DailyJob("allocation", 50, allocate_open_tasks),),
)
