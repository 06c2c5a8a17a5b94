"""`switchboard purge --older-than DAYS`: the retention run from the command line."""

from __future__ import annotations

import argparse
import sys

from sqlalchemy.exc import SQLAlchemyError
from tqdm import tqdm

from gateway.calls.public import PbxTopology
from gateway.core.cli import Subparsers, UsageError, run_async
from gateway.core.clock import SystemClock
from gateway.core.db.engine import Database
from gateway.core.settings import Settings
from gateway.retention.service import PROCESSED_ID_MIN_DAYS, PurgeReport, count_due, purge


def register(subparsers: Subparsers) -> None:
    """Add `purge`."""
    command = subparsers.add_parser(
        "purge",
        help="remove personal data of cancelled/deleted customers and old raw events",
        description="Anonymise customers the CRM deleted, or whose status became "
        "cancelled, more than DAYS ago (the row and its id stay so call records and the "
        "cost ledger add up), and delete raw AMI events older than "
        "pbx.raw_event_retention_days.",
    )
    command.add_argument("--older-than", type=int, required=True, metavar="DAYS")
    command.add_argument("--no-progress", action="store_true", help="no progress bar")
    command.set_defaults(handler=_purge)


def _purge(args: argparse.Namespace, settings: Settings) -> int:
    if args.older_than < 0:
        raise UsageError("--older-than must be 0 or more days")
    try:
        report = run_async_report(args, settings)
    except SQLAlchemyError as exc:
        print(f"switchboard: database error: {exc.__class__.__name__}", file=sys.stderr)
        return 1
    for line in describe(
        report, args.older_than, settings.section(PbxTopology).raw_event_retention_days
    ):
        print(line)
    return 0


def run_async_report(args: argparse.Namespace, settings: Settings) -> PurgeReport:
    """Run the purge with a progress bar on stderr."""
    result: list[PurgeReport] = []

    async def run() -> int:
        database = Database(settings.database_url)
        now = SystemClock().now()
        try:
            total = await count_due(database, args.older_than, now)
            with tqdm(
                total=total,
                unit="customer",
                desc="purge",
                file=sys.stderr,
                disable=args.no_progress,
            ) as bar:
                raw_events = 0

                def advance(stage: str, done: int) -> None:
                    nonlocal raw_events
                    if stage == "customers":
                        bar.update(done)
                    else:
                        raw_events += done
                        bar.set_postfix(raw_events=raw_events)

                result.append(
                    await purge(
                        database,
                        args.older_than,
                        now,
                        raw_event_retention_days=settings.section(
                            PbxTopology
                        ).raw_event_retention_days,
                        progress=advance,
                    )
                )
        finally:
            await database.dispose()
        return 0

    run_async(run())
    return result[0]


def describe(report: PurgeReport, older_than: int, raw_days: int) -> list[str]:
    """The summary printed after a purge."""
    return [
        f"customers anonymised (deleted or cancelled over {older_than} days ago): "
        f"{report.customers_anonymised}",
        f"  phones deleted: {report.phones_deleted}, activities: {report.activities_deleted}, "
        f"payments: {report.payments_deleted}, complaints: {report.complaints_deleted}",
        f"  call records scrubbed of numbers: {report.calls_scrubbed}, "
        f"messages scrubbed of addresses and texts: {report.messages_scrubbed}",
        f"raw AMI events deleted (older than {raw_days} days): {report.raw_events_deleted}",
        f"processed webhook ids forgotten (older than "
        f"{max(older_than, PROCESSED_ID_MIN_DAYS)} days): {report.processed_ids_deleted}",
    ]
