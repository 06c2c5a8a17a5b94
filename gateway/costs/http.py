"""Reports API (admin, supervisor): savings, a day's statistics, and time series."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from aiohttp import web
from pydantic import BaseModel, Field

from gateway.core.appkeys import CLOCK, DATABASE, SETTINGS
from gateway.core.clock import TimeInputError, parse_time_input
from gateway.core.http.auth import principal_of
from gateway.core.http.endpoints import endpoint, json_response, read_query
from gateway.core.http.problems import ApiProblem, Forbidden, InvalidInput, NotFound
from gateway.costs.daily import daily_snapshot
from gateway.costs.model import CostModel, MissingConversionRate
from gateway.costs.savings import SavingsError, SavingsQuery, UnknownCampaign, savings_report
from gateway.costs.series import SeriesError, daily_series


class ConversionRateMissing(ApiProblem):
    """Ledger amounts in a currency the configuration cannot convert."""

    status, type_name, title = 409, "conversion-rate-missing", "Conversion rate missing"


class SavingsParams(BaseModel):
    """Query of GET /api/reports/savings."""

    from_: str = Field(alias="from", description="date or ISO 8601 time (inclusive)")
    to: str = Field(description="date or ISO 8601 time (inclusive)")
    campaign: str | None = None
    topic: str | None = None
    assumed_deflection: Decimal | None = Field(default=None, ge=0, le=1)
    handling_minutes: Decimal | None = Field(default=None, ge=0)


class DailyParams(BaseModel):
    """Query of GET /api/reports/daily."""

    day: date = Field(alias="date", description="YYYY-MM-DD in SWITCHBOARD_TIMEZONE")
    recompute: bool = False


class SeriesParams(BaseModel):
    """Query of GET /api/reports/series (dates, inclusive)."""

    from_: date = Field(alias="from")
    to: date


@endpoint(
    "GET",
    "/api/reports/savings",
    summary="Savings per campaign: measured against the holdout, or assumed; net of costs",
    roles=["supervisor"],
    query=SavingsParams,
    tags=["reports"],
)
async def get_savings(request: web.Request) -> web.Response:
    """As `switchboard report savings --format json`."""
    params = read_query(request, SavingsParams)
    settings = request.app[SETTINGS]
    try:
        start = parse_time_input(params.from_, settings.timezone)
        end = parse_time_input(params.to, settings.timezone, end_of_day=True)
    except TimeInputError as exc:
        raise InvalidInput(f"from/to: {exc}") from exc
    try:
        query = SavingsQuery(
            start=start,
            end=end,
            campaign=params.campaign,
            topic=params.topic,
            assumed_deflection=params.assumed_deflection,
            handling_minutes=params.handling_minutes,
        )
        report = await savings_report(request.app[DATABASE], settings, query)
    except UnknownCampaign as exc:
        raise NotFound(str(exc)) from exc
    except MissingConversionRate as exc:
        raise ConversionRateMissing(str(exc), currency=exc.currency) from exc
    except SavingsError as exc:
        raise InvalidInput(str(exc)) from exc
    return json_response(report)


@endpoint(
    "GET",
    "/api/reports/daily",
    summary="A day's statistics, frozen once the day has ended",
    roles=["supervisor"],
    query=DailyParams,
    tags=["reports"],
)
async def get_daily(request: web.Request) -> web.Response:
    """Customers by status, moves, contacts, calls, costs and reactivations of one day."""
    params = read_query(request, DailyParams)
    if params.recompute and principal_of(request).role != "admin":
        # Rewriting a stored day is upkeep, not reading: a supervisor configures nothing.
        raise Forbidden("only an admin may recompute a stored day")
    settings = request.app[SETTINGS]
    snapshot = await daily_snapshot(
        request.app[DATABASE],
        CostModel.from_settings(settings),
        settings.timezone,
        request.app[CLOCK],
        params.day,
        recompute=params.recompute,
    )
    return json_response(snapshot)


@endpoint(
    "GET",
    "/api/reports/series",
    summary="Per-day statuses, contacts, calls and costs, and savings per campaign",
    roles=["supervisor"],
    query=SeriesParams,
    tags=["reports"],
)
async def get_series(request: web.Request) -> web.Response:
    """Time series for the console's charts."""
    params = read_query(request, SeriesParams)
    try:
        series = await daily_series(
            request.app[DATABASE],
            request.app[SETTINGS],
            request.app[CLOCK],
            params.from_,
            params.to,
        )
    except SeriesError as exc:
        raise InvalidInput(str(exc)) from exc
    except MissingConversionRate as exc:
        raise ConversionRateMissing(str(exc), currency=exc.currency) from exc
    return json_response(series)
