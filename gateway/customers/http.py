"""Customer API: search, card, timeline (thin handlers: parse → service → serialise)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from aiohttp import web

from gateway.core.appkeys import CLOCK, DATABASE, SETTINGS
from gateway.core.http.endpoints import (
    PageQuery,
    decode_cursor,
    encode_cursor,
    endpoint,
    json_response,
    read_query,
)
from gateway.core.http.problems import NotFound
from gateway.customers import service
from gateway.customers.schemas import (
    CustomerCard,
    CustomerPage,
    CustomerSearchQuery,
    TimelinePage,
)
from gateway.customers.timeline import timeline


@endpoint(
    "GET",
    "/api/customers",
    summary="Search customers by phone (any format), name substring or CRM id",
    roles=["operator", "supervisor", "crm"],
    query=CustomerSearchQuery,
    response=CustomerPage,
    tags=["customers"],
)
async def search_customers(request: web.Request) -> web.Response:
    """Phone hits carry `match`; a number several customers share lists them all."""
    query = read_query(request, CustomerSearchQuery)
    app = request.app
    database = app[DATABASE]
    async with database.sessions() as session:
        hits = await service.search(
            session,
            phone=query.phone,
            name=query.q,
            external_id=query.external_id,
            after_id=decode_cursor(query.cursor),
            limit=query.limit + 1,
            region=app[SETTINGS].default_region,
        )
    more = len(hits) > query.limit
    hits = hits[: query.limit]
    page = CustomerPage(
        items=hits, next_cursor=encode_cursor(hits[-1].id) if more and hits else None
    )
    return json_response(page.model_dump(mode="json"))


def _today(request: web.Request) -> datetime:
    return request.app[CLOCK].now().astimezone(ZoneInfo(request.app[SETTINGS].timezone))


@endpoint(
    "GET",
    "/api/customers/{id}",
    summary="Customer card",
    roles=["operator", "supervisor", "crm"],
    response=CustomerCard,
    tags=["customers"],
)
async def customer_card(request: web.Request) -> web.Response:
    """Identity, phones, status, balance, open tasks, last contacts, next payment."""
    customer_id = request.match_info["id"]
    async with request.app[DATABASE].sessions() as session:
        try:
            customer = await service.get_live(session, customer_id)
        except service.CustomerNotFound as exc:
            raise NotFound(f"no customer {customer_id}") from exc
        card = await service.card(session, customer, _today(request).date())
    return json_response(card.model_dump(mode="json"))


@endpoint(
    "GET",
    "/api/customers/{id}/timeline",
    summary="Everything that happened with a customer, newest first",
    roles=["operator", "supervisor"],
    query=PageQuery,
    response=TimelinePage,
    tags=["customers"],
)
async def customer_timeline(request: web.Request) -> web.Response:
    """Calls, messages, tasks, status changes, activities, complaints, payments."""
    query = read_query(request, PageQuery)
    customer_id = request.match_info["id"]
    async with request.app[DATABASE].sessions() as session:
        try:
            await service.get_live(session, customer_id)
        except service.CustomerNotFound as exc:
            raise NotFound(f"no customer {customer_id}") from exc
        items, next_cursor = await timeline(session, customer_id, query.limit, query.cursor)
    page = TimelinePage(items=items, next_cursor=next_cursor)
    return json_response(page.model_dump(mode="json"))
