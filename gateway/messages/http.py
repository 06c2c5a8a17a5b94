"""GET /api/messages, and the send worker with its channels (real or sandbox)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web
from sqlalchemy import or_, select

from adapters.twilio import TwilioAdapter
from channels.base import Channel
from channels.email import email_channel_from_settings
from channels.sandbox import SandboxChannel
from channels.sms import SmsChannel
from gateway.appkeys import BUS, CLOCK, DATABASE, SETTINGS
from gateway.bus.redis import RedisBus
from gateway.db.models import Campaign, OutboundContact
from gateway.http.endpoints import (
    add_endpoints,
    decode_cursor,
    endpoint,
    json_response,
    page,
    read_query,
)
from gateway.messages.pipeline import SendWorker
from gateway.messages.prepare import Preparer
from gateway.messages.ratelimit import RateLimiter, RedisTokenBucket, TokenBucket
from gateway.messages.schemas import MessageOut, MessagePage, MessageQuery
from gateway.messages.twilio_http import TWILIO_ADAPTER
from gateway.messages.twilio_prices import settle_prices
from gateway.messages.voice import VoiceTaskChannel

log = logging.getLogger(__name__)
PRICE_POLL_SECONDS = 60.0
CHANNELS = web.AppKey("channels", dict[str, Channel])
SEND_WORKER = web.AppKey("send_worker", SendWorker)


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


def build_channels(app: web.Application) -> dict[str, Channel]:
    """Real channels where a provider is configured, the sandbox everywhere else."""
    settings = app[SETTINGS]
    adapter = app.get(TWILIO_ADAPTER)
    sms: Channel = SmsChannel(adapter, settings) if adapter else SandboxChannel("sms")
    email: Channel = (
        email_channel_from_settings(settings, clock=app[CLOCK])
        if settings.smtp_host
        else SandboxChannel("email")
    )
    return {"sms": sms, "email": email, "voice": VoiceTaskChannel(app[DATABASE], app[CLOCK])}


def build_limiters(app: web.Application) -> dict[str, RateLimiter]:
    """A token bucket per channel: shared in Redis when several instances run."""
    bus = app[BUS]
    limiters: dict[str, RateLimiter] = {}
    for channel, rate in app[SETTINGS].send_rates.items():
        if isinstance(bus, RedisBus):
            limiters[channel] = RedisTokenBucket(bus.client, channel, rate)
        else:
            limiters[channel] = TokenBucket(rate)
    return limiters


async def _sender_ctx(app: web.Application) -> AsyncIterator[None]:
    channels = build_channels(app)
    app[CHANNELS] = channels
    worker = SendWorker(
        app[DATABASE],
        app[SETTINGS],
        app[CLOCK],
        channels,
        Preparer(app[SETTINGS]),
        limiters=build_limiters(app),
    )
    app[SEND_WORKER] = worker
    stop = asyncio.Event()
    tasks = [asyncio.create_task(worker.run_forever(stop), name="send-worker")]
    adapter = app.get(TWILIO_ADAPTER)
    if adapter is not None:
        tasks.append(asyncio.create_task(_settle_prices_forever(app, adapter, stop)))
    yield
    stop.set()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(task, 10)
    # The SMS channel runs on the app's shared Twilio adapter, closed by its own context.
    for name, channel in channels.items():
        if name != "sms":
            await channel.close()


async def _settle_prices_forever(
    app: web.Application, adapter: TwilioAdapter, stop: asyncio.Event
) -> None:
    """Twilio prices a message only after sending it: replace configured estimates."""
    while not stop.is_set():
        try:
            await settle_prices(app[DATABASE], adapter, app[CLOCK].now())
        except Exception:
            log.exception("fetching Twilio prices failed; trying again later")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), PRICE_POLL_SECONDS)


def setup(app: web.Application, workers: bool) -> None:
    """Add the messages API; run the send worker when workers run."""
    add_endpoints(app, list_messages)
    if workers:
        app.cleanup_ctx.append(_sender_ctx)
