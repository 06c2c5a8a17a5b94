"""`switchboard campaign list | load [DIR] | preview NAME [--as-of T]`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from gateway.core.cli import Subparsers, UsageError, run_async
from gateway.core.clock import SystemClock, TimeInputError, isoformat_z, parse_time_input
from gateway.core.db.engine import Database
from gateway.core.settings import Settings


def register(subparsers: Subparsers) -> None:
    """Add the campaign commands (`run` is added by the journey engine's module)."""
    campaign = subparsers.add_parser("campaign", help="campaign definitions")
    sub = campaign.add_subparsers(dest="campaign_command", required=True)
    sub.add_parser("list", help="campaigns with version and schedule state").set_defaults(
        handler=_list
    )
    load = sub.add_parser("load", help="load YAML definitions (and ../templates) as new versions")
    load.add_argument("directory", nargs="?", type=Path, default=Path("config/campaigns"))
    load.add_argument(
        "--templates", type=Path, help="templates directory (default: DIR/../templates)"
    )
    load.set_defaults(handler=_load)
    show = sub.add_parser("preview", help="dry run: who, which step and channel, estimated cost")
    show.add_argument("name")
    show.add_argument("--as-of", help="ISO 8601 time or date (default: now)")
    show.add_argument("--format", choices=("table", "json"), default="table")
    show.set_defaults(handler=_preview)


def _list(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.campaigns import store

    async def run() -> int:
        database = Database(settings.database_url)
        try:
            async with database.sessions() as session:
                campaigns = await store.list_campaigns(session)
        finally:
            await database.dispose()
        if not campaigns:
            print("no campaigns (load some with `switchboard campaign load`)")
        for campaign in campaigns:
            state = "enabled" if campaign.enabled else "disabled"
            print(
                f"{campaign.name}\tv{campaign.current_version}\t{state}"
                f"\tlast run {isoformat_z(campaign.last_run_at) or '-'}"
                f"\tnext run {isoformat_z(campaign.next_run_at) or '-'}"
            )
        return 0

    return run_async(run())


def _load(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.campaigns.store import LoadError, load_directory

    async def run() -> int:
        database = Database(settings.database_url)
        try:
            report = await load_directory(
                database, args.directory, SystemClock().now(), templates=args.templates
            )
        except LoadError as exc:
            raise UsageError(str(exc)) from exc
        finally:
            await database.dispose()
        for file in report.loaded:
            print(f"loaded {file}")
        for file in report.unchanged:
            print(f"unchanged {file}")
        for problem in report.refused:
            print(f"refused {problem}")
        print(
            f"{len(report.loaded)} loaded, {len(report.unchanged)} unchanged, "
            f"{len(report.refused)} refused"
        )
        # A refused file is unreadable input: exit 2, as the contract has it.
        return 0 if report.ok else 2

    return run_async(run())


def _preview(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.campaigns import store
    from gateway.campaigns.preview import preview

    try:
        as_of = (
            parse_time_input(args.as_of, settings.timezone) if args.as_of else SystemClock().now()
        )
    except TimeInputError as exc:
        raise UsageError(f"--as-of: {exc}") from exc

    async def run() -> int:
        database = Database(settings.database_url)
        try:
            async with database.sessions() as session:
                valid = await store.current_valid(session, args.name)
                result = await preview(session, valid, as_of, settings)
        except store.CampaignNotFound as exc:
            raise UsageError(str(exc)) from exc
        finally:
            await database.dispose()
        data = result.as_json()
        if args.format == "json":
            print(json.dumps(data, ensure_ascii=False, indent=2))
        else:
            _print_table(data)
        return 0

    return run_async(run())


def _print_table(data: dict[str, Any]) -> None:
    print(f"campaign {data['campaign']} as of {data['as_of']}")
    print(f"audience: {data['count']} customers ({data['holdout']} in holdout)")
    for customer in data["sample"]:
        print(f"  {customer['id']}\t{customer['name']}\t{customer['arm']}")
    for arm in data["arms"]:
        print(f"arm {arm['arm']}: {arm['customers']} customers")
        for contact in arm["first_contacts"]:
            what = contact["step"] or "no contact"
            channel = f" {contact['channel']}" if contact["channel"] else ""
            print(
                f"  {what} ({contact['type'] or '-'}{channel}): {contact['customers']}"
                f"\t{contact['cost']} {data['currency']}"
            )
    print(f"estimated cost: {data['estimated_cost']} {data['currency']}")
    for note in data["notes"]:
        print(f"note: {note}")
