"""`switchboard report savings …` and `report daily …` (registered by gateway.costs.cli)."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from pathlib import Path

from gateway.core.cli import Subparsers, UsageError, run_async
from gateway.core.clock import SystemClock, TimeInputError, parse_time_input
from gateway.core.db.engine import Database
from gateway.core.settings import Settings
from gateway.costs.chart import ChartError, check_chart_path, write_chart
from gateway.costs.daily import daily_snapshot
from gateway.costs.model import CostModel, MissingConversionRate
from gateway.costs.savings import SavingsError, SavingsQuery, SavingsReport, savings_report

CSV_COLUMNS = (
    "campaign",
    "period",
    "deflection_source",
    "deflection",
    "customers",
    "cost",
    "gross_savings",
    "net_savings",
    "per_month_net",
    "per_year_net",
    "currency",
)


def register(sub: Subparsers, decimal: Callable[[str], Decimal]) -> None:
    """Add `savings` and `daily` under `report`."""
    savings = sub.add_parser("savings", help="cost and savings from the ledger and call records")
    savings.add_argument("--from", dest="date_from", required=True, help="date or ISO time")
    savings.add_argument("--to", dest="date_to", required=True, help="date or ISO time")
    savings.add_argument("--campaign", help="one campaign (name or id)")
    savings.add_argument("--topic", help="call topic to measure (default: the audience rule's)")
    savings.add_argument("--assumed-deflection", type=decimal, help="share used without holdout")
    savings.add_argument("--handling-minutes", type=decimal, help="operator minutes per call")
    savings.add_argument("--format", choices=("table", "json", "csv"), default="table")
    savings.add_argument("--chart", type=Path, help="write a chart to this file (*.png or *.svg)")
    savings.set_defaults(handler=_savings)
    daily = sub.add_parser("daily", help="a day's statistics (stored once the day has ended)")
    daily.add_argument("--date", required=True, help="YYYY-MM-DD in SWITCHBOARD_TIMEZONE")
    daily.add_argument("--recompute", action="store_true", help="replace the stored snapshot")
    daily.set_defaults(handler=_daily)


def _query(args: argparse.Namespace, settings: Settings) -> SavingsQuery:
    try:
        start = parse_time_input(args.date_from, settings.timezone)
        end = parse_time_input(args.date_to, settings.timezone, end_of_day=True)
    except TimeInputError as exc:
        raise UsageError(f"--from/--to: {exc}") from exc
    try:
        return SavingsQuery(
            start=start,
            end=end,
            campaign=args.campaign,
            topic=args.topic,
            assumed_deflection=args.assumed_deflection,
            handling_minutes=args.handling_minutes,
        )
    except SavingsError as exc:
        raise UsageError(str(exc)) from exc


def _savings(args: argparse.Namespace, settings: Settings) -> int:
    query = _query(args, settings)
    if args.chart is not None:
        try:
            check_chart_path(args.chart)
        except ChartError as exc:
            raise UsageError(f"--chart: {exc}") from exc

    async def run() -> int:
        database = Database(settings.database_url)
        try:
            return await _emit(await savings_report(database, settings, query), args)
        except MissingConversionRate as exc:
            print(f"switchboard: {exc}", file=sys.stderr)
            return 1
        except SavingsError as exc:
            raise UsageError(str(exc)) from exc
        finally:
            await database.dispose()

    return run_async(run())


async def _emit(report: SavingsReport, args: argparse.Namespace) -> int:
    if args.chart is not None:
        write_chart(args.chart, report)
    if args.format == "json":
        print(json.dumps(report, ensure_ascii=False))
    elif args.format == "csv":
        _csv(report)
    else:
        _table(report)
    return 0


def _csv(report: SavingsReport) -> None:
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for c in report["campaigns"]:
        deflection = c["deflection"]
        common = [c["campaign"]]
        writer.writerow(
            [
                *common,
                "total",
                deflection["source"],
                deflection["value"],
                c["customers"]["treated"],
                c["cost"],
                c.get("gross_savings", ""),
                c["net_savings"] or "",
                c.get("per_month_net", ""),
                c.get("per_year_net", ""),
                report["currency"],
            ]
        )
        for month in c["months"]:
            row = [month["month"], "", "", "", month["cost"]]
            row += [month.get("gross_savings", ""), month.get("net_savings", ""), "", ""]
            writer.writerow([*common, *row, report["currency"]])


def _table(report: SavingsReport) -> None:
    currency = report["currency"]
    print(f"Savings {report['from']} – {report['to']}, in {currency}")
    if report["conversion"]:
        rates = ", ".join(
            f"1 {code} = {rate} {currency}" for code, rate in report["conversion"].items()
        )
        print(f"Converted with configured rates: {rates}")
    for c in report["campaigns"]:
        d = c["deflection"]
        print(f"\n{c['campaign']} (topic: {c['topic']['value'] or 'any'}, {c['topic']['source']})")
        if d["source"] == "measured":
            print(
                f"  deflection {d['value']:.4f} measured "
                f"({d['confidence']:.0%} CI {d['low']:.4f} … {d['high']:.4f}); "
                f"holdout {d['control_rate']:.2%} called, treated {d['treated_rate']:.2%}"
            )
        else:
            print(f"  deflection {d['value']} ({d['source']})")
        handling = c["handling_minutes"]
        if handling:
            print(f"  handling minutes {handling['value']} ({handling['source']})")
        op = c["operator_per_minute"]
        print(f"  operator cost per minute {op['value']} ({op['source']})")
        for name, channel in c["channels"].items():
            priced = ", ".join(f"{n} {src}" for src, n in channel["priced_by"].items())
            print(f"  {name}: {channel['contacts']} contacts, {channel['cost']} ({priced})")
        for key in ("cost", "gross_savings", "net_savings", "per_month_net", "per_year_net"):
            if c.get(key) is not None:
                print(f"  {key.replace('_', ' '):<16} {c[key]:>14}")
        for note in c["notes"]:
            print(f"  note: {note}")
    totals = report["totals"]
    print(f"\nAll costs {report['costs']['total']}; net savings {totals['net_savings']}")
    print(f"per month {totals['per_month_net']}, per year {totals['per_year_net']} (net)")


def _daily(args: argparse.Namespace, settings: Settings) -> int:
    try:
        day = date.fromisoformat(args.date)
    except ValueError as exc:
        raise UsageError(f"--date: {args.date!r} is not a date (YYYY-MM-DD)") from exc

    async def run() -> int:
        database = Database(settings.database_url)
        try:
            model = CostModel.from_settings(settings)
            snapshot = await daily_snapshot(
                database, model, settings.timezone, SystemClock(), day, recompute=args.recompute
            )
        finally:
            await database.dispose()
        print(json.dumps(snapshot, ensure_ascii=False))
        return 0

    return run_async(run())
