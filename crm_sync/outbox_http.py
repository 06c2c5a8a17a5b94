"""The outbox over HTTP: list and retry (admin), its health check and its worker."""

from __future__ import annotations

import logging
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel

from crm_sync.outbox import OutboxWorker, list_items, retry_dead
from gateway.core.appkeys import CLOCK, DATABASE
from gateway.core.clock import isoformat_z
from gateway.core.db.models.crm import OutboxItem
from gateway.core.db.states import OutboxState
from gateway.core.http.endpoints import (
    PageQuery,
    decode_cursor,
    endpoint,
    json_response,
    page,
    read_query,
)
from gateway.core.http.problems import Conflict, InvalidInput, NotFound

log = logging.getLogger(__name__)

OUTBOX_WORKER = web.AppKey("outbox_worker", OutboxWorker)
STOP_TIMEOUT_SECONDS = 10.0


class OutboxQuery(PageQuery):
    """Filter by state, page by seq."""

    state: Literal["pending", "delivered", "dead"] | None = None


class OutboxItemOut(BaseModel):
    """One queued activity as the API shows it."""

    seq: int
    event_id: str
    type: str
    ordering_key: str
    state: str
    attempts: int
    occurred_at: str
    created_at: str
    next_attempt_at: str
    delivered_at: str | None
    last_status: int | None
    last_error: str | None
    data: dict[str, Any]


class OutboxPage(BaseModel):
    """A page of outbox items."""

    items: list[OutboxItemOut]
    next_cursor: str | None


def item_json(item: OutboxItem) -> dict[str, object]:
    """Serialise an outbox item (times ISO 8601 UTC with Z)."""
    return {
        "seq": item.seq,
        "event_id": item.event_id,
        "type": item.type,
        "ordering_key": item.ordering_key,
        "state": item.state,
        "attempts": item.attempts,
        "occurred_at": isoformat_z(item.occurred_at),
        "created_at": isoformat_z(item.created_at),
        "next_attempt_at": isoformat_z(item.next_attempt_at),
        "delivered_at": isoformat_z(item.delivered_at),
        "last_status": item.last_status,
        "last_error": item.last_error,
        "data": item.payload,
    }


def _cursor_seq(cursor: str | None) -> int | None:
    key = decode_cursor(cursor)
    if key is None:
        return None
    if not key.isdigit():
        raise InvalidInput("cursor: not a cursor this API gave out")
    return int(key)


@endpoint(
    "GET",
    "/api/outbox",
    summary="CRM push-back queue, dead letters included",
    roles=["admin"],
    query=OutboxQuery,
    response=OutboxPage,
    tags=["outbox"],
)
async def list_outbox(request: web.Request) -> web.Response:
    """Items in seq order, optionally of one state."""
    query = read_query(request, OutboxQuery)
    after = _cursor_seq(query.cursor)
    async with request.app[DATABASE].transaction() as session:
        state = OutboxState(query.state) if query.state is not None else None
        items = await list_items(session, state=state, limit=query.limit + 1, after_seq=after)
    return json_response(page([item_json(item) for item in items], query.limit, key="seq"))


@endpoint(
    "POST",
    "/api/outbox/{seq}/retry",
    summary="Put a dead letter back in the queue with its attempts reset",
    roles=["admin"],
    response=OutboxItemOut,
    tags=["outbox"],
)
async def retry_outbox_item(request: web.Request) -> web.Response:
    """Dead → pending; 404 when there is no such item, 409 when it is not dead."""
    raw = request.match_info["seq"]
    if not raw.isdigit():
        raise InvalidInput(
            "seq: must be a positive integer",
            errors=[{"field": "seq", "message": "must be a positive integer"}],
        )
    seq = int(raw)
    async with request.app[DATABASE].transaction() as session:
        item = await retry_dead(session, seq, request.app[CLOCK].now())
        if item is None:
            existing = await session.get(OutboxItem, seq)
            if existing is None:
                raise NotFound(f"no outbox item {seq}")
            raise Conflict(f"outbox item {seq} is {existing.state}, not {OutboxState.DEAD}")
    log.info("outbox item %s put back in the queue by an admin", seq)
    return json_response(item_json(item))
