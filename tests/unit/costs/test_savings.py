"""Savings report: the assumed example to the cent, measured deflection, currencies."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from gateway.core.clock import parse_time_input
from gateway.core.db.engine import Database
from gateway.core.db.models import Call, CostEntry
from gateway.core.settings import CostRates
from gateway.costs.model import MissingConversionRate
from gateway.costs.savings import SavingsError, SavingsQuery, UnknownCampaign, savings_report
from gateway.settings import Settings
from tests.support.cost_population import (
    add_campaign,
    add_customers,
    assign,
    call_row,
    callers,
    insert_rows,
    ledger_row,
)

NOVEMBER = datetime(2026, 11, 3, 8, 0, tzinfo=UTC)
ZONE = "Europe/Kyiv"


def november(**extra: object) -> SavingsQuery:
    return SavingsQuery(
        start=parse_time_input("2026-11-01", ZONE),
        end=parse_time_input("2026-11-30", ZONE, end_of_day=True),
        **extra,  # type: ignore[arg-type]
    )


async def brochure_population(database: Database) -> None:
    """10,000 customers reached by one SMS at 0.30 each in November, no holdout."""
    ids = await add_customers(database, 10_000, NOVEMBER)
    campaign = await add_campaign(database, "reminder", NOVEMBER)
    await insert_rows(
        database,
        CostEntry,
        (ledger_row(i, cid, campaign, NOVEMBER) for i, cid in enumerate(ids)),
    )


async def test_assumed_mode_reproduces_the_brochure_example(
    database: Database, settings: Settings
) -> None:
    await brochure_population(database)
    query = november(assumed_deflection=Decimal("0.5"), handling_minutes=Decimal("2.5"))
    report = await savings_report(database, settings, query)
    [campaign] = report["campaigns"]
    assert campaign["deflection"] == {"source": "assumed", "value": "0.5"}
    assert campaign["handling_minutes"] == {"value": "2.5", "source": "given"}
    assert campaign["customers"] == {"treated": 10_000, "control": 0, "source": "ledger"}
    assert campaign["cost"] == "3000.00"
    assert {k: campaign[k] for k in ("per_customer", "per_month", "per_month_net")} == {
        "per_customer": "3.45",
        "per_month": "17250.00",
        "per_month_net": "15750.00",
    }
    assert campaign["per_year"] == "207000.00" and campaign["per_year_net"] == "189000.00"
    assert campaign["channels"]["sms"] == {
        "cost": "3000.00",
        "contacts": 10_000,
        "units": 10_000,
        "priced_by": {"configured": 10_000},
    }
    assert any("assumed" in note for note in campaign["notes"])
    assert report["months_covered"] == "1.0000" and report["currency"] == "UAH"
    assert report["totals"]["per_year_net"] == "189000.00"


async def test_without_holdout_or_assumption_there_is_no_savings_figure(
    database: Database, settings: Settings
) -> None:
    await brochure_population(database)
    report = await savings_report(database, settings, november())
    [campaign] = report["campaigns"]
    assert campaign["deflection"]["source"] == "unknown"
    assert campaign["net_savings"] is None and campaign["cost"] == "3000.00"


async def test_measured_mode_recovers_a_known_deflection(
    database: Database, settings: Settings
) -> None:
    """Control calls at 40 %, treated at 15 %: the true deflection is 0.25."""
    rng = random.Random(20261101)
    control = await add_customers(database, 1_000, NOVEMBER, prefix="h")
    treated = await add_customers(database, 3_000, NOVEMBER, prefix="t")
    campaign = await add_campaign(database, "reminder", NOVEMBER)
    await assign(database, campaign, {"holdout": control, "sms": treated}, NOVEMBER)
    start = parse_time_input("2026-11-01", ZONE)
    calls = await callers(database, control, 0.40, rng, start, 0)
    calls += await callers(database, treated, 0.15, rng, start, 100_000)
    await insert_rows(
        database, CostEntry, (ledger_row(i, c, campaign, NOVEMBER) for i, c in enumerate(treated))
    )
    report = await savings_report(database, settings, november())
    [result] = report["campaigns"]
    deflection = result["deflection"]
    assert deflection["source"] == "measured" and deflection["confidence"] == 0.95
    d_low, d_high, d_value = (float(str(deflection[key])) for key in ("low", "high", "value"))
    assert d_low < 0.25 < d_high
    assert d_low > 0.0 and d_high - d_low < 0.1
    assert abs(d_value - 0.25) < 0.05
    assert deflection["treated"] == 3_000 and deflection["control"] == 1_000
    assert result["topic"] == {"value": "payment_amount", "source": "audience rule"}
    # Every call lasted 150 s: the handling time is measured, not configured.
    assert result["handling_minutes"] == {"value": "2.5000", "source": "measured"}
    assert result["handling_calls_measured"] == calls
    share = Decimal(repr(deflection["value"])).quantize(Decimal("0.000001"))
    gross = 3_000 * share * Decimal("2.5") * Decimal("1.50")
    assert result["net_savings"] == str((gross - Decimal(900)).quantize(Decimal("0.01")))
    low, high = result["net_savings_interval"]["low"], result["net_savings_interval"]["high"]
    assert Decimal(low) < Decimal(result["net_savings"]) < Decimal(high)
    assert result["arms"]["sms"]["value"] == deflection["value"]
    assert not any("assumed" in note for note in result["notes"])


async def test_foreign_currency_is_converted_with_configured_rates(
    database: Database, settings: Settings
) -> None:
    ids = await add_customers(database, 3, NOVEMBER)
    campaign = await add_campaign(database, "reminder", NOVEMBER)
    rows = [
        ledger_row(0, ids[0], campaign, NOVEMBER, Decimal("0.0079"), currency="USD"),
        ledger_row(1, ids[1], campaign, NOVEMBER, Decimal("0.0079"), currency="USD"),
        ledger_row(2, ids[2], None, NOVEMBER, Decimal("0.1"), currency="UAH", channel="email"),
    ]
    await insert_rows(database, CostEntry, rows)
    rates = CostRates(conversion={"USD": Decimal("41.3333")})
    converting = settings.model_copy(update={"costs": rates})
    report = await savings_report(database, converting, november())
    # 2 × 0.0079 × 41.3333 = 0.65306614 → 0.65; exact decimals, never floats.
    assert report["campaigns"][0]["cost"] == "0.65"
    assert report["costs"]["without_campaign"] == "0.10"
    assert report["costs"]["total"] == "0.75"
    assert report["conversion"] == {"USD": "41.3333"}
    with pytest.raises(MissingConversionRate, match=r"costs\.conversion\.USD"):
        await savings_report(database, settings, november())


async def test_ledger_sums_are_exact_and_round_half_up(
    database: Database, settings: Settings
) -> None:
    """Sums stay exact on both databases and cents round half up (0.005 → 0.01)."""
    ids = await add_customers(database, 1_002, NOVEMBER)
    campaign = await add_campaign(database, "reminder", NOVEMBER)
    other = await add_campaign(database, "other", NOVEMBER)
    rows = [ledger_row(i, c, campaign, NOVEMBER, Decimal("0.1001")) for i, c in enumerate(ids)]
    rows[-2:] = [
        ledger_row(5_000 + i, c, other, NOVEMBER, Decimal("0.0025")) for i, c in enumerate(ids[-2:])
    ]
    await insert_rows(database, CostEntry, rows)
    report = await savings_report(database, settings, november())
    costs = {c["campaign"]: c["cost"] for c in report["campaigns"]}
    assert costs == {"other": "0.01", "reminder": "100.10"}


async def test_an_unknown_campaign_and_bad_windows_are_refused(
    database: Database, settings: Settings
) -> None:
    with pytest.raises(UnknownCampaign):
        await savings_report(database, settings, november(campaign="nope"))
    with pytest.raises(SavingsError):
        SavingsQuery(start=NOVEMBER, end=datetime(2026, 10, 1, tzinfo=UTC))
    with pytest.raises(SavingsError):
        november(assumed_deflection=Decimal("1.2"))


async def test_a_campaign_without_topic_measures_all_inbound_calls_per_month(
    database: Database, settings: Settings
) -> None:
    control = await add_customers(database, 100, NOVEMBER, prefix="h")
    treated = await add_customers(database, 100, NOVEMBER, prefix="t")
    campaign = await add_campaign(database, "any-topic", NOVEMBER, topic=None)
    await assign(database, campaign, {"holdout": control, "email": treated}, NOVEMBER)
    october = datetime(2026, 10, 10, tzinfo=UTC)
    rows = [call_row(i, c, october, topic="complaint") for i, c in enumerate(control[:50])]
    rows += [call_row(100 + i, c, NOVEMBER, topic=None) for i, c in enumerate(control[:30])]
    rows += [call_row(200 + i, c, NOVEMBER, topic="other") for i, c in enumerate(treated[:10])]
    await insert_rows(database, Call, rows)
    query = SavingsQuery(
        start=parse_time_input("2026-10-01", ZONE),
        end=parse_time_input("2026-11-30", ZONE, end_of_day=True),
        handling_minutes=Decimal("2"),
    )
    report = await savings_report(database, settings, query)
    [result] = report["campaigns"]
    assert result["topic"] == {"value": None, "source": "all inbound calls"}
    # Control: 50 distinct callers over the window (the 30 in November called in October too).
    assert result["deflection"]["control_callers"] == 50
    assert result["deflection"]["treated_callers"] == 10
    assert result["deflection"]["value"] == pytest.approx(0.4)
    # October: 50 % vs 0 % → 100 × 0.5 × 2 min × 1.50; November: 30 % vs 10 %.
    months = {m["month"]: m["gross_savings"] for m in result["months"]}
    assert months == {"2026-10": "150.00", "2026-11": "60.00"}
    assert report["months_covered"] == "2.0000"
    assert result["handling_calls_measured"] == 90
