"""Calls API (records, wrap-up topic, click-to-call) and the PBX link's lifecycle."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import func, select, update

from gateway.calls.link import PbxLink
from gateway.calls.originate import ORIGINATOR, OriginateRequest
from gateway.calls.schemas import CallOut, CallPage, CallQuery, OriginateIn, OriginateOut, TopicIn
from gateway.core.appkeys import CLOCK, DATABASE, SETTINGS
from gateway.core.clock import TimeInputError, parse_time_input
from gateway.core.db.models import Call
from gateway.core.http.access import ensure_own_call, visible_calls
from gateway.core.http.auth import principal_of
from gateway.core.http.endpoints import (
    decode_cursor,
    endpoint,
    json_response,
    keyset_page,
    read_body,
    read_query,
)
from gateway.core.http.problems import InvalidInput, NotFound, ServiceUnavailable

PBX_LINK = web.AppKey("pbx_link", PbxLink)


@endpoint(
    "GET",
    "/api/calls",
    summary="Call records, newest first, by customer and time range (operators: their own)",
    roles=["operator", "supervisor", "crm"],
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
    after = decode_cursor(params.cursor)
    async with request.app[DATABASE].sessions() as session:
        query = await visible_calls(
            session, query, principal_of(request), after=after, limit=params.limit + 1
        )
    return await keyset_page(
        request, query, Call.id, lambda call: CallOut.of(call).model_dump(), params, descending=True
    )


@endpoint(
    "PUT",
    "/api/calls/{id}/topic",
    summary="Set the wrap-up topic of one of your calls (from the configured vocabulary)",
    roles=["operator", "supervisor"],
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
        await ensure_own_call(session, principal_of(request), call_id)
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
    roles=["operator", "supervisor", "crm"],
    body=OriginateIn,
    response=OriginateOut,
    status=202,
    tags=["calls"],
)
async def originate(request: web.Request) -> web.Response:
    """Store the request (our call id), then ask the PBX; 202 before the call connects."""
    body = await read_body(request, OriginateIn)
    originator = request.app.get(ORIGINATOR)
    if originator is None:
        raise ServiceUnavailable("telephony is disabled (no SWITCHBOARD_AMI_HOST)")
    target = OriginateRequest(body.agent_extension, body.customer_id, body.number)
    call_id = await originator.originate(principal_of(request), target)
    return json_response(OriginateOut(call_id=call_id).model_dump(), 202)
