"""Campaigns: the API, the `campaign` commands, and the scheduler's campaign tick."""

from __future__ import annotations

import logging
from datetime import datetime

from aiohttp import web

from gateway.campaigns import cli, runner_cli
from gateway.campaigns.http import (
    get_campaign,
    list_campaigns,
    list_versions,
    preview_campaign,
    put_campaign,
    rollback_campaign,
    rule_fields,
)
from gateway.campaigns.runner_cli import run_json
from gateway.campaigns.scheduler import tick
from gateway.core.bus import Bus
from gateway.core.db.engine import Database
from gateway.core.http.endpoints import add_endpoints
from gateway.core.plugin import PeriodicJob, Plugin
from gateway.core.settings import Settings

log = logging.getLogger(__name__)


def setup(app: web.Application, workers: bool) -> None:
    """Add the campaign routes."""
    add_endpoints(
        app,
        list_campaigns,
        get_campaign,
        put_campaign,
        list_versions,
        rollback_campaign,
        preview_campaign,
        rule_fields,
    )


async def campaign_tick(
    database: Database, settings: Settings, as_of: datetime, bus: Bus
) -> dict[str, object]:
    """Enroll every campaign due at `as_of`, then advance every due enrollment."""
    report = await tick(database, settings, as_of, bus)
    if report.runs or report.advance.enrollments:
        log.info(
            "campaign tick: %d run(s), %d enrollment(s) advanced, %d contact(s)",
            len(report.runs),
            report.advance.enrollments,
            report.advance.contacts,
        )
    return {"runs": [run_json(run) for run in report.runs], "advance": vars(report.advance)}


PLUGIN = Plugin(
    name="campaigns",
    setup=setup,
    commands=(cli.register, runner_cli.register),
    periodic_jobs=(PeriodicJob("campaigns", campaign_tick),),
)
