"""Action side of the AMI client: ActionID correlation, event lists, originate."""

from __future__ import annotations

import asyncio
import itertools
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from adapters.ami.config import AmiConfig, AmiStats
from adapters.ami.dispatch import EventDispatcher
from adapters.ami.errors import AmiActionError, AmiConnectionError, AmiError, AmiTimeout
from adapters.ami.protocol import AmiMessage, AmiParser, encode_action

Action = Mapping[str, str] | list[tuple[str, str]]


@dataclass
class PendingAction:
    """An action waiting for its response (or for the end of its event list)."""

    future: asyncio.Future[AmiMessage | list[AmiMessage]]
    items: list[AmiMessage] | None = None  # set once "EventList: start" arrived
    response: AmiMessage | None = None


@dataclass
class Connection:
    """One TCP connection of the session and the actions in flight on it."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    parser: AmiParser
    banner: asyncio.Future[str]
    pending: dict[str, PendingAction] = field(default_factory=dict)
    lost: asyncio.Event = field(default_factory=asyncio.Event)


class AmiActions:
    """Sending actions and matching what comes back, for one logical session.

    The session (``AmiClient``) owns the socket and holds one of these: it says which
    connection to write on (``connection``), how to drop one that failed (``drop``), and
    hands every parsed message to ``handle``; this object turns actions into futures.
    """

    def __init__(
        self,
        config: AmiConfig,
        stats: AmiStats,
        events: EventDispatcher,
        *,
        connection: Callable[[], Connection | None],
        drop: Callable[[Connection, AmiError], None],
    ) -> None:
        """Bind to the session's settings, counters, dispatcher and connection."""
        self._config = config
        self._stats = stats
        self._events = events
        self._connection = connection
        self._drop = drop
        self._ids = itertools.count(1)
        self._id_prefix = secrets.token_hex(4)
        self._originates: dict[str, asyncio.Future[AmiMessage]] = {}

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
        await self.send_action({"Action": "Ping"}, timeout=timeout or self._config.ping_timeout)
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

    def cancel_originates(self) -> None:
        """The session closed: nobody will see the results still awaited."""
        for fut in self._originates.values():
            if not fut.done():
                fut.cancel()

    # -- messages ---------------------------------------------------------
    def handle(self, conn: Connection, msg: AmiMessage) -> None:
        """Route one message read on ``conn``: a response, a list item or an event."""
        aid = msg.action_id
        if msg.is_event:
            self._stats.events_received += 1
            self._stats.last_event_at = time.monotonic()
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
        conn = self._connection()
        if conn is None or conn.lost.is_set():
            raise AmiConnectionError("not connected")
        pairs = list(action.items()) if isinstance(action, Mapping) else list(action)
        aid = next((v for k, v in pairs if k.lower() == "actionid"), None)
        if aid is None:
            aid = self._next_id()
            pairs.insert(1, ("ActionID", aid))
        pending = PendingAction(asyncio.get_running_loop().create_future())
        conn.pending[aid] = pending
        try:
            conn.writer.write(encode_action(pairs))
            await conn.writer.drain()
        except OSError as exc:
            self._drop(conn, AmiConnectionError(f"write failed: {exc}"))
        try:
            return await asyncio.wait_for(
                pending.future, timeout if timeout is not None else self._config.action_timeout
            )
        except TimeoutError:
            conn.pending.pop(aid, None)
            raise AmiTimeout(f"no response to {pairs[0][1]} ({aid})") from None

    def _next_id(self) -> str:
        return f"{self._id_prefix}-{next(self._ids)}"

    def _prune_originates(self) -> None:
        # Results nobody awaited would pile up forever; drop finished ones.
        if len(self._originates) > 1024:
            for aid in [a for a, f in self._originates.items() if f.done()]:
                del self._originates[aid]
