"""`switchboard campaign run NAME [--as-of T]` (`tick` is the kernel scheduler's)."""

from __future__ import annotations

import argparse

from gateway.campaigns.run_reports import RunReport
from gateway.core.cli import Subparsers, UsageError, as_of_argument, print_report, run_async
from gateway.core.clock import isoformat_z
from gateway.core.db.engine import Database
from gateway.core.settings import Settings


def _campaign_commands(subparsers: Subparsers) -> Subparsers:
    """The `campaign` command's own subcommands (created here if nobody added them yet)."""
    campaign = subparsers.choices.get("campaign")
    if campaign is None:
        campaign = subparsers.add_parser("campaign", help="campaign definitions")
        return campaign.add_subparsers(dest="campaign_command", required=True)
    for action in campaign._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    return campaign.add_subparsers(dest="campaign_command", required=True)


def register(subparsers: Subparsers) -> None:
    """Add `campaign run`."""
    run = _campaign_commands(subparsers).add_parser(
        "run", help="run one tick of a campaign as if the time were T (enroll, then advance)"
    )
    run.add_argument("name")
    run.add_argument("--as-of", help="ISO 8601 time or date (default: now)")
    run.add_argument("--format", choices=("table", "json"), default="table")
    run.set_defaults(handler=_run)


def run_json(run: RunReport) -> dict[str, object]:
    """A campaign run as printed by `campaign run` and `tick`."""
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


def _run(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.campaigns.scheduler import CampaignDisabled, CampaignNotFound, run_campaign
    from gateway.core.bus import make_bus

    as_of = as_of_argument(args, settings)

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
        print_report(run_json(report), args.format)
        return 0

    return run_async(run())
