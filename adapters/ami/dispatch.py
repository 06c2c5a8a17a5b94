"""Event dispatch by name to sync or async callbacks without blocking the reader."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from adapters.ami.protocol import AmiMessage

log = logging.getLogger(__name__)

SyncHandler = Callable[[AmiMessage], None]
AsyncHandler = Callable[[AmiMessage], Awaitable[None]]
EventHandler = SyncHandler | AsyncHandler
WILDCARD = "*"
_CACHE_MAX = 1024
_T = TypeVar("_T")


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
        # Per exact event name as it arrives: the handlers to call, in order,
        # and whether anyone listens. Rebuilt lazily after every (un)subscribe
        # so dispatch costs one dict lookup instead of lower() + four.
        self._routes: dict[str, list[tuple[Callable[[AmiMessage], None], bool]]] = {}
        self._wants: dict[str, bool] = {}

    def on(self, name: str, handler: EventHandler) -> Callable[[], None]:
        """Subscribe ``handler`` to ``name``; returns a function that unsubscribes."""
        key = name.lower()
        self._changed()
        if inspect.iscoroutinefunction(handler):
            sub = _AsyncSubscriber(handler)
            self._async.setdefault(key, []).append(sub)

            def remove_async() -> None:
                subs = self._async.get(key, [])
                if sub in subs:
                    subs.remove(sub)
                    sub.cancel()
                    self._changed()

            return remove_async
        sync_handler: SyncHandler = handler  # type: ignore[assignment]
        self._sync.setdefault(key, []).append(sync_handler)

        def remove_sync() -> None:
            handlers = self._sync.get(key, [])
            if sync_handler in handlers:
                handlers.remove(sync_handler)
                self._changed()

        return remove_sync

    def _changed(self) -> None:
        self._routes.clear()
        self._wants.clear()

    def wants(self, name: str) -> bool:
        """True when someone listens to ``name`` (the parser's cheap-skip test)."""
        wanted = self._wants.get(name)
        if wanted is None:
            key = name.lower()
            wanted = bool(
                self._sync.get(key)
                or self._async.get(key)
                or self._sync.get(WILDCARD)
                or self._async.get(WILDCARD)
            )
            self._remember(self._wants, name, wanted)
        return wanted

    def _route(self, name: str) -> list[tuple[Callable[[AmiMessage], None], bool]]:
        # Order kept from the per-bucket loops: named sync, named async,
        # wildcard sync, wildcard async. The flag marks sync handlers, whose
        # errors are logged; queueing for an async one is never caught.
        route: list[tuple[Callable[[AmiMessage], None], bool]] = []
        for bucket in (name.lower(), WILDCARD):
            route += [(h, True) for h in self._sync.get(bucket, ())]
            route += [(s.push, False) for s in self._async.get(bucket, ())]
        self._remember(self._routes, name, route)
        return route

    @staticmethod
    def _remember(cache: dict[str, _T], name: str, value: _T) -> None:
        # Names come from the peer; bound the caches against a flood of
        # distinct ones.
        if len(cache) >= _CACHE_MAX:
            cache.clear()
        cache[name] = value

    def dispatch(self, msg: AmiMessage) -> None:
        """Call sync handlers now and queue the event for async ones."""
        name = msg.name
        if name is None:
            return
        route = self._routes.get(name)
        if route is None:
            route = self._route(name)
        for handler, guarded in route:
            if not guarded:
                handler(msg)
                continue
            try:
                handler(msg)
            except Exception:
                log.exception("AMI event handler %r failed on %s", handler, name)

    def close(self) -> None:
        """Cancel the async subscribers' worker tasks."""
        for subs in self._async.values():
            for sub in subs:
                sub.cancel()
