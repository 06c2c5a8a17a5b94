"""AMI-over-TCP front end of the PBX simulator."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from adapters.ami.protocol import AmiMessage, AmiParser, encode_action
from gateway.pbx_simulator.engine import Pbx
from gateway.pbx_simulator.model import Fields, core_show_channel_fields
from gateway.pbx_simulator.scenario import CallSpec, Script, load_script

log = logging.getLogger(__name__)

BANNER = b"Asterisk Call Manager/11.0.0\r\n"
_EXT_RE = re.compile(r"^[^/]+/([^@/-]+)")
_Reply = Callable[..., None]


@dataclass(eq=False)
class _Session:
    writer: asyncio.StreamWriter
    authed: bool = False
    events: bool = True
    challenge: str | None = None
    session_id: str = ""
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def send(self, fields: Fields) -> None:
        if not self.writer.is_closing():
            self.writer.write(encode_action(fields))


class SimulatorServer:
    """A TCP server speaking AMI like Asterisk 22, driving a simulated PBX."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        username: str = "gateway",
        secret: str = "changeme",  # noqa: S107 - the simulator's documented demo login
        seed: int = 0,
        speed: float = 1.0,
        script: Script | None = None,
        start_epoch: float | None = None,
        trunk: str = "trunk",
        cdr_linkedid: bool = True,
        timestamp_events: bool = False,
    ) -> None:
        """Configure; call ``start()`` (or use ``async with``) to listen."""
        self.host = host
        self._port = port
        self.username = username
        self.secret = secret
        self.script = script or Script()
        self.originate_spec: CallSpec = self.script.originate
        self.pbx = Pbx(
            self._broadcast,
            speed=speed,
            seed=seed,
            start_epoch=start_epoch,
            trunk=trunk,
            cdr_linkedid=cdr_linkedid,
        )
        # Like `timestampevents = yes` in manager.conf: every event carries the simulated
        # time, so a consumer measures simulated durations even at speed > 1.
        self.timestamp_events = timestamp_events
        self.frozen = False  # True: a hung peer (reads nothing, sends nothing)
        self.actions_seen: list[AmiMessage] = []
        self._sessions: set[_Session] = set()
        self._server: asyncio.Server | None = None
        self._started = time.monotonic()
        self._session_ids = iter(range(0x7F0000001000, 0x7FFFFFFFFFFF, 0x10))

    # -- lifecycle ----------------------------------------------------------------
    async def start(self) -> None:
        """Listen and start the scripted calls."""
        self._server = await asyncio.start_server(self._handle, self.host, self._port)
        for spec in self.script.calls:
            self.pbx.start_call(spec)

    @property
    def port(self) -> int:
        """The port actually bound (useful with port 0)."""
        if self._server is None:
            return self._port
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Stop calls, drop clients and close the listener."""
        await self.pbx.close()
        if self._server is not None:
            self._server.close()
        await self.drop_connections()
        if self._server is not None:
            await self._server.wait_closed()

    async def __aenter__(self) -> SimulatorServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- test and demo helpers ----------------------------------------------------
    def start_call(self, spec: CallSpec) -> asyncio.Task[None]:
        """Play one more call now (plus its ``start_at``)."""
        return self.pbx.start_call(spec)

    async def wait_idle(self) -> None:
        """Wait until every call has finished."""
        await self.pbx.wait_idle()

    @property
    def client_count(self) -> int:
        """Connected sessions (logged in or not)."""
        return len(self._sessions)

    async def drop_connections(self) -> int:
        """Abort every client connection (calls keep running); returns how many."""
        sessions = list(self._sessions)
        for s in sessions:
            s.writer.transport.abort()
        for s in sessions:
            for task in list(s.tasks):
                task.cancel()
        self._sessions.clear()
        await asyncio.sleep(0)
        return len(sessions)

    def inject_raw(self, data: bytes) -> None:
        """Write raw bytes (garbage, oversized frames) to every logged-in client."""
        for s in self._sessions:
            if s.authed and not s.writer.is_closing():
                s.writer.write(data)

    async def drain(self) -> None:
        """Wait until every client has read what was written (a flood at the peer's pace)."""
        for s in list(self._sessions):
            if not s.writer.is_closing():
                with contextlib.suppress(ConnectionError):
                    await s.writer.drain()

    # -- wire ---------------------------------------------------------------------
    def _broadcast(self, name: str, fields: Fields, privilege: str) -> None:
        if self.frozen:
            return
        stamp = [("Timestamp", f"{self.pbx.now():.6f}")] if self.timestamp_events else []
        data = encode_action([("Event", name), ("Privilege", privilege), *stamp, *fields])
        for s in self._sessions:
            if s.authed and s.events and not s.writer.is_closing():
                s.writer.write(data)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = _Session(writer, session_id=hex(next(self._session_ids)))
        self._sessions.add(session)
        task = asyncio.current_task()
        if task is not None:
            session.tasks.add(task)
        parser = AmiParser(expect_banner=False)
        try:
            writer.write(BANNER)
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                if self.frozen:
                    continue
                for msg in parser.feed(data):
                    if not await self._action(session, msg):
                        return
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._sessions.discard(session)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _action(self, s: _Session, msg: AmiMessage) -> bool:
        """Answer one action; False closes the connection."""
        self.actions_seen.append(msg)
        action = (msg.get("Action") or "").lower()
        aid = msg.action_id
        head: Fields = [("ActionID", aid)] if aid is not None else []

        def reply(response: str, *extra: tuple[str, str]) -> None:
            s.send([("Response", response), *head, *extra])

        if action == "challenge":
            s.challenge = str(self.pbx.rng.randrange(100_000_000, 999_999_999))
            reply("Success", ("Challenge", s.challenge))
        elif action == "login":
            if not self._check_login(s, msg):
                reply("Error", ("Message", "Authentication failed"))
                await s.writer.drain()
                return False
            s.authed = True
            s.events = (msg.get("Events") or "on").lower() not in ("off", "no", "false")
            reply("Success", ("Message", "Authentication accepted"))
            self._greet(s)
        elif action == "logoff":
            reply("Goodbye", ("Message", "Thanks for all the fish."))
            await s.writer.drain()
            return False
        elif not s.authed:
            reply("Error", ("Message", "Authentication Required"))
        elif action == "ping":
            reply("Success", ("Ping", "Pong"), ("Timestamp", f"{time.time():.6f}"))
        elif action == "originate":
            self._originate(msg, reply)
        elif action == "coreshowchannels":
            self._core_show_channels(s, aid or "")
        elif action == "hangup":
            if self.pbx.request_hangup(msg.get("Channel") or ""):
                reply("Success", ("Message", "Channel Hungup"))
            else:
                reply("Error", ("Message", "No such channel"))
        else:
            reply("Error", ("Message", "Invalid/unknown command"))
        return True

    def _check_login(self, s: _Session, msg: AmiMessage) -> bool:
        if (msg.get("Username") or "") != self.username:
            return False
        if (msg.get("AuthType") or "").lower() == "md5":
            if s.challenge is None:
                return False
            expected = hashlib.md5((s.challenge + self.secret).encode()).hexdigest()  # noqa: S324
            return (msg.get("Key") or "").lower() == expected
        return msg.get("Secret") == self.secret

    def _greet(self, s: _Session) -> None:
        if not s.events:
            return
        uptime = str(int(time.monotonic() - self._started))
        s.send(
            [
                ("Event", "FullyBooted"),
                ("Privilege", "system,all"),
                ("Uptime", uptime),
                ("LastReload", uptime),
                ("Status", "Fully Booted"),
            ]
        )
        peer = s.writer.get_extra_info("peername") or ("127.0.0.1", 0)
        sock = s.writer.get_extra_info("sockname") or ("127.0.0.1", 0)
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"
        s.send(
            [
                ("Event", "SuccessfulAuth"),
                ("Privilege", "security,all"),
                ("EventTV", now),
                ("Severity", "Informational"),
                ("Service", "AMI"),
                ("EventVersion", "1"),
                ("AccountID", self.username),
                ("SessionID", s.session_id),
                ("LocalAddress", f"IPV4/TCP/{sock[0]}/{sock[1]}"),
                ("RemoteAddress", f"IPV4/TCP/{peer[0]}/{peer[1]}"),
                ("UsingPassword", "0"),
                ("SessionTV", now),
            ]
        )

    def _originate(self, msg: AmiMessage, reply: _Reply) -> None:
        channel = msg.get("Channel") or ""
        match = _EXT_RE.match(channel)
        if match is None:
            reply("Error", ("Message", "Originate failed"))
            return
        spec = replace(
            self.originate_spec,
            kind="outbound",
            extensions=(match.group(1),),
            answered_by=None,
            number=msg.get("Exten") or None,
            start_at=0.0,
        )
        reply("Success", ("Message", "Originate successfully queued"))
        self.pbx.start_call(spec, action_id=msg.action_id or "")

    def _core_show_channels(self, s: _Session, aid: str) -> None:
        s.send(
            [
                ("Response", "Success"),
                ("ActionID", aid),
                ("EventList", "start"),
                ("Message", "Channels will follow"),
            ]
        )
        now = self.pbx.now()
        channels = list(self.pbx.channels.values())
        for ch in channels:
            s.send([("Event", "CoreShowChannel"), *core_show_channel_fields(ch, aid, now)])
        s.send(
            [
                ("Event", "CoreShowChannelsComplete"),
                ("ActionID", aid),
                ("EventList", "Complete"),
                ("ListItems", str(len(channels))),
            ]
        )


async def serve_simulator(
    host: str,
    port: int,
    script_path: str | Path | None,
    seed: int,
    username: str,
    secret: str,
    *,
    speed: float = 1.0,
) -> None:
    """Run the simulator until cancelled (``switchboard simulate-pbx``)."""
    script = load_script(script_path) if script_path is not None else None
    server = SimulatorServer(
        host, port, username=username, secret=secret, seed=seed, speed=speed, script=script
    )
    await server.start()
    log.info("PBX simulator (AMI) listening on %s:%d", host, server.port)
    try:
        await asyncio.Event().wait()
    finally:
        await server.stop()
