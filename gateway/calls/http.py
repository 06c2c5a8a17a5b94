"""Calls API (records, wrap-up topic, click-to-call) and the PBX link's lifecycle."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from sqlalchemy import func, select, update

from crm_sync.phones import InvalidPhone, normalize_phone
from gateway.appkeys import BUS, CLOCK, DATABASE, HEALTH_CHECKS, METRICS, SETTINGS
from gateway.calls.link import PbxLink
from gateway.calls.schemas import CallOut, CallPage, CallQuery, OriginateIn, OriginateOut, TopicIn
from gateway.clock import TimeInputError, parse_time_input
from gateway.db.models import Call, Customer
from gateway.db.types import new_id
from gateway.http.endpoints import (
    add_endpoints,
    endpoint,
    json_response,
    keyset_page,
    read_body,
    read_query,
)
from gateway.http.problems import InvalidInput, NotFound, ServiceUnavailable

PBX_LINK = web.AppKey("pbx_link", PbxLink)


@endpoint(
    "GET",
    "/api/calls",
    summary="Call records, newest first, by customer and time range",
    roles=["operator", "crm"],
    query=CallQuery,
    response=CallPage,
    tags=["calls"],
)
async def list_calls(request: web.Request) -> web.Response:
    """A page of call records."""
    params = read_query(request, CallQuery)
    timezone = request.app[SETTINGS].timezone
    started = func.coalesce(Call.started_at, Call.created_at)
    query = select(Call)
    try:
        if params.since:
            query = query.where(started >= parse_time_input(params.since, timezone))
        if params.until:
            query = query.where(
                started <= parse_time_input(params.until, timezone, end_of_day=True)
            )
    except TimeInputError as exc:
        raise InvalidInput(str(exc)) from exc
    if params.customer_id:
        query = query.where(Call.customer_id == params.customer_id)
    return await keyset_page(
        request, query, Call.id, lambda call: CallOut.of(call).model_dump(), params, descending=True
    )


@endpoint(
    "PUT",
    "/api/calls/{id}/topic",
    summary="Set the wrap-up topic of a call (from the configured vocabulary)",
    roles=["operator"],
    body=TopicIn,
    response=CallOut,
    tags=["calls"],
)
async def set_topic(request: web.Request) -> web.Response:
    """Record why the customer called; campaigns count calls per topic."""
    body = await read_body(request, TopicIn)
    vocabulary = request.app[SETTINGS].call_topics
    if body.topic not in vocabulary:
        raise InvalidInput(
            f"topic: {body.topic!r} is not one of {', '.join(vocabulary)}",
            errors=[{"field": "topic", "message": "not in the configured vocabulary"}],
        )
    call_id = request.match_info["id"]
    async with request.app[DATABASE].transaction() as session:
        result = await session.execute(
            update(Call)
            .where(Call.id == call_id)
            .values(topic=body.topic, updated_at=request.app[CLOCK].now())
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise NotFound(f"no call {call_id}")
        call = await session.get(Call, call_id)
    assert call is not None
    return json_response(CallOut.of(call).model_dump())


@endpoint(
    "POST",
    "/api/calls/originate",
    summary="Click-to-call: ring the operator's extension, then the customer",
    roles=["operator", "crm"],
    body=OriginateIn,
    response=OriginateOut,
    status=202,
    tags=["calls"],
)
async def originate(request: web.Request) -> web.Response:
    """Store the request (our call id), then ask the PBX; 202 before the call connects."""
    body = await read_body(request, OriginateIn)
    link = request.app.get(PBX_LINK)
    if link is None:
        raise ServiceUnavailable("telephony is disabled (no SWITCHBOARD_AMI_HOST)")
    settings = request.app[SETTINGS]
    now = request.app[CLOCK].now()
    async with request.app[DATABASE].transaction() as session:
        customer_id = body.customer_id
        if customer_id is not None:
            customer = await session.get(Customer, customer_id)
            if customer is None or customer.deleted_at is not None or not customer.phones:
                raise NotFound(f"no callable customer {customer_id}")
            number = customer.phones[0].e164
        else:
            try:
                number = normalize_phone(body.number or "", settings.default_region)
            except InvalidPhone as exc:
                raise InvalidInput(
                    f"number: {exc}", errors=[{"field": "number", "message": str(exc)}]
                ) from exc
        call = Call(
            id=new_id("call"),
            direction="outbound",
            state="originating",
            callee=number,
            extension=body.agent_extension,
            customer_id=customer_id,
            match="exact" if customer_id else "none",
            originate_action_id=new_id("orig"),
            details={},
            created_at=now,
            updated_at=now,
        )
        session.add(call)
    await link.originate(body.agent_extension, number.lstrip("+"), call.originate_action_id or "")
    return json_response(OriginateOut(call_id=call.id).model_dump(), 202)


async def _pbx_ctx(app: web.Application) -> AsyncIterator[None]:
    link = PbxLink(app[SETTINGS], app[DATABASE], app[BUS], app[CLOCK], app[METRICS])
    app[PBX_LINK] = link

    async def ami_health() -> tuple[str, bool]:
        return link.state, link.state == "connected"

    async def ami_load() -> tuple[dict[str, Any], bool]:
        # Shedding is reported, never unhealthy: pulling the instance out of a balancer
        # would move the flood to the next one.
        return link.flow.health(), True

    app[HEALTH_CHECKS]["ami"] = ami_health
    app[HEALTH_CHECKS]["ami_load"] = ami_load
    await link.start()
    yield
    await link.stop()


async def _freeze_startup_objects(app: web.Application) -> None:
    """Keep the collector's full passes off the screen-pop path.

    A full (generation 2) collection walks every object alive since startup (modules,
    mappers, compiled statements, schemas): the screen-pop benchmark saw such passes of
    150-250 ms stop the event loop, several times a minute. gc.freeze moves what is alive
    once the app has started into a permanent generation the collector skips; garbage is
    collected first, and all of it lives as long as the app does. Runs after every
    cleanup_ctx has opened (aiohttp calls on_startup handlers after them).
    """
    gc.collect()
    gc.freeze()


async def _unfreeze(app: web.Application) -> None:
    """Give the objects back to the collector (tests build many apps in one process)."""
    gc.unfreeze()


def setup(app: web.Application, workers: bool) -> None:
    """Add the calls routes; connect to the PBX when one is configured and workers run."""
    add_endpoints(app, list_calls, set_topic, originate)
    if workers and app[SETTINGS].ami_host:
        app.cleanup_ctx.append(_pbx_ctx)
        app.on_startup.append(_freeze_startup_objects)
        app.on_cleanup.append(_unfreeze)
