"""`switchboard campaign run NAME [--as-of T]` and `switchboard tick [--as-of T]`."""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from typing import Any

from gateway.cli import UsageError, run_async
from gateway.clock import SystemClock, TimeInputError, isoformat_z, parse_time_input
from gateway.db.engine import Database
from gateway.settings import Settings


def _campaign_commands(subparsers: Any) -> Any:
    """The `campaign` command's own subcommands (created here if nobody added them yet)."""
    campaign = subparsers.choices.get("campaign")
    if campaign is None:
        campaign = subparsers.add_parser("campaign", help="campaign definitions")
        return campaign.add_subparsers(dest="campaign_command", required=True)
    for action in campaign._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    return campaign.add_subparsers(dest="campaign_command", required=True)


def register(subparsers: Any) -> None:
    """Add `campaign run` and `tick`."""
    run = _campaign_commands(subparsers).add_parser(
        "run", help="run one tick of a campaign as if the time were T (enroll, then advance)"
    )
    run.add_argument("name")
    run.add_argument("--as-of", help="ISO 8601 time or date (default: now)")
    run.add_argument("--format", choices=("table", "json"), default="table")
    run.set_defaults(handler=_run)
    tick = subparsers.add_parser("tick", help="run everything due at T once")
    tick.add_argument("--as-of", help="ISO 8601 time or date (default: now)")
    tick.add_argument("--format", choices=("table", "json"), default="table")
    tick.set_defaults(handler=_tick)


def _as_of(args: argparse.Namespace, settings: Settings) -> datetime:
    if not args.as_of:
        return SystemClock().now()
    try:
        return parse_time_input(args.as_of, settings.timezone)
    except TimeInputError as exc:
        raise UsageError(f"--as-of: {exc}") from exc


def _run_json(run: Any) -> dict[str, Any]:
    return {
        "campaign": run.campaign,
        "as_of": isoformat_z(run.as_of),
        "version": run.version,
        "skipped": run.skipped,
        "audience": run.audience,
        "enrolled": run.enrolled,
        "holdout": run.holdout,
        "advance": vars(run.advance),
    }


def _print(data: dict[str, Any], fmt: str) -> None:
    if fmt == "json":
        print(json.dumps(data, indent=2))
        return
    for key, value in data.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k} {v}" for k, v in value.items())
        elif isinstance(value, list):
            value = "; ".join(f"{item['campaign']}: {item['enrolled']} enrolled" for item in value)
        print(f"{key}: {value if value is not None else '-'}")


def _run(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.bus import make_bus
    from gateway.campaigns.scheduler import CampaignDisabled, CampaignNotFound, run_campaign

    as_of = _as_of(args, settings)

    async def run() -> int:
        database, bus = Database(settings.database_url), make_bus(settings.redis_url)
        try:
            report = await run_campaign(database, settings, args.name, as_of, bus)
        except CampaignNotFound as exc:
            raise UsageError(str(exc)) from exc
        except CampaignDisabled as exc:
            print(f"switchboard: {exc}")
            return 1
        finally:
            await bus.close()
            await database.dispose()
        _print(_run_json(report), args.format)
        return 0

    return run_async(run())


def _tick(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.bus import make_bus
    from gateway.campaigns.scheduler import tick
    from gateway.daily_jobs import run_daily

    as_of = _as_of(args, settings)

    async def run() -> int:
        database, bus = Database(settings.database_url), make_bus(settings.redis_url)
        try:
            report = await tick(database, settings, as_of, bus)
            daily = await run_daily(database, settings, as_of)
        finally:
            await bus.close()
            await database.dispose()
        data = {
            "as_of": isoformat_z(report.as_of),
            "runs": [_run_json(run) for run in report.runs],
            "advance": vars(report.advance),
            "daily": daily.done,
            "daily_failed": daily.failed,
        }
        _print(data, args.format)
        return 0

    return run_async(run())
