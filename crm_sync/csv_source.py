"""Reading a customer CSV lazily, batch by batch, each row validated as it is read.

Line numbers are physical lines (the header is line 1); a row whose quoted field spans
lines is reported by the line it starts on.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from crm_sync.csv_rows import (
    COLUMNS,
    CustomerRow,
    ImportFileError,
    Rejected,
    RowRejected,
    RowValidator,
    read_header,
)
from crm_sync.csv_safe import SpreadsheetSafeWriter

BATCH_ROWS = 2_000
UTF8_BOM = b"\xef\xbb\xbf"


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
        self.bytes_read = 0
        self._undecodable = False
        self._lines_seen = 0
        self._last_line = 0
        try:
            self._file = path.open("rb")
            self.size = os.fstat(self._file.fileno()).st_size
            self._reader = csv.reader(self._decoded_lines())
            header = self._next_fields()
        except OSError as exc:
            raise ImportFileError(f"cannot read {path}: {exc.strerror or exc}") from exc
        try:
            if self._undecodable:
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

    def _decoded_lines(self) -> Iterator[str]:
        # Lines are split on bytes (a newline byte never occurs inside a UTF-8 sequence)
        # so that one undecodable line rejects one row instead of the whole file.
        for raw in self._file:
            self._lines_seen += 1
            self.bytes_read += len(raw)
            if self._lines_seen == 1 and raw.startswith(UTF8_BOM):
                raw = raw[len(UTF8_BOM) :]
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError:
                self._undecodable = True
                yield raw.decode("utf-8", errors="replace")

    def _next_fields(self) -> tuple[int, list[str], str | None] | None:
        """The next row, the line it starts on, and the csv module's complaint if any."""
        start = self._last_line + 1
        try:
            fields, error = next(self._reader), None
        except StopIteration:
            return None
        except csv.Error as exc:
            fields, error = [], f"malformed CSV: {exc}"
        self._last_line = self._reader.line_num
        return start, fields, error

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
                if self._undecodable:  # from this row's lines: csv reads no further ahead
                    self._undecodable = False
                    raise RowRejected("not valid UTF-8 text")
                batch.rows.append(self.validator.validate(line, fields))
            except RowRejected as exc:
                batch.rejects.append(Rejected(line, str(exc)))
                if self._errors is not None:
                    self._errors.writerow([line, str(exc), *fields])
        batch.bytes_read = self.bytes_read - before
        return batch

    def close(self) -> None:
        """Close the file."""
        self._file.close()
