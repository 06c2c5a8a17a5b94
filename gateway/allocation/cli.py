"""`switchboard allocate …`, `switchboard partners import FILE.csv`, `agents import`."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.exc import SQLAlchemyError

from gateway.core.cli import Subparsers, UsageError, run_async
from gateway.core.clock import SystemClock, TimeInputError, parse_time_input
from gateway.core.db.engine import Database
from gateway.core.settings import Settings

if TYPE_CHECKING:
    from gateway.allocation.partners_csv import PartnerImport
    from gateway.allocation.policy import AllocationPolicy


def register(subparsers: Subparsers) -> None:
    """Add `allocate`, `partners import` and `agents import`."""
    allocate = subparsers.add_parser(
        "allocate",
        help="allocate open call tasks to partners (or solve a file with --input)",
        description="Assign as many contacts as possible (higher priority first), then "
        "minimise cost minus weighted performance. With --input, solve the JSON file "
        "without touching the database.",
    )
    allocate.add_argument("--as-of", help="ISO 8601 time (database mode; default now)")
    allocate.add_argument("--input", type=Path, help="JSON problem file (file mode)")
    allocate.add_argument("--format", choices=("table", "json"), default="table")
    allocate.add_argument(
        "--explain", metavar="CONTACT_ID", help="file mode: why this contact went where it went"
    )
    allocate.set_defaults(handler=_allocate)

    partners = subparsers.add_parser("partners", help="service partners")
    sub = partners.add_subparsers(dest="partners_command", required=True)
    importer = sub.add_parser(
        "import",
        help="upsert partners from a CSV file",
        description="Columns: partner_id,capacity,cost_per_contact (required), name, "
        "currency, products and regions (separated by ';'), min_contract_age_days, "
        "max_contract_age_days, eligibility (JSON rule), quality_score, cancellation_rate, "
        "upsell_rate. Exit 0: every row imported; 3: some rows rejected; 2: unreadable file.",
    )
    importer.add_argument("file", type=Path)
    importer.set_defaults(handler=_import_partners)

    agents = subparsers.add_parser("agents", help="operators as allocation targets")
    agents_sub = agents.add_subparsers(dest="agents_command", required=True)
    agent_importer = agents_sub.add_parser(
        "import",
        help="upsert agents' allocation terms from a CSV file",
        description="Columns: agent_id (required), name, crm_user_id, extensions, skills "
        "and regions (separated by ';'), capacity_per_day (blank: not a target), "
        "cost_per_contact, currency, min_contract_age_days, max_contract_age_days, "
        "eligibility (JSON rule), quality_score, cancellation_rate, upsell_rate. "
        "Exit 0: every row imported; 3: some rows rejected; 2: unreadable file.",
    )
    agent_importer.add_argument("file", type=Path)
    agent_importer.set_defaults(handler=_import_agents)


def _allocate(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.allocation.http import policy_of

    policy = policy_of(settings)
    if args.input is not None:
        if args.as_of is not None:
            raise UsageError("--as-of applies to the database; a file says everything itself")
        return _file_mode(args, dict(policy.weights))
    if args.explain is not None:
        raise UsageError("--explain needs --input")
    as_of = None
    if args.as_of is not None:
        try:
            as_of = parse_time_input(args.as_of, settings.timezone)
        except TimeInputError as exc:
            raise UsageError(f"--as-of: {exc}") from exc
    return run_async(_database_mode(args, settings, as_of, policy))


def _file_mode(args: argparse.Namespace, weights: dict[str, Decimal]) -> int:
    from gateway.allocation.eligibility_fast import eligible_grouped
    from gateway.allocation.explain import UnknownContact, explain
    from gateway.allocation.model import AllocationInputError, parse_problem
    from gateway.allocation.solve import solve

    try:
        raw = json.loads(args.input.read_text(encoding="utf-8-sig"), parse_float=Decimal)
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {args.input}: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise UsageError(f"{args.input}: not JSON: {exc}") from exc
    try:
        problem = parse_problem(raw, weights)
    except AllocationInputError as exc:
        raise UsageError(f"{args.input}: {exc}") from exc
    eligible = eligible_grouped(problem.contacts, problem.partners)
    plan = solve(problem, eligible)
    if args.explain is not None:
        try:
            why = explain(problem, eligible, plan, args.explain)
        except UnknownContact as exc:
            raise UsageError(f"no contact {args.explain!r} in {args.input}") from exc
        print(json.dumps(why.as_json()) if args.format == "json" else why.text)
        return 0
    if args.format == "json":
        print(json.dumps(plan.as_json()))
        return 0
    _print_table(plan.assignments, plan.unassigned, str(plan.total_cost))
    return 0


async def _database_mode(
    args: argparse.Namespace, settings: Settings, as_of: datetime | None, policy: AllocationPolicy
) -> int:
    from gateway.allocation.service import run_allocation

    database = Database(settings.database_url)
    now = SystemClock().now()
    try:
        result = await run_allocation(
            database, as_of=as_of or now, now=now, timezone=settings.timezone, policy=policy
        )
    except SQLAlchemyError as exc:
        print(f"switchboard: database error: {exc.__class__.__name__}", file=sys.stderr)
        return 1
    finally:
        await database.dispose()
    if args.format == "json":
        print(json.dumps(result.as_json()))
        return 0
    summary = result.summary
    _print_table(result.plan.assignments, result.plan.unassigned, None)
    totals = ", ".join(f"{amount} {currency}" for currency, amount in summary["total_cost"].items())
    print(
        f"run {result.run_id}: {summary['assigned']} of {summary['tasks']} task(s) assigned; "
        f"cost {totals or '0'}"
    )
    for target, reason in summary["skipped_partners"].items():
        kind = "agent" if target.startswith("agt_") else "partner"
        print(f"{kind} {target} skipped: {reason}")
    return 0


def _print_table(
    assignments: dict[str, str], unassigned: dict[str, str], total: str | None
) -> None:
    width = max((len(key) for key in (*assignments, *unassigned)), default=7)
    print(f"{'contact':<{width}}  target / reason")
    for contact, partner in assignments.items():
        print(f"{contact:<{width}}  {partner}")
    for contact, reason in unassigned.items():
        print(f"{contact:<{width}}  (unassigned: {reason})")
    if total is not None:
        print(f"{len(assignments)} assigned, {len(unassigned)} unassigned, total cost {total}")


def _import_partners(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.allocation.partners_csv import import_partners

    return _import(args, settings, "partners", import_partners)


def _import_agents(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.allocation.agents_csv import import_agents

    return _import(args, settings, "agents", import_agents)


def _import(
    args: argparse.Namespace,
    settings: Settings,
    what: str,
    importer: Callable[[Database, Path, datetime], Awaitable[PartnerImport]],
) -> int:
    from gateway.allocation.partners_csv import PartnerFileError

    async def run() -> int:
        database = Database(settings.database_url)
        try:
            report = await importer(database, args.file, SystemClock().now())
        except PartnerFileError as exc:
            raise UsageError(str(exc)) from exc
        finally:
            await database.dispose()
        print(f"{what} imported: {report.imported}, rejected: {len(report.rejects)}")
        for line, reason in report.rejects:
            print(f"line {line}: {reason}")
        return report.exit_status

    return run_async(run())
