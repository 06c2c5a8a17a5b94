"""Allocation API (admin): run the plan now or as of a given time; agents and partners."""

from __future__ import annotations

from datetime import datetime

from aiohttp import web
from pydantic import BaseModel, ConfigDict

from gateway.allocation.policy import AllocationPolicy
from gateway.allocation.service import AllocationResult, run_allocation
from gateway.core.appkeys import CLOCK, DATABASE, SETTINGS
from gateway.core.clock import TimeInputError, parse_time_input
from gateway.core.http.endpoints import endpoint, json_response, read_body
from gateway.core.http.problems import InvalidInput
from gateway.core.settings import Settings


class RunIn(BaseModel):
    """`{"as_of"}`: ISO 8601 (without offset: the configured time zone); default now."""

    model_config = ConfigDict(extra="forbid")

    as_of: str | None = None


class RunOut(BaseModel):
    """The plan over task ids and the run's summary."""

    run_id: str
    as_of: str
    assignments: dict[str, str]
    unassigned: dict[str, str]
    total_cost: str
    summary: dict[str, object]


def policy_of(settings: Settings) -> AllocationPolicy:
    """The configured policy (defaults until settings carry an `allocation` section)."""
    policy = getattr(settings, "allocation", None)
    return policy if isinstance(policy, AllocationPolicy) else AllocationPolicy()


async def allocate_now(app: web.Application, as_of: datetime | None = None) -> AllocationResult:
    """One allocation run for the app (what the daily tick calls); as_of defaults to now."""
    settings = app[SETTINGS]
    now = app[CLOCK].now()
    return await run_allocation(
        app[DATABASE],
        as_of=as_of or now,
        now=now,
        timezone=settings.timezone,
        policy=policy_of(settings),
    )


@endpoint(
    "POST",
    "/api/allocation/run",
    summary="Allocate open call tasks to partners (as `switchboard allocate`)",
    roles=["admin"],
    body=RunIn,
    response=RunOut,
    tags=["allocation"],
)
async def run(request: web.Request) -> web.Response:
    """The plan: task → partner, unassigned tasks with their reason, the total cost."""
    given = await read_body(request, RunIn)
    as_of = None
    if given.as_of is not None:
        try:
            as_of = parse_time_input(given.as_of, request.app[SETTINGS].timezone)
        except TimeInputError as exc:
            raise InvalidInput(
                f"as_of: {exc}", errors=[{"field": "as_of", "message": str(exc)}]
            ) from exc
    result = await allocate_now(request.app, as_of)
    return json_response(result.as_json())
