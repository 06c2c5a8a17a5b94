"""Asyncio AMI client session: connect, login, read loop, keepalive, reconnect."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any

from adapters.ami.actions import Action, AmiActions, Connection, PendingAction
from adapters.ami.config import AmiConfig, AmiState, AmiStats, backoff_delay
from adapters.ami.dispatch import EventDispatcher, EventHandler
from adapters.ami.errors import (
    AmiActionError,
    AmiAuthError,
    AmiConnectionError,
    AmiError,
    AmiTimeout,
)
from adapters.ami.protocol import AmiMessage, AmiParser

__all__ = ["Action", "AmiClient", "AmiConfig", "AmiState", "AmiStats", "backoff_delay"]

log = logging.getLogger(__name__)

ConnectHook = Callable[["AmiClient"], Awaitable[None]]
ReadGate = Callable[[], Awaitable[None] | None]
"""Asked before each read: None reads on, an awaitable holds the reader (back-pressure)."""


class AmiClient:
    """One logical AMI session that survives reconnects; its actions go through ``actions``."""

    def __init__(
        self,
        config: AmiConfig,
        *,
        on_connect: ConnectHook | None = None,
        rng: random.Random | None = None,
        read_gate: ReadGate | None = None,
    ) -> None:
        """Prepare the client; nothing happens until ``connect()``."""
        self.config = config
        self.stats = AmiStats()
        self.banner: str | None = None
        self._state = AmiState.DISCONNECTED
        self._events = EventDispatcher()
        self._connect_hooks: list[ConnectHook] = [on_connect] if on_connect else []
        self._rng = rng or random.Random()
        self._conn: Connection | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False
        self._logins = 0
        self._connected_event = asyncio.Event()
        self.actions = AmiActions(
            config, self.stats, self._events, connection=lambda: self._conn, drop=self._drop
        )
        self._read_gate = read_gate
        self._holds = 0  # reads held by the gate, so far or in progress

    # -- public API -------------------------------------------------------
    @property
    def state(self) -> AmiState:
        """Current connection state."""
        return self._state

    def on(self, event: str, handler: EventHandler) -> Callable[[], None]:
        """Subscribe to an event name (or ``*``); returns an unsubscribe function."""
        return self._events.on(event, handler)

    def add_connect_hook(self, hook: ConnectHook) -> None:
        """Run ``hook`` after every successful (re)login, e.g. to resync channels."""
        self._connect_hooks.append(hook)

    async def send_action(self, action: Action, *, timeout: float | None = None) -> AmiMessage:
        """Send an action and return its response; ``Response: Error`` raises."""
        return await self.actions.send_action(action, timeout=timeout)

    async def send_list_action(
        self, action: Action, *, timeout: float | None = None
    ) -> list[AmiMessage]:
        """Send an action answered by an event list; return the listed events."""
        return await self.actions.send_list_action(action, timeout=timeout)

    async def ping(self, timeout: float | None = None) -> float:
        """Round-trip a ``Ping``; returns the time it took in seconds."""
        return await self.actions.ping(timeout)

    async def core_show_channels(self, timeout: float | None = None) -> list[AmiMessage]:
        """List the live channels (``CoreShowChannel`` events)."""
        return await self.actions.core_show_channels(timeout)

    async def originate(
        self,
        channel: str,
        *,
        context: str | None = None,
        exten: str | None = None,
        priority: str = "1",
        application: str | None = None,
        data: str | None = None,
        caller_id: str | None = None,
        timeout_ms: int = 30000,
        variables: Mapping[str, str] | None = None,
        action_id: str | None = None,
    ) -> str:
        """Queue an ``Async`` originate; returns the ActionID to await the result with."""
        return await self.actions.originate(
            channel,
            context=context,
            exten=exten,
            priority=priority,
            application=application,
            data=data,
            caller_id=caller_id,
            timeout_ms=timeout_ms,
            variables=variables,
            action_id=action_id,
        )

    async def originate_result(self, action_id: str, timeout: float | None = None) -> AmiMessage:
        """Wait for the ``OriginateResponse`` event of an ``originate()``."""
        return await self.actions.originate_result(action_id, timeout)

    async def connect(self) -> None:
        """Connect and log in once (errors raise), then keep the session alive."""
        if self._closing:
            raise AmiConnectionError("client is closed")
        await self._open()
        self._spawn(self._supervise())

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Wait until the client is logged in (again)."""
        try:
            await asyncio.wait_for(self._connected_event.wait(), timeout)
        except TimeoutError:
            raise AmiTimeout("not connected in time") from None

    async def close(self) -> None:
        """Log off if possible, stop every task and close the socket."""
        if self._closing:
            return
        self._closing = True
        conn = self._conn
        if conn is not None and self._state is AmiState.CONNECTED:
            with contextlib.suppress(AmiError, OSError):
                await self.send_action({"Action": "Logoff"}, timeout=1.0)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._conn is not None:
            self._drop(self._conn, AmiConnectionError("client closed"))
        self.actions.cancel_originates()
        self._events.close()
        self._state = AmiState.CLOSED

    # -- connection lifecycle ---------------------------------------------
    async def _open(self) -> None:
        cfg = self.config
        self._state = AmiState.CONNECTING
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(cfg.host, cfg.port), cfg.connect_timeout
            )
        except (OSError, TimeoutError) as exc:
            self._state = AmiState.DISCONNECTED
            raise AmiConnectionError(f"cannot connect to {cfg.host}:{cfg.port}: {exc}") from exc
        loop = asyncio.get_running_loop()
        pending: dict[str, PendingAction] = {}

        def wanted(name: str) -> bool:
            # Any action in flight may be answered by an event list whose
            # items nobody subscribed to; keep everything while one is open.
            return bool(pending) or name == "OriginateResponse" or self._events.wants(name)

        parser = AmiParser(max_frame=cfg.max_frame, wanted=wanted, on_skip=self._on_skip)
        conn = Connection(reader, writer, parser, loop.create_future(), pending)
        self._conn = conn
        reader_task = self._spawn(self._read_loop(conn))
        try:
            self.banner = await asyncio.wait_for(asyncio.shield(conn.banner), cfg.connect_timeout)
            await self._login()
        except BaseException as exc:
            reader_task.cancel()
            self._drop(conn, AmiConnectionError("login aborted"))
            self._state = AmiState.DISCONNECTED
            if isinstance(exc, TimeoutError):
                raise AmiTimeout("no AMI banner") from exc
            raise
        if self._logins:
            self.stats.reconnects += 1
        self._logins += 1
        self._state = AmiState.CONNECTED
        self._connected_event.set()
        if cfg.ping_interval > 0:
            self._spawn(self._keepalive(conn))
        for hook in list(self._connect_hooks):
            try:
                await hook(self)
            except Exception:
                log.exception("AMI on_connect hook failed")

    async def _login(self) -> None:
        cfg = self.config
        login: list[tuple[str, str]] = [("Action", "Login"), ("Username", cfg.username)]
        if cfg.auth == "md5":
            try:
                chal = await self.send_action(
                    {"Action": "Challenge", "AuthType": "MD5"}, timeout=cfg.action_timeout
                )
                challenge = chal.get("Challenge") or ""
                key = hashlib.md5((challenge + cfg.secret).encode()).hexdigest()  # noqa: S324
                login += [("AuthType", "MD5"), ("Key", key)]
            except AmiActionError:
                if not cfg.plain_fallback:
                    raise AmiAuthError("server refused the MD5 challenge") from None
                login.append(("Secret", cfg.secret))
        else:
            login.append(("Secret", cfg.secret))
        login.append(("Events", "on" if cfg.events else "off"))
        try:
            await self.send_action(login, timeout=cfg.action_timeout)
        except AmiActionError as exc:
            raise AmiAuthError(f"login refused: {exc}") from None

    async def _supervise(self) -> None:
        attempt = 0
        while not self._closing:
            conn = self._conn
            if conn is not None:
                await conn.lost.wait()
            if self._closing or not self.config.reconnect:
                self._state = AmiState.CLOSED if self._closing else AmiState.DISCONNECTED
                return
            delay = backoff_delay(
                attempt, self.config.backoff_initial, self.config.backoff_max, self._rng
            )
            await asyncio.sleep(delay)
            self._conn = None
            try:
                await self._open()
            except AmiError as exc:
                log.warning("AMI reconnect failed (attempt %d): %s", attempt + 1, exc)
                attempt += 1
                continue
            attempt = 0

    async def _read_loop(self, conn: Connection) -> None:
        try:
            while True:
                if self._read_gate is not None:
                    await self._hold(self._read_gate())
                data = await conn.reader.read(self.config.read_chunk)
                if not data:
                    break
                parser = conn.parser
                filtered = parser.stats.skipped_unwanted
                messages = parser.feed(data)
                self.stats.events_filtered += parser.stats.skipped_unwanted - filtered
                if not conn.banner.done() and not parser.expecting_banner:
                    if parser.banner is None:
                        conn.banner.set_exception(AmiConnectionError("peer is not AMI"))
                        break
                    conn.banner.set_result(parser.banner)
                for msg in messages:
                    self.actions.handle(conn, msg)
                if self._read_gate is not None:
                    # A read returns at once while the socket has data: under a flood the
                    # loop would parse chunk after chunk without serving anyone else.
                    await asyncio.sleep(0)
        except (OSError, asyncio.IncompleteReadError) as exc:
            log.info("AMI connection lost: %s", exc)
        finally:
            self._drop(conn, AmiConnectionError("connection lost"))

    async def _hold(self, waiting: Awaitable[None] | None) -> None:
        if waiting is None:
            return
        self._holds += 1
        try:
            await waiting
        finally:
            self._holds += 1  # odd while held: the keepalive tells a pause from a dead peer

    def _drop(self, conn: Connection, exc: AmiError) -> None:
        """Fail what waits on ``conn`` and mark it lost (idempotent)."""
        if conn.lost.is_set():
            return
        conn.lost.set()
        if self._conn is conn:
            self._connected_event.clear()
            if self._state is AmiState.CONNECTED:
                self._state = AmiState.DISCONNECTED
        if not conn.banner.done():
            conn.banner.set_exception(exc)
            conn.banner.exception()  # mark retrieved; _open reports its own error
        for pending in conn.pending.values():
            if not pending.future.done():
                pending.future.set_exception(exc)
        conn.pending.clear()
        conn.writer.close()

    async def _keepalive(self, conn: Connection) -> None:
        while not conn.lost.is_set():
            await asyncio.sleep(self.config.ping_interval)
            if conn.lost.is_set() or self._conn is not conn:
                return
            holds = self._holds
            try:
                await self.send_action({"Action": "Ping"}, timeout=self.config.ping_timeout)
            except AmiTimeout:
                if holds % 2 or holds != self._holds:
                    # Our own gate held the reader, and the Pong waits behind the events
                    # it holds: the peer is alive, just faster than us.
                    continue
                # TCP may never report a dead peer (no RST, no FIN): our own
                # deadline is the only signal, so drop the link and reconnect.
                log.warning("AMI ping timed out; dropping the connection")
                self._drop(conn, AmiConnectionError("keepalive timeout"))
                return
            except AmiError:
                return

    def _on_skip(self, reason: str, frame: bytes) -> None:
        self.stats.frames_skipped += 1
        log.warning("AMI frame skipped (%s): %r", reason, frame[:80])

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task
