"""`POST /api/ws-tickets` and `WS /ws/agents/{extension}`, fed from the bus.

Browsers cannot set an Authorization header on a WebSocket, and a long-lived token in a
URL ends up in proxy logs; so the page asks for a ticket (valid 60 s, usable once,
stored on the bus so any instance can redeem it) and opens `?ticket=…`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from urllib.parse import urlsplit

from aiohttp import WSCloseCode, WSMsgType, web
from pydantic import BaseModel

from gateway.core.appkeys import BUS, DATABASE, SETTINGS
from gateway.core.bus import Subscription
from gateway.core.http.access import owns_extension
from gateway.core.http.auth import (
    TOKENS,
    Principal,
    bearer_token,
    failed_authentication,
    principal_of,
    session_principal,
)
from gateway.core.http.endpoints import endpoint, json_response
from gateway.core.http.problems import ApiProblem, Forbidden, Unauthorized
from gateway.core.http.session import SESSION_COOKIE
from gateway.live.sockets import CLOSE_TIMEOUT_S, LiveSockets

LIVE_SOCKETS = web.AppKey("live_sockets", LiveSockets)

TICKET_TTL_SECONDS = 60
HEARTBEAT_SECONDS = 25.0
URL_TOKEN_PARAMS = ("token", "access_token", "api_token")


class TicketOut(BaseModel):
    """A single-use ticket for opening the WebSocket."""

    ticket: str
    expires_in: int


def agent_channel(extension: str) -> str:
    """The bus channel carrying one extension's live events."""
    return f"agent:{extension}"


@endpoint(
    "POST",
    "/api/ws-tickets",
    summary="Single-use ticket (60 s) for opening the WebSocket from a browser",
    roles=["operator", "supervisor"],
    response=TicketOut,
    status=201,
    tags=["live"],
)
async def create_ticket(request: web.Request) -> web.Response:
    """Issue a ticket bound to the caller's identity."""
    principal = principal_of(request)
    ticket = secrets.token_urlsafe(24)
    identity = json.dumps(
        {"role": principal.role, "agent_id": principal.agent_id, "token_id": principal.token_id}
    )
    await request.app[BUS].put_once(f"ws-ticket:{ticket}", identity, TICKET_TTL_SECONDS)
    return json_response(TicketOut(ticket=ticket, expires_in=TICKET_TTL_SECONDS).model_dump(), 201)


async def _principal_for_socket(request: web.Request) -> Principal:
    if any(name in request.query for name in URL_TOKEN_PARAMS):
        raise ApiProblem("API tokens are not accepted in the URL; use a ticket or a header")
    token = bearer_token(request)
    if token is not None:
        principal = request.app[TOKENS].authenticate(token)
        if principal is None:
            raise failed_authentication(request, Unauthorized("unknown or revoked token"))
        return principal
    ticket = request.query.get("ticket")
    if ticket:
        identity = await request.app[BUS].take(f"ws-ticket:{ticket}")
        if identity is None:
            refusal = Unauthorized("ticket unknown, expired or already used")
            raise failed_authentication(request, refusal)
        data = json.loads(identity)
        return Principal(data["role"], data.get("agent_id"), data.get("token_id", ""))
    if SESSION_COOKIE in request.cookies:
        # Browsers send cookies on cross-site WebSocket handshakes that SameSite does not
        # cover in every browser: only our own pages may use the cookie here.
        origin = request.headers.get("Origin")
        ours = {request.host, urlsplit(request.app[SETTINGS].public_url).netloc}
        if origin is not None and urlsplit(origin).netloc not in ours:
            raise Forbidden("the session cookie is only accepted from the console's own origin")
        return await session_principal(request, csrf=False)
    raise Unauthorized("authenticate with an Authorization header, a ?ticket= or the session")


async def _owns_extension(request: web.Request, principal: Principal, extension: str) -> bool:
    # The same rule as the API's (click-to-call, calls, tasks): gateway/calls/access.py.
    async with request.app[DATABASE].sessions() as session:
        return await owns_extension(session, principal, extension)


@endpoint(
    "GET",
    "/ws/agents/{extension}",
    summary="WebSocket: live screen-pops and call updates for one extension",
    auth="bearer-or-ticket",
    tags=["live"],
)
async def agent_socket(request: web.Request) -> web.StreamResponse:
    """Forward the extension's bus channel to the socket until either side closes."""
    extension = request.match_info["extension"]
    principal = await _principal_for_socket(request)
    if not await _owns_extension(request, principal, extension):
        raise Forbidden(f"extension {extension} is not one of yours")
    sockets = request.app[LIVE_SOCKETS]
    socket = web.WebSocketResponse(heartbeat=HEARTBEAT_SECONDS, timeout=CLOSE_TIMEOUT_S)
    if sockets.full(principal):
        # Opened to be closed: a browser sees a close reason, never a refused handshake.
        await socket.prepare(request)
        await socket.close(code=WSCloseCode.POLICY_VIOLATION, message=sockets.refusal())
        return socket
    subscription = await request.app[BUS].subscribe(agent_channel(extension))
    async with subscription:
        await socket.prepare(request)
        with sockets.hold(principal, socket):
            await _serve_socket(socket, subscription, extension)
    return socket


async def _serve_socket(
    socket: web.WebSocketResponse, subscription: Subscription, extension: str
) -> None:
    """Say hello, then forward until either side closes."""
    await socket.send_json({"type": "hello", "extension": extension})
    reader = asyncio.create_task(_drain(socket))
    forwarder = asyncio.create_task(_forward(subscription, socket))
    try:
        await asyncio.wait({reader, forwarder}, return_when=asyncio.FIRST_COMPLETED)
        if forwarder.done():
            forwarder.result()  # any other failure of a send is the handler's error
    finally:
        for task in (reader, forwarder):
            task.cancel()
            # A failure was raised above (the forwarder's) or is the socket closing.
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await socket.close()


async def _forward(subscription: Subscription, socket: web.WebSocketResponse) -> None:
    """Send the channel's messages as they come.

    One long-lived task: a message wakes it once (messages already queued go out without
    waking it at all). A task and a wait() per message cost a screen-pop three passes of
    a busy event loop before its frame was written.
    """
    try:
        async for message in subscription:
            await socket.send_json(message)
    except ConnectionError:
        return  # the browser left while a frame was going out: the socket is closing


async def _drain(socket: web.WebSocketResponse) -> None:
    """Read (and ignore) what the browser sends, so close frames and pings are handled."""
    async for message in socket:
        if message.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
            break
