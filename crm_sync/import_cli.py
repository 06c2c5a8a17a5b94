"""`switchboard import customers FILE.csv`: the streaming importer from the command line."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from pathlib import Path
from typing import IO

from sqlalchemy.exc import SQLAlchemyError

from crm_sync.csv_import import ImportReport, import_customers
from crm_sync.csv_rows import ImportFileError
from crm_sync.csv_source import BATCH_ROWS
from gateway.core.cli import Subparsers
from gateway.core.clock import SystemClock
from gateway.core.db.engine import Database
from gateway.core.settings import Settings


def register(subparsers: Subparsers) -> None:
    """Add `import customers`."""
    command = subparsers.add_parser("import", help="bulk import from files")
    kinds = command.add_subparsers(dest="import_kind", required=True)
    customers = kinds.add_parser(
        "customers",
        help="upsert customers from a CSV file",
        description="Columns: external_id,name,phones,email,timezone,language,region,"
        "responsible_agent (phones separated by ';'), UTF-8 with or without BOM. "
        "Exit 0: every row imported; 3: some rows rejected; 2: unreadable file or header.",
    )
    customers.add_argument("file", type=Path, help="the CSV file")
    customers.add_argument(
        "--errors", type=Path, help="write every rejected row to this CSV (line, reason, row)"
    )
    customers.add_argument("--no-progress", action="store_true", help="no progress bar")
    customers.add_argument("--batch-size", type=int, default=BATCH_ROWS, help=argparse.SUPPRESS)
    customers.set_defaults(handler=_import_customers)


def _import_customers(args: argparse.Namespace, settings: Settings) -> int:
    if args.batch_size < 1:
        print("switchboard: --batch-size must be at least 1", file=sys.stderr)
        return 2
    with contextlib.ExitStack() as stack:
        errors: IO[str] | None = None
        if args.errors is not None:
            try:
                errors = stack.enter_context(args.errors.open("w", encoding="utf-8", newline=""))
            except OSError as exc:
                print(f"switchboard: cannot write {args.errors}: {exc.strerror}", file=sys.stderr)
                return 2
        try:
            report = asyncio.run(_run(args, settings, errors))
        except ImportFileError as exc:
            print(f"switchboard: {exc}", file=sys.stderr)
            return 2
        except SQLAlchemyError as exc:
            print(f"switchboard: database error: {exc.__class__.__name__}", file=sys.stderr)
            return 1
    for line in describe(report):
        print(line)
    if report.rejected > len(report.rejects) and args.errors is None:
        print("(use --errors FILE to get every rejected row)")
    return report.exit_status


async def _run(
    args: argparse.Namespace, settings: Settings, errors: IO[str] | None
) -> ImportReport:
    database = Database(settings.database_url)
    try:
        return await import_customers(
            database,
            args.file,
            settings.default_region,
            SystemClock(),
            progress=not args.no_progress,
            errors=errors,
            batch_size=args.batch_size,
        )
    finally:
        await database.dispose()


def describe(report: ImportReport) -> list[str]:
    """The report as printable lines: totals, then the kept rejections."""
    lines = [
        f"rows read: {report.rows_read}, imported: {report.imported} "
        f"(created {report.created}, updated {report.updated}, "
        f"unchanged {report.unchanged}), rejected: {report.rejected} "
        f"in {report.seconds:.1f} s"
    ]
    lines.extend(f"line {item.line}: {item.reason}" for item in report.rejects)
    more = report.rejected - len(report.rejects)
    if more > 0:
        lines.append(f"... and {more} more rejected row(s)")
    return lines
