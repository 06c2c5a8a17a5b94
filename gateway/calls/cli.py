"""`switchboard calls rebuild --since T`."""

from __future__ import annotations

import argparse

from gateway.core.cli import Subparsers, UsageError, run_async
from gateway.core.clock import SystemClock, TimeInputError, parse_time_input
from gateway.core.db.engine import Database
from gateway.core.settings import Settings


def register(subparsers: Subparsers) -> None:
    """Add the calls commands."""
    calls = subparsers.add_parser("calls", help="call records")
    sub = calls.add_subparsers(dest="calls_command", required=True)
    rebuild = sub.add_parser("rebuild", help="rebuild call records from stored raw AMI events")
    rebuild.add_argument("--since", required=True, help="ISO 8601 time or date")
    rebuild.set_defaults(handler=_rebuild)


def _rebuild(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.calls.rebuild import rebuild_calls

    try:
        since = parse_time_input(args.since, settings.timezone)
    except TimeInputError as exc:
        raise UsageError(f"--since: {exc}") from exc

    async def run() -> int:
        database = Database(settings.database_url)
        try:
            written = await rebuild_calls(database, settings, SystemClock(), since)
        finally:
            await database.dispose()
        print(f"{written} call records rebuilt from raw events since {since.isoformat()}")
        return 0

    return run_async(run())
