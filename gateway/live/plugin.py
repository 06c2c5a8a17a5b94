"""The live lane: WebSocket tickets and the operators' sockets."""

from __future__ import annotations

from aiohttp import web

from gateway.core.http.endpoints import add_endpoints
from gateway.core.plugin import Plugin
from gateway.live.http import agent_socket, create_ticket


def setup(app: web.Application, workers: bool) -> None:
    """Add the ticket and WebSocket routes."""
    add_endpoints(app, create_ticket, agent_socket)


PLUGIN = Plugin(name="live", setup=setup)
