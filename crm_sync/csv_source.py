"""Reading a customer CSV lazily, batch by batch, each row validated as it is read.

Line numbers are physical lines (the header is line 1); a row whose quoted field spans
lines is reported by the line it starts on.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from crm_sync.csv_lines import LineSource, RunawayField
from crm_sync.csv_rows import (
    COLUMNS,
    CustomerRow,
    ImportFileError,
    Rejected,
    RowRejected,
    RowShapeRejected,
    RowValidator,
    read_header,
)
from crm_sync.csv_safe import SpreadsheetSafeWriter

BATCH_ROWS = 2_000


@dataclass(slots=True)
class Batch:
    """Up to BATCH_ROWS rows read from the file, validated."""

    rows: list[CustomerRow]
    rejects: list[Rejected]
    rows_read: int
    bytes_read: int
    done: bool


class CsvSource:
    """Reads the file lazily: lines decoded one by one, csv rows with their start line."""

    def __init__(self, path: Path, region: str, errors: IO[str] | None = None) -> None:
        try:
            self._file = path.open("rb")
            self.size = os.fstat(self._file.fileno()).st_size
            self._lines = LineSource(self._file)
            # Strict: text after a closing quote (`"a"b`) is an error instead of being
            # glued on, which also catches a stray quote that a later row's quote closes.
            self._reader = csv.reader(self._lines, strict=True)
            header = self._next_fields()
        except OSError as exc:
            raise ImportFileError(f"cannot read {path}: {exc.strerror or exc}") from exc
        try:
            if self._lines.record_undecodable:
                raise ImportFileError(f"{path} is not UTF-8 text (its header cannot be decoded)")
            if header is None or not any(cell.strip() for cell in header[1]):
                raise ImportFileError(f"{path} is empty: expected the header {','.join(COLUMNS)}")
            if header[2] is not None:
                raise ImportFileError(f"{path}: cannot read the header: {header[2]}")
            self.validator = RowValidator(region, read_header(header[1]))
        except ImportFileError:
            self._file.close()
            raise
        self._errors = SpreadsheetSafeWriter(errors) if errors is not None else None
        if self._errors is not None:
            self._errors.writerow(["line", "reason", *header[1]])

    @property
    def bytes_read(self) -> int:
        """Bytes of the file read so far (lines read again are not counted twice)."""
        return self._lines.bytes_read

    def _next_fields(self) -> tuple[int, list[str], str | None] | None:
        """The next row, the line it starts on, and why it cannot be read if it cannot."""
        lines = self._lines
        lines.start_record()
        try:
            fields, error = next(self._reader), None
        except StopIteration:
            if not lines.record:
                return None
            fields, error = [], None  # the file ended inside a quoted field: below
        except RunawayField as exc:
            fields, error = [], f"unterminated quoted field: {exc}"
        except csv.Error as exc:
            fields, error = [], f"malformed CSV: {exc}"
        if lines.ended_open:  # csv gives the rest of the file as the open field's value
            error = "unterminated quoted field: no closing quote before the end of the file"
        if error is not None:
            # The errors file shows the row as its first line reads; the lines the bad
            # field took may be good rows, so they are read again.
            fields = [lines.record[0].text.rstrip("\r\n")]
            error += self._reread_if_spanning()
        return lines.record[0].number, fields, error

    def next_batch(self, size: int = BATCH_ROWS) -> Batch:
        """Read and validate up to `size` rows (blocking: run it in a thread)."""
        batch = Batch(rows=[], rejects=[], rows_read=0, bytes_read=0, done=False)
        before = self.bytes_read
        while len(batch.rows) + len(batch.rejects) < size:
            item = self._next_fields()
            if item is None:
                batch.done = True
                break
            line, fields, error = item
            if error is None and (not fields or (len(fields) == 1 and not fields[0].strip())):
                continue  # blank line
            batch.rows_read += 1
            try:
                if error is not None:
                    raise RowRejected(error)
                if self._lines.record_undecodable:
                    raise RowRejected("not valid UTF-8 text")
                batch.rows.append(self.validator.validate(line, fields))
            except RowShapeRejected as exc:
                self._reject(batch, line, f"{exc}{self._reread_if_spanning()}", fields)
            except RowRejected as exc:
                self._reject(batch, line, str(exc), fields)
        batch.bytes_read = self.bytes_read - before
        return batch

    def _reread_if_spanning(self) -> str:
        """Read a bad multi-line row's later lines again; the note its reason gets."""
        record = self._lines.record
        if len(record) < 2:
            return ""
        self._lines.reread_after_first()
        first, last = record[0].number, record[-1].number
        return f" (its quoted field took lines {first}-{last}; {first + 1}-{last} are read again)"

    def _reject(self, batch: Batch, line: int, reason: str, fields: list[str]) -> None:
        batch.rejects.append(Rejected(line, reason))
        if self._errors is not None:
            self._errors.writerow([line, reason, *fields])

    def close(self) -> None:
        """Close the file."""
        self._file.close()
