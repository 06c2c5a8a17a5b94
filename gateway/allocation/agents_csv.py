"""`switchboard agents import FILE.csv`: agents' allocation terms from a spreadsheet.

Columns (header required, any order): `agent_id` (required) and `name`, `crm_user_id`,
`extensions`, `skills`, `regions` (separated by `;`), `capacity_per_day` (blank: not an
allocation target), `cost_per_contact`, `currency`, `min_contract_age_days`,
`max_contract_age_days`, `eligibility` (a JSON rule), `quality_score`,
`cancellation_rate`, `upsell_rate`. Skills and regions are stored on the agent and
narrow its rule at each run (targets.py); the other columns are read as for partners.
A column left out of the file keeps the agent's stored extensions and CRM user id.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from gateway.allocation.partners_csv import (
    FIGURES,
    PartnerImport,
    RowError,
    listed,
    read_rows,
    shared_terms,
    whole,
)
from gateway.allocation.people import InvalidTerms, StaleWrite, find_agent, save_agent
from gateway.core.db.engine import Database

REQUIRED = ("agent_id",)
COLUMNS = frozenset(
    {
        *REQUIRED,
        "name",
        "crm_user_id",
        "extensions",
        "skills",
        "regions",
        "capacity_per_day",
        "cost_per_contact",
        "currency",
        "min_contract_age_days",
        "max_contract_age_days",
        "eligibility",
        *FIGURES,
    }
)


def agent_terms_of(row: dict[str, str]) -> dict[str, Any]:
    """The row as save_agent's keywords (without the kept columns); raises RowError."""
    if not row["agent_id"]:
        raise RowError("agent_id: required")
    terms = shared_terms(row, [], [], cost_required=False)
    return {
        **terms,
        "skills": listed(row, "skills"),
        "regions": listed(row, "regions"),
        "capacity_per_day": whole(row, "capacity_per_day"),
    }


async def import_agents(database: Database, path: Path, now: datetime) -> PartnerImport:
    """Upsert every good row (each in its own transaction); collect the bad ones."""
    report = PartnerImport()
    for line, row in read_rows(path, REQUIRED, COLUMNS):
        try:
            terms = agent_terms_of(row)
            async with database.transaction() as session:
                existing = await find_agent(session, row["agent_id"])
                extensions = list(existing.extensions or []) if existing else []
                crm_user_id = existing.crm_user_id if existing else None
                if "extensions" in row:
                    extensions = listed(row, "extensions")
                if "crm_user_id" in row:
                    crm_user_id = row["crm_user_id"] or None
                await save_agent(
                    session,
                    row["agent_id"],
                    extensions=extensions,
                    crm_user_id=crm_user_id,
                    now=now,
                    **terms,
                )
        except (RowError, InvalidTerms, StaleWrite) as exc:
            report.rejects.append((line, str(exc)))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            report.rejects.append((line, f"{where}: {first['msg']}"))
        else:
            report.imported += 1
    return report
