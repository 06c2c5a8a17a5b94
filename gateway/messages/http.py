"""GET /api/messages: outbound contacts with their state, cost and reason."""

from __future__ import annotations

import logging

from aiohttp import web
from sqlalchemy import or_, select

from gateway.core.appkeys import DATABASE
from gateway.core.db.models import Campaign, OutboundContact
from gateway.core.http.endpoints import (
    decode_cursor,
    endpoint,
    json_response,
    page,
    read_query,
)
from gateway.messages.schemas import MessageOut, MessagePage, MessageQuery

log = logging.getLogger(__name__)


@endpoint(
    "GET",
    "/api/messages",
    summary="Outbound contacts with their state, cost and reason",
    roles=["operator", "supervisor"],
    query=MessageQuery,
    response=MessagePage,
    tags=["messages"],
)
async def list_messages(request: web.Request) -> web.Response:
    """A page of outbound contacts, newest first."""
    params = read_query(request, MessageQuery)
    query = select(OutboundContact).order_by(OutboundContact.id.desc()).limit(params.limit + 1)
    if params.customer_id:
        query = query.where(OutboundContact.customer_id == params.customer_id)
    if params.status:
        query = query.where(OutboundContact.status == params.status)
    if params.campaign:
        ids = select(Campaign.id).where(
            or_(Campaign.name == params.campaign, Campaign.id == params.campaign)
        )
        query = query.where(OutboundContact.campaign_id.in_(ids))
    after = decode_cursor(params.cursor)
    if after:
        query = query.where(OutboundContact.id < after)
    async with request.app[DATABASE].sessions() as session:
        rows = (await session.execute(query)).scalars().all()
    return json_response(page([MessageOut.of(row).model_dump() for row in rows], params.limit))
