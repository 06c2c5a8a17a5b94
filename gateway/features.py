"""The feature list: each entry adds its routes, workers and health checks to the app."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

import crm_sync.outbox_http
import crm_sync.webhooks_http
import gateway.allocation.http
import gateway.calls.http
import gateway.campaigns.http
import gateway.campaigns.worker
import gateway.console
import gateway.costs.http
import gateway.customers.http
import gateway.live.http
import gateway.messages.http
import gateway.messages.templates_http
import gateway.messages.twilio_http
import gateway.messages.unsubscribe_http
import gateway.tasks.http

Feature = Callable[[web.Application, bool], None]

FEATURES: tuple[Feature, ...] = (
    gateway.customers.http.setup,
    crm_sync.webhooks_http.setup,
    crm_sync.outbox_http.setup,
    gateway.live.http.setup,
    gateway.tasks.http.setup,
    gateway.calls.http.setup,
    gateway.messages.templates_http.setup,
    gateway.messages.twilio_http.setup,
    gateway.messages.unsubscribe_http.setup,
    gateway.messages.http.setup,
    gateway.campaigns.http.setup,
    gateway.campaigns.worker.setup,
    gateway.console.setup,
    gateway.costs.http.setup,
    gateway.allocation.http.setup,
)
