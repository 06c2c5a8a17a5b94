"""`switchboard report estimate …`, `report savings …` and `report daily …`."""

from __future__ import annotations

import argparse
import json
from decimal import Decimal, InvalidOperation

from gateway.core.cli import Subparsers, UsageError
from gateway.core.settings import Settings
from gateway.costs import report_cli
from gateway.costs.estimate import EstimateError, estimate


def _decimal(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from exc
    if not value.is_finite():
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def register(subparsers: Subparsers) -> None:
    """Add `report estimate`, `report savings` and `report daily`."""
    report = subparsers.add_parser("report", help="cost and savings reports")
    sub = report.add_subparsers(dest="report_command", required=True)
    what_if = sub.add_parser("estimate", help="what-if savings before a campaign")
    what_if.add_argument("--customers", type=int, required=True)
    what_if.add_argument("--deflection", type=_decimal, required=True, help="share, e.g. 0.5")
    what_if.add_argument("--call-minutes", type=_decimal, required=True)
    what_if.add_argument("--minute-cost", type=_decimal, required=True)
    what_if.add_argument("--contact-cost", type=_decimal, required=True)
    what_if.add_argument("--format", choices=("table", "json"), default="table")
    what_if.set_defaults(handler=_estimate)
    report_cli.register(sub, _decimal)


LABELS = {
    "per_customer": "Saving per deflected customer (M × C − S)",
    "per_month": "Per month, classic (contact charged to deflected customers only)",
    "per_month_net": "Per month, net (every contact paid for)",
    "per_year": "Per year, classic",
    "per_year_net": "Per year, net",
}


def _estimate(args: argparse.Namespace, settings: Settings) -> int:
    try:
        result = estimate(
            args.customers,
            args.deflection,
            args.call_minutes,
            args.minute_cost,
            args.contact_cost,
        ).as_dict()
    except EstimateError as exc:
        raise UsageError(str(exc)) from exc
    if args.format == "json":
        print(json.dumps(result))
        return 0
    width = max(len(label) for label in LABELS.values())
    for key, label in LABELS.items():
        print(f"{label:<{width}}  {result[key]:>14} {settings.costs.currency}")
    print("Deflection is assumed, not measured (no campaign has run yet).")
    return 0
