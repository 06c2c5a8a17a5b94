"""The outbox over HTTP: list and retry (admin), its health check and its worker."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel

from crm_sync.outbox import DEAD, OutboxWorker, list_items, outbox_stats, retry_dead
from gateway.appkeys import CLOCK, DATABASE, HEALTH_CHECKS, METRICS, SETTINGS
from gateway.clock import isoformat_z
from gateway.db.models.crm import OutboxItem
from gateway.http.endpoints import (
    PageQuery,
    add_endpoints,
    decode_cursor,
    endpoint,
    json_response,
    page,
    read_query,
)
from gateway.http.problems import Conflict, InvalidInput, NotFound

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


def item_json(item: OutboxItem) -> dict[str, Any]:
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
        items = await list_items(session, state=query.state, limit=query.limit + 1, after_seq=after)
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
            raise Conflict(f"outbox item {seq} is {existing.state}, not {DEAD}")
    log.info("outbox item %s put back in the queue by an admin", seq)
    return json_response(item_json(item))


def setup(app: web.Application, workers: bool) -> None:
    """Routes, the health check, and the delivery worker when the CRM URL is set."""
    add_endpoints(app, list_outbox, retry_outbox_item)

    async def check() -> tuple[Any, bool]:
        async with app[DATABASE].reading() as session:
            stats = await outbox_stats(session, app[CLOCK].now())
        app[METRICS].outbox_backlog.set(stats.backlog)
        app[METRICS].outbox_dead.set(stats.dead)
        shown = {
            "backlog": stats.backlog,
            "dead": stats.dead,
            "oldest_pending_seconds": round(stats.oldest_pending_seconds, 3),
        }
        return shown, stats.dead == 0

    app[HEALTH_CHECKS]["outbox"] = check
    if workers and app[SETTINGS].crm_api_url:
        app.cleanup_ctx.append(_worker_ctx)


async def _worker_ctx(app: web.Application) -> AsyncIterator[None]:
    worker = OutboxWorker(app[DATABASE], app[SETTINGS], app[CLOCK], app[METRICS])
    app[OUTBOX_WORKER] = worker
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run_forever(stop), name="crm-outbox-worker")
    yield
    stop.set()
    try:
        # A delivery in flight may finish; past the timeout it is cancelled and its
        # lease brings the item back later (at-least-once).
        await asyncio.wait_for(task, STOP_TIMEOUT_SECONDS)
    except TimeoutError:
        log.warning("outbox worker did not stop in %.0f s; cancelled", STOP_TIMEOUT_SECONDS)
    finally:
        await worker.close()
