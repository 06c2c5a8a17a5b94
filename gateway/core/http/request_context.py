"""Each request's id (X-Request-ID, echoed back) and client address, set as the log
context for everything the request does."""

from __future__ import annotations

import re
import uuid

from aiohttp import web

from gateway.core.http.auth import client_address
from gateway.core.http.problems import Handler
from gateway.core.logs import CLIENT, REQUEST_ID

REQUEST_ID_HEADER = "X-Request-ID"
# What we accept from a caller (or the proxy in front): short, printable, no spaces or
# separators, so it cannot forge a log line or smuggle a header.
_SANE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
_ID_OF = web.RequestKey("request_id", str)


def request_id_from(header: str | None) -> str:
    """The caller's id when it is sane, else a new one."""
    if header is not None and _SANE_ID.fullmatch(header):
        return header
    return uuid.uuid4().hex


@web.middleware
async def request_context_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Outermost: set the ids for the request's logs (tasks it starts inherit them)."""
    request_id = request_id_from(request.headers.get(REQUEST_ID_HEADER))
    request[_ID_OF] = request_id
    id_token = REQUEST_ID.set(request_id)
    client_token = CLIENT.set(client_address(request))
    try:
        return await handler(request)
    finally:
        CLIENT.reset(client_token)
        REQUEST_ID.reset(id_token)


async def echo_request_id(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: every response, WebSocket upgrades and files included."""
    request_id = request.get(_ID_OF)
    if request_id is not None:
        response.headers[REQUEST_ID_HEADER] = request_id


def install_request_context(app: web.Application) -> None:
    """Echo the request id on every response (the middleware is listed in create_app)."""
    app.on_response_prepare.append(echo_request_id)
