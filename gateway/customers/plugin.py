"""The customers feature: search, the card, the timeline."""

from __future__ import annotations

from aiohttp import web

from gateway.core.http.endpoints import add_endpoints
from gateway.core.plugin import Plugin
from gateway.customers.http import customer_card, customer_timeline, search_customers


def setup(app: web.Application, workers: bool) -> None:
    """Add the customer routes."""
    add_endpoints(app, search_customers, customer_card, customer_timeline)


PLUGIN = Plugin(name="customers", setup=setup)
