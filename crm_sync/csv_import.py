"""Streaming CSV import of customers: validate row by row, upsert in batches.

The file is read and validated in a thread (`csv_source`, rules in `csv_rows`) while the
previous batch is written (`csv_write`); this module runs the two and counts.
"""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from sqlalchemy.ext.asyncio import AsyncConnection
from tqdm import tqdm

from crm_sync.csv_rows import Rejected
from crm_sync.csv_source import BATCH_ROWS, Batch, CsvSource
from crm_sync.csv_write import write_batch
from gateway.core.clock import Clock
from gateway.core.db.engine import Database

REJECTS_KEPT = 50


@dataclass(slots=True)
class ImportReport:
    """What an import did; `rejects` keeps the first REJECTS_KEPT of `rejected`."""

    rows_read: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    rejects: list[Rejected] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def imported(self) -> int:
        """Rows applied (created, updated or already as in the file)."""
        return self.created + self.updated + self.unchanged

    @property
    def exit_status(self) -> int:
        """0 when every row went in, 3 when some were rejected."""
        return 3 if self.rejected else 0


async def import_customers(
    database: Database,
    path: Path,
    region: str,
    clock: Clock,
    progress: bool = True,
    *,
    errors: IO[str] | None = None,
    batch_size: int = BATCH_ROWS,
) -> ImportReport:
    """Import a customers CSV; raises ImportFileError when the file cannot be used.

    Each batch is one transaction, so an interrupted import keeps what it committed and
    a re-run completes it. The next batch is read in a thread while this one is written.
    """
    started = time.perf_counter()
    source: CsvSource = await asyncio.to_thread(CsvSource, Path(path), region, errors)
    report = ImportReport()
    bar = tqdm(
        total=source.size,
        initial=source.bytes_read,  # the header
        unit="B",
        unit_scale=True,
        desc="customers",
        file=sys.stderr,
        disable=not progress,
    )
    try:
        async with database.engine.connect() as conn:
            await _pump(source, conn, clock, report, bar, batch_size)
    finally:
        bar.close()
        await asyncio.to_thread(source.close)
    report.seconds = time.perf_counter() - started
    return report


async def _pump(
    source: CsvSource,
    conn: AsyncConnection,
    clock: Clock,
    report: ImportReport,
    bar: tqdm[Any],
    batch_size: int,
) -> None:
    """Write batch after batch while the next one is read and validated in a thread."""
    reading: asyncio.Future[Batch] | None = None
    try:
        reading = asyncio.ensure_future(asyncio.to_thread(source.next_batch, batch_size))
        while reading is not None:
            batch = await reading
            reading = None
            if not batch.done:
                reading = asyncio.ensure_future(asyncio.to_thread(source.next_batch, batch_size))
            if batch.rows:
                created, updated, unchanged = await write_batch(conn, batch.rows, clock.now())
                report.created += created
                report.updated += updated
                report.unchanged += unchanged
            report.rows_read += batch.rows_read
            report.rejected += len(batch.rejects)
            report.rejects.extend(batch.rejects[: max(REJECTS_KEPT - len(report.rejects), 0)])
            bar.update(batch.bytes_read)
    finally:
        if reading is not None:  # the thread cannot be cancelled: let it finish first
            await asyncio.gather(reading, return_exceptions=True)
