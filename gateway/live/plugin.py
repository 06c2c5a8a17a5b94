"""The live lane: WebSocket tickets and the operators' sockets."""

from __future__ import annotations

from aiohttp import web

from gateway.core.appkeys import SETTINGS
from gateway.core.http.endpoints import add_endpoints
from gateway.core.plugin import Plugin
from gateway.live.http import LIVE_SOCKETS, agent_socket, create_ticket
from gateway.live.sockets import LiveSockets


def setup(app: web.Application, workers: bool) -> None:
    """Add the ticket and WebSocket routes."""
    add_endpoints(app, create_ticket, agent_socket)
    sockets = LiveSockets(app[SETTINGS].http_limits.websockets_per_user)
    app[LIVE_SOCKETS] = sockets
    app.on_shutdown.append(sockets.close_all)


PLUGIN = Plugin(name="live", setup=setup)
