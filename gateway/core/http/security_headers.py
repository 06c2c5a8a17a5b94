"""Browser-side hardening headers on every response: the console and the API alike.

The console loads only its own files: ES modules under /static/js, its stylesheet, and
Chart.js from /static/vendor (served by the gateway from node_modules). It has no inline
script or style, sets styles through the CSSOM (which CSP allows), and talks to its own
origin over fetch and the WebSocket (`'self'` covers ws:/wss: of the same host in CSP 3).
Chart.js draws on a canvas and needs nothing more.
"""

from __future__ import annotations

from collections.abc import MutableMapping

from aiohttp import web

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def add_security_headers(headers: MutableMapping[str, str]) -> None:
    """Set the hardening headers a handler has not set itself."""
    for name, value in SECURITY_HEADERS.items():
        headers.setdefault(name, value)


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: every routed response, files and WebSocket upgrades included."""
    add_security_headers(response.headers)


def install_security_headers(app: web.Application) -> None:
    """Add the hardening headers to every response of `app`."""
    app.on_response_prepare.append(security_headers)
