"""Serving the app on a TCP port: aiohttp behind the connection guard.

`web.TCPSite` would hand every socket straight to aiohttp's `RequestHandler`; we create
the listener ourselves so that `ConnectionGuard` (connection_guard.py) sees each socket
first, and use a handler subclass that answers unparseable requests as problem+json.
"""

from __future__ import annotations

import asyncio
from http import HTTPStatus
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import LineTooLong

from gateway.core.appkeys import METRICS, SETTINGS
from gateway.core.http.connection_guard import ConnectionGuard, GuardedConnection
from gateway.core.http.connection_limits import accept_backlog
from gateway.core.http.problems import ApiProblem, http_problem_type, problem_response
from gateway.core.http.security_headers import add_security_headers


class GatewayRequestHandler(web.RequestHandler):
    """aiohttp's protocol, reporting finished responses and answering parse errors as
    problem+json."""

    __slots__ = ("connection",)

    def __init__(self, manager: web.Server, connection: GuardedConnection, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self.connection = connection

    async def finish_response(
        self, request: web.BaseRequest, resp: web.StreamResponse, start_time: float | None
    ) -> tuple[web.StreamResponse, bool]:
        """Write the response, then let the guard time the next request."""
        try:
            return await super().finish_response(request, resp, start_time)
        finally:
            # `resp` may be anything a faulty handler returned (aiohttp answers 500 then).
            self.connection.response_finished(switched=getattr(resp, "status", 0) == 101)

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """A request aiohttp could not parse (or an error past every middleware).

        aiohttp's own answer is text/plain echoing the bytes it choked on, and a traceback
        in the log per request; ours is problem+json with a fixed detail and, for a bad
        request, one quiet log line a minute.
        """
        if request.writer.output_size > 0:
            raise ConnectionError("the response has started; no error response can follow")
        if status >= 500:
            self.log_exception("error handling a request from %s", request.remote, exc_info=exc)
        else:
            self.connection.bad_request(type(exc).__name__ if exc is not None else "bad request")
        if isinstance(exc, LineTooLong):
            detail = f"a request line or header is longer than {self.max_line_size} bytes"
        elif status >= 500:
            detail = "internal error; see the gateway log"
        else:
            detail = "the request is not valid HTTP/1.1"
        problem = ApiProblem(detail)
        problem.status, problem.title = status, HTTPStatus(status).phrase
        problem.type_name = http_problem_type(status)
        response = problem_response(problem)
        add_security_headers(response.headers)
        response.force_close()
        return response


class HttpServer:
    """The app listening on one address; `stop()` closes it within the shutdown grace."""

    def __init__(
        self, runner: web.AppRunner, listener: asyncio.Server, guard: ConnectionGuard
    ) -> None:
        self._runner, self._listener, self._guard = runner, listener, guard

    @property
    def port(self) -> int:
        """The bound port (useful when started on port 0)."""
        sockets = self._listener.sockets
        return int(sockets[0].getsockname()[1]) if sockets else 0

    async def stop(self) -> None:
        """Stop accepting, close idle connections, give running requests the grace."""
        self._listener.close()
        self._guard.close_waiting()
        await self._runner.cleanup()


async def start_http(app: web.Application, host: str, port: int) -> HttpServer:
    """Start the app (its startup and cleanup contexts) and listen on host:port."""
    settings = app[SETTINGS]
    limits = settings.http_limits
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=limits.shutdown_grace_seconds)
    await runner.setup()
    server = runner.server
    assert server is not None
    loop = asyncio.get_running_loop()

    def make_handler(connection: GuardedConnection) -> GatewayRequestHandler:
        return GatewayRequestHandler(
            server,
            connection,
            loop=loop,
            keepalive_timeout=limits.keepalive_seconds,
            access_log=None,
        )

    guard = ConnectionGuard(limits, make_handler, app[METRICS].registry, settings.trusted_proxies)
    # Read by each RequestHandler when it is created, so wrapped before the first accept.
    server.request_factory = guard.request_factory(server.request_factory)
    try:
        listener = await loop.create_server(guard, host, port, backlog=accept_backlog())
    except BaseException:
        await runner.cleanup()
        raise
    return HttpServer(runner, listener, guard)
