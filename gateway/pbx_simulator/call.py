"""One simulated call's plumbing: its clock, channels, bridges, events and CDR legs."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Protocol

from gateway.pbx_simulator.model import (
    Bridge,
    CdrRecord,
    Channel,
    Fields,
    bridge_fields,
    channel_fields,
    hangup_fields,
)
from gateway.pbx_simulator.scenario import CallSpec


class Pbx(Protocol):
    """What a call needs of the PBX that plays it (the engine's `Pbx` is one)."""

    speed: float
    operator_context: str
    trunk: str
    trunk_context: str
    cdr_linkedid: bool
    rng: random.Random

    # Sends one event (name, fields, privilege) to the connected clients.
    emit: Callable[[str, Fields, str], None]

    def now(self) -> float:
        """The simulated time, epoch seconds."""

    def new_channel(self, call: CallBase, peer: str, context: str, exten: str) -> Channel:
        """A new channel of `call`, announced with Newchannel."""

    def new_bridge_id(self) -> str:
        """A fresh bridge id."""

    def forget(self, ch: Channel) -> None:
        """Drop a hung-up channel from the live list."""


class CallBase:
    """One call being played; ``t`` is its own simulated clock (epoch seconds)."""

    def __init__(self, pbx: Pbx, spec: CallSpec, action_id: str | None) -> None:
        """Bind the call to the PBX; nothing is emitted before ``run()``."""
        self.pbx = pbx
        self.spec = spec
        self.action_id = action_id
        self.t = 0.0
        self.linkedid = ""
        self.live: list[Channel] = []
        self.cdrs: list[CdrRecord] = []
        self._hangup: asyncio.Future[Channel] | None = None

    # -- plumbing ------------------------------------------------------------
    def emit(self, name: str, fields: Fields, privilege: str = "call,all") -> None:
        """Send one event to the connected clients."""
        self.pbx.emit(name, fields, privilege)

    def request_hangup(self, ch: Channel) -> None:
        """Ask the running scenario to hang up, starting from ``ch``."""
        if self._hangup is not None and not self._hangup.done():
            self._hangup.set_result(ch)

    async def wait(self, seconds: float) -> Channel | None:
        """Let ``seconds`` of simulated time pass; returns a channel if hung up early."""
        assert self._hangup is not None
        if self._hangup.done():
            return self._hangup.result()
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            ch = await asyncio.wait_for(asyncio.shield(self._hangup), seconds / self.pbx.speed)
        except TimeoutError:
            self.t += seconds  # nominal, so CDR durations are exact whatever the jitter
            return None
        self.t += min(seconds, (loop.time() - started) * self.pbx.speed)
        return ch

    def channel(self, peer: str, context: str, exten: str) -> Channel:
        """Create a live channel and announce it (Newchannel)."""
        ch = self.pbx.new_channel(self, peer, context, exten)
        self.live.append(ch)
        return ch

    def set_state(self, ch: Channel, state: int) -> None:
        """Change a channel's state (Newstate); Up also stamps its answer time."""
        ch.state = state
        if state == 6 and ch.answered_at is None:
            ch.answered_at = self.t
        self.emit("Newstate", channel_fields(ch))

    def dial(self, event: str, src: Channel, dst: Channel, extra: Fields) -> None:
        """DialBegin / DialState / DialEnd between two channels."""
        self.emit(event, [*channel_fields(src), *channel_fields(dst, "Dest"), *extra])

    def enter(self, br: Bridge, ch: Channel) -> None:
        """A channel joins a bridge (BridgeEnter)."""
        br.members.append(ch)
        ch.bridge = br
        self.emit("BridgeEnter", [*bridge_fields(br), *channel_fields(ch)])

    def leave(self, ch: Channel, destroy: bool = True) -> None:
        """A channel leaves its bridge; an emptied bridge is destroyed."""
        br = ch.bridge
        if br is None:
            return
        br.members.remove(ch)
        ch.bridge = None
        self.emit("BridgeLeave", [*bridge_fields(br), *channel_fields(ch)])
        if destroy and not br.members:
            self.emit("BridgeDestroy", bridge_fields(br))

    def new_bridge(self) -> Bridge:
        """Create a basic bridge (BridgeCreate)."""
        br = Bridge(self.pbx.new_bridge_id())
        self.emit("BridgeCreate", bridge_fields(br))
        return br

    def hangup(self, ch: Channel, cause: int = 16) -> None:
        """Leave any bridge, then Hangup, then forget the channel."""
        if ch not in self.live:
            return
        self.leave(ch)
        self.emit("Hangup", hangup_fields(ch, cause))
        self.live.remove(ch)
        self.pbx.forget(ch)

    def teardown(self, first: Channel) -> None:
        """Normal clearing of every live channel, starting with the one hanging up."""
        self.emit("HangupRequest", hangup_fields(first, 16))
        for ch in [first, *(c for c in self.live if c is not first)]:
            self.hangup(ch, 16)

    def leg(self, src: Channel, dst: Channel, disposition: str, answer: float | None) -> None:
        """Remember a Dial leg for the CDRs emitted when the call ends."""
        data = ",".join(["&".join(f"PJSIP/{e}" for e in self.spec.extensions), "20"])
        self.cdrs.append(
            CdrRecord(
                source=src.caller_num,
                destination=dst.exten,
                destination_context=src.context,
                caller_id=f'"{src.caller_name}" <{src.caller_num}>',
                channel=src,
                destination_channel=dst,
                last_app="Dial",
                last_data=data,
                start=src.created_at,
                answer=answer,
                end=self.t,
                disposition=disposition,
            )
        )

    # -- steps shared by the scenarios ---------------------------------------
    def _operator(self, ext: str, caller: Channel) -> Channel:
        op = self.channel(ext, self.pbx.operator_context, ext)
        op.caller_num, op.caller_name = ext, ext
        op.connected_num, op.connected_name = caller.caller_num, caller.caller_name
        self.emit("Newchannel", channel_fields(op))
        return op

    def _ring(self, src: Channel, targets: list[Channel]) -> None:
        for op in targets:
            self.dial("DialBegin", src, op, [("DialString", op.exten)])
        for op in targets:
            self.set_state(op, 5)
        for op in targets:
            self.dial("DialState", src, op, [("DialStatus", "RINGING")])

    def _finish(self, early: Channel | None, caller: Channel, agent: Channel) -> None:
        first = early or (caller if self.spec.hangup_by == "caller" else agent)
        self.teardown(first)

    def _originate_response(self, ch: Channel, response: str, reason: str) -> None:
        if self.action_id is None:
            return
        self.emit(
            "OriginateResponse",
            [
                ("ActionID", self.action_id),
                ("Response", response),
                ("Channel", ch.name),
                ("Context", self.pbx.operator_context),
                ("Exten", self.spec.number or ""),
                ("Reason", reason),
                ("Uniqueid", ch.uniqueid),
                ("CallerIDNum", ch.caller_num),
                ("CallerIDName", ch.caller_name),
            ],
        )
