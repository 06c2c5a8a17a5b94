"""`switchboard partners import FILE.csv`: partners' terms from a spreadsheet.

Columns (header required, any order): `partner_id`, `capacity`, `cost_per_contact`
(required) and `name`, `currency`, `products`, `regions` (separated by `;`),
`min_contract_age_days`, `max_contract_age_days`, `eligibility` (a JSON rule, combined
with the others by `all`), `quality_score`, `cancellation_rate`, `upsell_rate`.
A bad row is reported with its line number and reason; the good rows are kept.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from gateway.allocation.model import AllocationInputError, decimal
from gateway.allocation.people import InvalidTerms, StaleWrite, save_partner
from gateway.allocation.targets import all_of, implicit_conditions
from gateway.core.db.engine import Database
from gateway.core.http.json_body import TooDeep, loads_bounded

REQUIRED = ("partner_id", "capacity", "cost_per_contact")
FIGURES = ("quality_score", "cancellation_rate", "upsell_rate")
COLUMNS = frozenset(
    {
        *REQUIRED,
        "name",
        "currency",
        "products",
        "regions",
        "min_contract_age_days",
        "max_contract_age_days",
        "eligibility",
        *FIGURES,
    }
)


class PartnerFileError(ValueError):
    """The file cannot be read at all (exit 2)."""


class RowError(ValueError):
    """One row that cannot be imported."""


@dataclass
class PartnerImport:
    """What an import did."""

    imported: int = 0
    rejects: list[tuple[int, str]] = field(default_factory=list)

    @property
    def exit_status(self) -> int:
        """0 all rows imported, 3 some rejected."""
        return 3 if self.rejects else 0


def read_rows(
    path: Path, required: tuple[str, ...] = REQUIRED, columns: frozenset[str] = COLUMNS
) -> list[tuple[int, dict[str, str]]]:
    """(line number, row) for each data row; raises PartnerFileError for the file itself."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise PartnerFileError(f"cannot read {path}: {exc}") from exc
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [name.strip() for name in reader.fieldnames or []]
    missing = [name for name in required if name not in header]
    unknown = [name for name in header if name not in columns]
    if missing or unknown:
        raise PartnerFileError(
            f"{path}: header must have {', '.join(required)}"
            + (f"; missing {', '.join(missing)}" if missing else "")
            + (f"; unknown column(s) {', '.join(unknown)}" if unknown else "")
        )
    reader.fieldnames = header
    rows = []
    try:
        for row in reader:
            extra = row.pop(None, None)
            rows.append((reader.line_num, {k: (v or "").strip() for k, v in row.items()}))
            if extra:
                rows[-1][1]["__extra__"] = "x"
    except csv.Error as exc:
        raise PartnerFileError(f"{path}: line {reader.line_num}: {exc}") from exc
    return rows


def listed(row: dict[str, str], column: str) -> list[str]:
    """A `;`-separated column as a list (blank items dropped)."""
    return [item.strip() for item in row.get(column, "").split(";") if item.strip()]


def whole(row: dict[str, str], column: str) -> int | None:
    """A non-negative whole-number column; None when blank."""
    if not row.get(column):
        return None
    try:
        value = int(row[column])
    except ValueError:
        raise RowError(f"{column}: {row[column]!r} is not a whole number") from None
    if value < 0:
        raise RowError(f"{column}: must not be negative")
    return value


def shared_terms(
    row: dict[str, str], products: list[str], regions: list[str], *, cost_required: bool
) -> dict[str, Any]:
    """What partner and agent rows share: the rule (implicit conditions and the
    `eligibility` column, all of them), cost per contact, currency and figures."""
    if "__extra__" in row:
        raise RowError("more fields than header columns")
    conditions = implicit_conditions(
        products,
        regions,
        whole(row, "min_contract_age_days"),
        whole(row, "max_contract_age_days"),
    )
    if row.get("eligibility"):
        try:
            conditions.append(loads_bounded(row["eligibility"]))
        except TooDeep as exc:
            raise RowError(f"eligibility: {exc}") from None
        except json.JSONDecodeError as exc:
            raise RowError(f"eligibility: not JSON ({exc.msg})") from None
    if not cost_required and not row.get("cost_per_contact"):
        row = {**row, "cost_per_contact": "0"}
    try:
        cost = decimal(row["cost_per_contact"], "cost_per_contact")
        figures = {name: decimal(row[name], name) for name in FIGURES if row.get(name)}
    except AllocationInputError as exc:
        raise RowError(str(exc)) from None
    if cost < 0:
        raise RowError("cost_per_contact: must not be negative")
    currency = row.get("currency") or "UAH"
    if len(currency) != 3 or not currency.isalpha() or not currency.isupper():
        raise RowError(f"currency: {currency!r} is not a 3-letter code such as UAH")
    return {
        "name": row.get("name", ""),
        "cost_per_contact": cost,
        "currency": currency,
        "eligibility": all_of(conditions),
        "figures": {name: str(value) for name, value in figures.items()},
        "active": True,
    }


def terms_of(row: dict[str, str]) -> dict[str, Any]:
    """The row as save_partner's keywords; raises RowError naming the column."""
    if "__extra__" in row:
        raise RowError("more fields than header columns")
    if not row["partner_id"]:
        raise RowError("partner_id: required")
    try:
        capacity = int(row["capacity"])
    except ValueError:
        raise RowError(f"capacity: {row['capacity']!r} is not a whole number") from None
    if capacity < 0:
        raise RowError("capacity: must not be negative")
    terms = shared_terms(row, listed(row, "products"), listed(row, "regions"), cost_required=True)
    return {"capacity": capacity, **terms}


async def import_partners(database: Database, path: Path, now: datetime) -> PartnerImport:
    """Upsert every good row (each in its own transaction); collect the bad ones."""
    report = PartnerImport()
    for line, row in read_rows(path):
        try:
            terms = terms_of(row)
            async with database.transaction() as session:
                await save_partner(session, row["partner_id"], now=now, **terms)
        except RowError as exc:
            report.rejects.append((line, str(exc)))
        except (InvalidTerms, StaleWrite) as exc:
            report.rejects.append((line, str(exc)))
        else:
            report.imported += 1
    return report
