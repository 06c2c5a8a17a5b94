"""Asyncio AMI client: login, ActionID correlation, events, keepalive, reconnect."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import hashlib
import itertools
import logging
import random
import secrets
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

from adapters.ami.dispatch import EventDispatcher, EventHandler
from adapters.ami.errors import (
    AmiActionError,
    AmiAuthError,
    AmiConnectionError,
    AmiError,
    AmiTimeout,
)
from adapters.ami.protocol import DEFAULT_MAX_FRAME, AmiMessage, AmiParser, encode_action

log = logging.getLogger(__name__)

ConnectHook = Callable[["AmiClient"], Awaitable[None]]
Action = Mapping[str, str] | list[tuple[str, str]]


class AmiState(enum.StrEnum):
    """Connection state as reported to health checks."""

    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    CLOSED = "closed"


@dataclass(frozen=True)
class AmiConfig:
    """Where and how to connect; times are in seconds."""

    host: str
    port: int = 5038
    username: str = ""
    secret: str = ""
    auth: str = "md5"  # "md5" (challenge) or "plain"
    plain_fallback: bool = True  # md5 refused by the server -> plain login
    events: bool = True
    connect_timeout: float = 5.0
    action_timeout: float = 10.0
    ping_interval: float = 20.0  # 0 disables the keepalive
    ping_timeout: float = 5.0
    reconnect: bool = True
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    max_frame: int = DEFAULT_MAX_FRAME
    read_chunk: int = 64 * 1024


@dataclass
class AmiStats:
    """Counters for metrics and health."""

    events_received: int = 0
    events_filtered: int = 0  # events nobody subscribed to, skipped unparsed
    frames_skipped: int = 0
    reconnects: int = 0
    last_event_at: float | None = None  # time.monotonic() of the last event


def backoff_delay(attempt: int, initial: float, cap: float, rng: random.Random) -> float:
    """Exponential backoff with full jitter: uniform(0, min(cap, initial * 2**attempt))."""
    return rng.uniform(0.0, min(cap, initial * (2 ** min(attempt, 32))))


@dataclass
class _Pending:
    future: asyncio.Future[AmiMessage | list[AmiMessage]]
    items: list[AmiMessage] | None = None  # set once "EventList: start" arrived
    response: AmiMessage | None = None


@dataclass
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    parser: AmiParser
    banner: asyncio.Future[str]
    pending: dict[str, _Pending] = field(default_factory=dict)
    lost: asyncio.Event = field(default_factory=asyncio.Event)


class AmiClient:
    """One logical AMI session that survives reconnects."""

    def __init__(
        self,
        config: AmiConfig,
        *,
        on_connect: ConnectHook | None = None,
        rng: random.Random | None = None,
    ) -> None:
        """Prepare the client; nothing happens until ``connect()``."""
        self.config = config
        self.stats = AmiStats()
        self.banner: str | None = None
        self._state = AmiState.DISCONNECTED
        self._events = EventDispatcher()
        self._connect_hooks: list[ConnectHook] = [on_connect] if on_connect else []
        self._rng = rng or random.Random()
        self._ids = itertools.count(1)
        self._id_prefix = secrets.token_hex(4)
        self._conn: _Connection | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._originates: dict[str, asyncio.Future[AmiMessage]] = {}
        self._closing = False
        self._logins = 0
        self._connected_event = asyncio.Event()

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

    async def send_action(self, action: Action, *, timeout: float | None = None) -> AmiMessage:
        """Send an action and return its response; ``Response: Error`` raises."""
        result = await self._request(action, timeout)
        assert isinstance(result, AmiMessage)
        return result

    async def send_list_action(
        self, action: Action, *, timeout: float | None = None
    ) -> list[AmiMessage]:
        """Send an action answered by an event list; return the listed events."""
        result = await self._request(action, timeout)
        if isinstance(result, AmiMessage):
            return []  # the server answered without a list
        return result

    async def ping(self, timeout: float | None = None) -> float:
        """Round-trip a ``Ping``; returns the time it took in seconds."""
        started = time.monotonic()
        await self.send_action({"Action": "Ping"}, timeout=timeout or self.config.ping_timeout)
        return time.monotonic() - started

    async def core_show_channels(self, timeout: float | None = None) -> list[AmiMessage]:
        """List the live channels (``CoreShowChannel`` events)."""
        return await self.send_list_action({"Action": "CoreShowChannels"}, timeout=timeout)

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
        aid = action_id or self._next_id()
        fields: list[tuple[str, str]] = [("Action", "Originate"), ("ActionID", aid)]
        fields.append(("Channel", channel))
        if application:
            fields += [("Application", application), ("Data", data or "")]
        else:
            fields += [("Context", context or ""), ("Exten", exten or ""), ("Priority", priority)]
        if caller_id:
            fields.append(("CallerID", caller_id))
        fields += [("Timeout", str(timeout_ms)), ("Async", "true")]
        fields += [("Variable", f"{k}={v}") for k, v in (variables or {}).items()]
        # Registered before sending: the event may beat our await.
        self._prune_originates()
        self._originates[aid] = asyncio.get_running_loop().create_future()
        try:
            await self.send_action(fields)
        except BaseException:
            self._originates.pop(aid, None)
            raise
        return aid

    async def originate_result(self, action_id: str, timeout: float | None = None) -> AmiMessage:
        """Wait for the ``OriginateResponse`` event of an ``originate()``."""
        fut = self._originates.get(action_id)
        if fut is None:
            raise AmiError(f"no originate pending with ActionID {action_id!r}")
        try:
            return await asyncio.wait_for(asyncio.shield(fut), timeout)
        except TimeoutError:
            raise AmiTimeout(f"no OriginateResponse for {action_id}") from None
        finally:
            if fut.done():
                self._originates.pop(action_id, None)

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
        for fut in self._originates.values():
            if not fut.done():
                fut.cancel()
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
        pending: dict[str, _Pending] = {}

        def wanted(name: str) -> bool:
            # Any action in flight may be answered by an event list whose
            # items nobody subscribed to; keep everything while one is open.
            return bool(pending) or name == "OriginateResponse" or self._events.wants(name)

        parser = AmiParser(max_frame=cfg.max_frame, wanted=wanted, on_skip=self._on_skip)
        conn = _Connection(reader, writer, parser, loop.create_future(), pending)
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

    async def _read_loop(self, conn: _Connection) -> None:
        try:
            while True:
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
                    self._handle(conn, msg)
        except (OSError, asyncio.IncompleteReadError) as exc:
            log.info("AMI connection lost: %s", exc)
        finally:
            self._drop(conn, AmiConnectionError("connection lost"))

    def _drop(self, conn: _Connection, exc: AmiError) -> None:
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

    async def _keepalive(self, conn: _Connection) -> None:
        while not conn.lost.is_set():
            await asyncio.sleep(self.config.ping_interval)
            if conn.lost.is_set() or self._conn is not conn:
                return
            try:
                await self.send_action({"Action": "Ping"}, timeout=self.config.ping_timeout)
            except AmiTimeout:
                # TCP may never report a dead peer (no RST, no FIN): our own
                # deadline is the only signal, so drop the link and reconnect.
                log.warning("AMI ping timed out; dropping the connection")
                self._drop(conn, AmiConnectionError("keepalive timeout"))
                return
            except AmiError:
                return

    # -- messages ---------------------------------------------------------
    def _handle(self, conn: _Connection, msg: AmiMessage) -> None:
        aid = msg.action_id
        if msg.is_event:
            self.stats.events_received += 1
            self.stats.last_event_at = time.monotonic()
            pending = conn.pending.get(aid) if aid else None
            if pending is not None and pending.items is not None:
                if (msg.get("EventList") or "").lower() == "complete":
                    del conn.pending[aid]  # type: ignore[arg-type]
                    if not pending.future.done():
                        pending.future.set_result(pending.items)
                else:
                    pending.items.append(msg)
                return
            if aid and msg.name == "OriginateResponse":
                fut = self._originates.get(aid)
                if fut is not None and not fut.done():
                    fut.set_result(msg)
            self._events.dispatch(msg)
            return
        pending = conn.pending.get(aid) if aid else None
        if pending is None:
            return
        if msg.response == "Error":
            del conn.pending[aid]  # type: ignore[arg-type]
            if not pending.future.done():
                pending.future.set_exception(
                    AmiActionError(msg.get("Message") or "action failed", msg)
                )
        elif (msg.get("EventList") or "").lower() == "start":
            pending.items, pending.response = [], msg
        else:
            del conn.pending[aid]  # type: ignore[arg-type]
            if not pending.future.done():
                pending.future.set_result(msg)

    async def _request(
        self, action: Action, timeout: float | None
    ) -> AmiMessage | list[AmiMessage]:
        conn = self._conn
        if conn is None or conn.lost.is_set():
            raise AmiConnectionError("not connected")
        pairs = list(action.items()) if isinstance(action, Mapping) else list(action)
        aid = next((v for k, v in pairs if k.lower() == "actionid"), None)
        if aid is None:
            aid = self._next_id()
            pairs.insert(1, ("ActionID", aid))
        pending = _Pending(asyncio.get_running_loop().create_future())
        conn.pending[aid] = pending
        try:
            conn.writer.write(encode_action(pairs))
            await conn.writer.drain()
        except OSError as exc:
            self._drop(conn, AmiConnectionError(f"write failed: {exc}"))
        try:
            return await asyncio.wait_for(
                pending.future, timeout if timeout is not None else self.config.action_timeout
            )
        except TimeoutError:
            conn.pending.pop(aid, None)
            raise AmiTimeout(f"no response to {pairs[0][1]} ({aid})") from None

    def _on_skip(self, reason: str, frame: bytes) -> None:
        self.stats.frames_skipped += 1
        log.warning("AMI frame skipped (%s): %r", reason, frame[:80])

    def _next_id(self) -> str:
        return f"{self._id_prefix}-{next(self._ids)}"

    def _prune_originates(self) -> None:
        # Results nobody awaited would pile up forever; drop finished ones.
        if len(self._originates) > 1024:
            for aid in [a for a, f in self._originates.items() if f.done()]:
                del self._originates[aid]

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task
