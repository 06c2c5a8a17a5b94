"""Call-verified tasks: listing and completing them."""

from __future__ import annotations

from aiohttp import web

from gateway.core.http.endpoints import add_endpoints
from gateway.core.plugin import Plugin
from gateway.tasks.http import complete, list_tasks


def setup(app: web.Application, workers: bool) -> None:
    """Add the task routes."""
    add_endpoints(app, list_tasks, complete)


PLUGIN = Plugin(name="tasks", setup=setup)
