"""The real app served on loopback from a thread of its own, for synchronous HTTP clients.

schemathesis sends its requests with `requests` (blocking), so the app cannot share the
test's event loop: it gets its own loop in a daemon thread, and is stopped cleanly.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from aiohttp import web

T = TypeVar("T")


class LiveServer:
    """An event loop in a thread; `serve(app)` serves an app on it until `stop()`."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._runner: web.AppRunner | None = None

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the server's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=60)

    def serve(self, app: web.Application) -> str:
        """Serve `app` on 127.0.0.1 at a free port; returns the base URL."""
        self._runner = web.AppRunner(app)
        self.run(self._runner.setup())
        self.run(web.TCPSite(self._runner, "127.0.0.1", 0).start())
        host, port = self._runner.addresses[0][:2]
        return f"http://{host}:{port}"

    def stop(self) -> None:
        """Close the app (its cleanup_ctx runs) and end the thread."""
        try:
            if self._runner is not None:
                self.run(self._runner.cleanup())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop.close()
