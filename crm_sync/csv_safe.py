"""CSV written for people to open in a spreadsheet: a cell that starts like a formula is
prefixed with `'`, so Excel, LibreOffice and Google Sheets show it as text instead of
evaluating it (CSV injection; OWASP's advice).

The rejected-rows file (`import customers --errors`) repeats the rows as the CRM export
had them, and a cell such as `=HYPERLINK(…)` or `@SUM(…)` is exactly what must not run
when an operator opens it. Written here rather than taken from defusedcsv: that package
also rewrites `|` as `\\|` and lets tab and carriage-return starts through, and the rule
is a few lines.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import IO

# What a spreadsheet reads as the start of a formula (tab and CR: a cell that only looks
# like one after the spreadsheet trims it).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(cell: object) -> object:
    """`cell`, prefixed with `'` when it is text a spreadsheet would run as a formula."""
    if isinstance(cell, str) and cell.startswith(FORMULA_STARTS):
        return "'" + cell
    return cell


class SpreadsheetSafeWriter:
    """csv.writer whose text cells are made spreadsheet-safe."""

    def __init__(self, out: IO[str]) -> None:
        self._writer = csv.writer(out)

    def writerow(self, row: Iterable[object]) -> None:
        """Write one row."""
        self._writer.writerow([spreadsheet_safe(cell) for cell in row])
