"""Messages: the API, templates, Twilio's webhooks, unsubscribe, and the send worker with
its channels (real or sandbox), rate limits and Twilio's price settling."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from adapters.twilio import TwilioAdapter, adapter_from_settings
from channels.base import Channel
from channels.email import email_channel_from_settings
from channels.sandbox import SandboxChannel
from channels.sms import SmsChannel
from gateway.core.appkeys import (
    BUS,
    CLOCK,
    DATABASE,
    METRICS,
    METRICS_REFRESHERS,
    SETTINGS,
    MetricsRefresher,
)
from gateway.core.bus.redis import RedisBus
from gateway.core.http.endpoints import add_endpoints
from gateway.core.plugin import Plugin
from gateway.messages.http import list_messages
from gateway.messages.pipeline import SendWorker
from gateway.messages.prepare import Preparer
from gateway.messages.queue_metrics import refresh_send_queue
from gateway.messages.ratelimit import RateLimiter, RedisTokenBucket, TokenBucket
from gateway.messages.templates_http import (
    get_template,
    list_templates,
    preview_template,
    put_template,
)
from gateway.messages.twilio_http import (
    PRICE_TASKS,
    SHUTDOWN_GRACE_SECONDS,
    TWILIO_ADAPTER,
    twilio_inbound,
    twilio_status,
)
from gateway.messages.twilio_prices import settle_prices
from gateway.messages.unsubscribe_http import unsubscribe, unsubscribe_page
from gateway.messages.voice import VoiceTaskChannel

log = logging.getLogger(__name__)
QUEUE_METRICS_TIMEOUT_SECONDS = 2.0
CHANNELS = web.AppKey("channels", dict[str, Channel])
SEND_WORKER = web.AppKey("send_worker", SendWorker)
PRICE_POLL_SECONDS = 60.0


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


async def _twilio_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    adapter = adapter_from_settings(
        settings.twilio_account_sid, settings.secret("twilio_auth_token"), settings.twilio_api_base
    )
    tasks: set[asyncio.Task[int]] = set()
    app[PRICE_TASKS] = tasks
    if adapter is not None:
        app[TWILIO_ADAPTER] = adapter
    yield
    # Let price fetches finish first: cancelling one inside its write transaction can
    # leave SQLite's write lock held by a connection nobody returns to the pool.
    if tasks:
        await asyncio.wait(list(tasks), timeout=SHUTDOWN_GRACE_SECONDS)
    for task in list(tasks):
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    if adapter is not None:
        await adapter.close()


def _send_queue_metrics(app: web.Application) -> MetricsRefresher:
    async def refresh() -> None:
        try:
            await asyncio.wait_for(
                refresh_send_queue(
                    app[DATABASE], app[METRICS], app[CLOCK].now(), app[SETTINGS].send_rates
                ),
                QUEUE_METRICS_TIMEOUT_SECONDS,
            )
        except Exception as exc:
            # The rest of the metrics still matter (most of all while the database is
            # down); stale queue figures would mislead, so they go missing until the next
            # scrape.
            log.warning("send queue metrics unavailable: %s", exc)
            app[METRICS].send_queue_depth.clear()
            app[METRICS].send_queue_oldest_due.clear()

    return refresh


def setup(app: web.Application, workers: bool) -> None:
    """Messages, templates, Twilio's webhooks, unsubscribe; the send worker when workers run."""
    add_endpoints(app, list_templates, get_template, put_template, preview_template)
    add_endpoints(app, twilio_status, twilio_inbound)
    app.cleanup_ctx.append(_twilio_ctx)
    add_endpoints(app, unsubscribe_page, unsubscribe)
    add_endpoints(app, list_messages)
    app[METRICS_REFRESHERS]["send_queue"] = _send_queue_metrics(app)
    if workers:
        app.cleanup_ctx.append(_sender_ctx)


PLUGIN = Plugin(name="messages", setup=setup)
