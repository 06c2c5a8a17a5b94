"""`switchboard outbox list|retry`: look at and requeue the CRM push-back queue."""

from __future__ import annotations

import argparse

from crm_sync.outbox import STATES, list_items, retry_dead
from gateway.core.cli import Subparsers, UsageError, run_async
from gateway.core.clock import SystemClock, isoformat_z
from gateway.core.db.engine import Database
from gateway.core.db.models.crm import OutboxItem
from gateway.core.settings import Settings

MAX_LIMIT = 500
_COLUMNS = (
    "seq",
    "state",
    "attempts",
    "type",
    "ordering_key",
    "event_id",
    "next_attempt_at",
    "last_status",
    "last_error",
)
_ERROR_WIDTH = 60


def register(subparsers: Subparsers) -> None:
    """Add `outbox list` and `outbox retry`."""
    outbox = subparsers.add_parser("outbox", help="CRM push-back queue")
    sub = outbox.add_subparsers(dest="outbox_command", required=True)
    listing = sub.add_parser("list", help="show queued, delivered or dead items")
    listing.add_argument("--state", choices=STATES, help="only items in this state")
    listing.add_argument("--limit", type=int, default=50, help=f"at most N rows (1-{MAX_LIMIT})")
    listing.set_defaults(handler=_list)
    retry = sub.add_parser("retry", help="put a dead item back in the queue")
    retry.add_argument("seq", metavar="ID", type=int, help="the item's seq (from `list`)")
    retry.set_defaults(handler=_retry)


def _row(item: OutboxItem) -> list[str]:
    error = (item.last_error or "").replace("\n", " ")
    if len(error) > _ERROR_WIDTH:
        error = error[: _ERROR_WIDTH - 1] + "…"
    return [
        str(item.seq),
        item.state,
        str(item.attempts),
        item.type,
        item.ordering_key,
        item.event_id,
        isoformat_z(item.next_attempt_at) or "",
        "" if item.last_status is None else str(item.last_status),
        error,
    ]


def format_table(items: list[OutboxItem]) -> str:
    """Aligned text table of items, header first."""
    rows = [list(_COLUMNS), *(_row(item) for item in items)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def _list(args: argparse.Namespace, settings: Settings) -> int:
    if not 1 <= args.limit <= MAX_LIMIT:
        raise UsageError(f"--limit must be between 1 and {MAX_LIMIT}, got {args.limit}")

    async def run() -> int:
        database = Database(settings.database_url)
        try:
            async with database.transaction() as session:
                items = await list_items(session, state=args.state, limit=args.limit)
        finally:
            await database.dispose()
        print(format_table(items))
        return 0

    return run_async(run())


def _retry(args: argparse.Namespace, settings: Settings) -> int:
    async def run() -> int:
        database = Database(settings.database_url)
        try:
            async with database.transaction() as session:
                item = await retry_dead(session, args.seq, SystemClock().now())
        finally:
            await database.dispose()
        if item is None:
            raise UsageError(f"no dead outbox item {args.seq}")
        print(f"outbox item {item.seq} ({item.type}, {item.event_id}) is queued again")
        return 0

    return run_async(run())
