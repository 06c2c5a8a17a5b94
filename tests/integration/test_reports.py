"""Reports over real HTTP and through the CLI, on both databases."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
from aiohttp.test_utils import TestClient, TestServer

from gateway.app import create_app
from gateway.cli import main
from gateway.core.clock import FixedClock
from gateway.core.db.engine import Database
from gateway.core.db.models import CostEntry
from gateway.core.http.auth import TokenRegistry
from gateway.settings import Settings
from tests.support.auth import ADMIN_TOKEN, OPERATOR_TOKEN, bearer
from tests.support.cost_population import add_campaign, add_customers, insert_rows, ledger_row
from tests.support.databases import truncate_all

Client = TestClient[Any, Any]
NOVEMBER = datetime(2026, 11, 3, 8, 0, tzinfo=UTC)
WINDOW = {"from": "2026-11-01", "to": "2026-11-30"}
PINNED = {
    "per_customer": "3.45",
    "per_month": "17250.00",
    "per_month_net": "15750.00",
    "per_year": "207000.00",
    "per_year_net": "189000.00",
}


async def brochure(database: Database, customers: int = 10_000) -> None:
    """`customers` reached by one SMS at 0.30 in November; no holdout."""
    ids = await add_customers(database, customers, NOVEMBER)
    campaign = await add_campaign(database, "reminder", NOVEMBER)
    rows = (ledger_row(i, cid, campaign, NOVEMBER) for i, cid in enumerate(ids))
    await insert_rows(database, CostEntry, rows)


@pytest.fixture
async def reports(
    settings: Settings, database: Database, tokens: TokenRegistry
) -> AsyncIterator[Client]:
    """The real app with the reports feature, clock at 2 December 2026."""
    clock = FixedClock(datetime(2026, 12, 2, 12, tzinfo=UTC))
    app = create_app(settings, clock=clock, tokens=tokens, workers=False)
    async with TestClient(TestServer(app, host="127.0.0.1")) as test_client:
        yield test_client


async def get(client: Client, path: str, **params: str) -> tuple[int, Any]:
    response = await client.get(path, params=params, headers=bearer(ADMIN_TOKEN))
    return response.status, await response.json()


async def test_savings_api_gives_the_pinned_assumed_figures(
    reports: Client, database: Database
) -> None:
    await brochure(database)
    status, body = await get(
        reports,
        "/api/reports/savings",
        **WINDOW,
        campaign="reminder",
        assumed_deflection="0.5",
        handling_minutes="2.5",
    )
    assert status == 200
    [campaign] = body["campaigns"]
    assert {key: campaign[key] for key in PINNED} == PINNED
    assert campaign["deflection"]["source"] == "assumed"
    assert body["from"] == "2026-10-31T22:00:00Z" and body["currency"] == "UAH"


async def test_savings_api_refusals(reports: Client, database: Database) -> None:
    await insert_rows(
        database,
        CostEntry,
        [ledger_row(1, None, None, NOVEMBER, Decimal("0.01"), currency="USD")],
    )
    status, body = await get(reports, "/api/reports/savings", **WINDOW, campaign="nope")
    assert status == 404 and body["type"].endswith("/not-found")
    status, body = await get(reports, "/api/reports/savings", **{"from": "11/01", "to": "x"})
    assert status == 422 and "from/to" in body["detail"]
    status, body = await get(reports, "/api/reports/savings", **WINDOW, assumed_deflection="2")
    assert status == 422
    status, body = await get(reports, "/api/reports/savings", **WINDOW)
    assert status == 409 and body["currency"] == "USD"
    response = await reports.get(
        "/api/reports/savings", params=WINDOW, headers=bearer(OPERATOR_TOKEN)
    )
    assert response.status == 403


async def test_daily_api_stores_the_day_and_series_reads_it(
    reports: Client, database: Database
) -> None:
    await brochure(database, customers=50)
    status, day = await get(reports, "/api/reports/daily", date="2026-11-03")
    assert status == 200 and day["final"] is True
    assert day["customers_by_status"]["active"] == 50
    assert day["costs"]["total"] == "15.00" and day["costs"]["channels"]["sms"]["count"] == 50
    status, _ = await get(reports, "/api/reports/daily", date="2026-13-01")
    assert status == 422
    status, series = await get(
        reports, "/api/reports/series", **{"from": "2026-11-02", "to": "2026-11-04"}
    )
    assert status == 200
    assert [p["day"] for p in series["days"]] == ["2026-11-02", "2026-11-03", "2026-11-04"]
    assert [p["cost"] for p in series["days"]] == ["0.00", "15.00", "0.00"]
    assert series["savings"][0]["campaign"] == "reminder"
    status, _ = await get(
        reports, "/api/reports/series", **{"from": "2025-01-01", "to": "2026-11-04"}
    )
    assert status == 422


def prepare(database_url: str, customers: int) -> None:
    """Fill a fresh database for the CLI (which runs its own event loop)."""

    async def run() -> None:
        database = Database(database_url)
        try:
            if not database.is_sqlite:
                await truncate_all(database)
            await brochure(database, customers)
        finally:
            await database.dispose()

    asyncio.run(run())


SAVINGS = ["report", "savings", "--from", "2026-11-01", "--to", "2026-11-30"]
ASSUMED = ["--assumed-deflection", "0.5", "--handling-minutes", "2.5"]


def test_cli_savings_in_every_format(
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    prepare(database_url, 10_000)
    monkeypatch.setenv("SWITCHBOARD_DATABASE_URL", database_url)
    chart = tmp_path / "savings.svg"
    assert main([*SAVINGS, *ASSUMED, "--format", "json", "--chart", str(chart)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {key: report["campaigns"][0][key] for key in PINNED} == PINNED
    svg = ElementTree.parse(chart)  # noqa: S314 - the file this test just had written
    texts = [node.text for node in svg.iter() if node.tag.endswith("}text")]
    assert "reminder" in texts and "15750.00" in texts
    assert main([*SAVINGS, *ASSUMED, "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert rows[0]["period"] == "total" and rows[0]["per_year_net"] == "189000.00"
    assert rows[1]["period"] == "2026-11" and rows[1]["net_savings"] == "15750.00"
    assert main([*SAVINGS, *ASSUMED]) == 0
    table = capsys.readouterr().out
    assert "assumed" in table and "189000.00" in table and "handling minutes 2.5 (given)" in table


def test_cli_refuses_bad_arguments_without_writing(
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    prepare(database_url, 10)
    monkeypatch.setenv("SWITCHBOARD_DATABASE_URL", database_url)
    assert main(["report", "savings", "--from", "yesterday", "--to", "2026-11-30"]) == 2
    assert main([*SAVINGS, "--campaign", "nope"]) == 2
    gif = tmp_path / "chart.gif"
    assert main([*SAVINGS, "--chart", str(gif)]) == 2
    assert not gif.exists()
    assert main(["report", "daily", "--date", "03.11.2026"]) == 2
    err = capsys.readouterr().err
    assert "--from/--to" in err and "no campaign named 'nope'" in err and "*.png or *.svg" in err
    assert main(["report", "daily", "--date", "2026-11-03"]) == 0
    day = json.loads(capsys.readouterr().out)
    assert day["costs"]["total"] == "3.00"
