"""Event dispatch by name to sync or async callbacks without blocking the reader."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable

from adapters.ami.protocol import AmiMessage

log = logging.getLogger(__name__)

SyncHandler = Callable[[AmiMessage], None]
AsyncHandler = Callable[[AmiMessage], Awaitable[None]]
EventHandler = SyncHandler | AsyncHandler
WILDCARD = "*"


class _AsyncSubscriber:
    """An async callback fed through its own queue so events keep their order."""

    def __init__(self, handler: AsyncHandler) -> None:
        self.handler = handler
        self.queue: asyncio.Queue[AmiMessage] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None

    def push(self, msg: AmiMessage) -> None:
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._run())
        self.queue.put_nowait(msg)

    async def _run(self) -> None:
        while True:
            msg = await self.queue.get()
            try:
                await self.handler(msg)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("AMI event handler %r failed on %s", self.handler, msg.name)

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()


class EventDispatcher:
    """Routes events by (case-insensitive) name; ``*`` receives every event."""

    def __init__(self) -> None:
        """Start with no subscribers."""
        self._sync: dict[str, list[SyncHandler]] = {}
        self._async: dict[str, list[_AsyncSubscriber]] = {}

    def on(self, name: str, handler: EventHandler) -> Callable[[], None]:
        """Subscribe ``handler`` to ``name``; returns a function that unsubscribes."""
        key = name.lower()
        if inspect.iscoroutinefunction(handler):
            sub = _AsyncSubscriber(handler)
            self._async.setdefault(key, []).append(sub)

            def remove_async() -> None:
                subs = self._async.get(key, [])
                if sub in subs:
                    subs.remove(sub)
                    sub.cancel()

            return remove_async
        sync_handler: SyncHandler = handler  # type: ignore[assignment]
        self._sync.setdefault(key, []).append(sync_handler)

        def remove_sync() -> None:
            handlers = self._sync.get(key, [])
            if sync_handler in handlers:
                handlers.remove(sync_handler)

        return remove_sync

    def wants(self, name: str) -> bool:
        """True when someone listens to ``name`` (the parser's cheap-skip test)."""
        key = name.lower()
        return bool(
            self._sync.get(key)
            or self._async.get(key)
            or self._sync.get(WILDCARD)
            or self._async.get(WILDCARD)
        )

    def dispatch(self, msg: AmiMessage) -> None:
        """Call sync handlers now and queue the event for async ones."""
        name = msg.name
        if name is None:
            return
        key = name.lower()
        for bucket in (key, WILDCARD):
            for handler in self._sync.get(bucket, ()):
                try:
                    handler(msg)
                except Exception:
                    log.exception("AMI event handler %r failed on %s", handler, name)
            for sub in self._async.get(bucket, ()):
                sub.push(msg)

    def close(self) -> None:
        """Cancel the async subscribers' worker tasks."""
        for subs in self._async.values():
            for sub in subs:
                sub.cancel()
