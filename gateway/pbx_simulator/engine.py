"""The simulated PBX: plays call scenarios as the AMI events a real Asterisk emits."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
import uuid
from collections.abc import Callable

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

EmitFn = Callable[[str, Fields, str], None]
"""Receives (event name, headers after Privilege, privilege)."""


class Pbx:
    """Channel registry, id allocation and the clock shared by all simulated calls."""

    def __init__(
        self,
        emit: EmitFn,
        *,
        speed: float = 1.0,
        seed: int = 0,
        start_epoch: float | None = None,
        trunk: str = "trunk",
        trunk_context: str = "from-trunk",
        operator_context: str = "from-internal",
        cdr_linkedid: bool = True,
    ) -> None:
        """Set up an idle PBX; ``speed`` > 1 makes simulated time run faster."""
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.emit = emit
        self.speed = speed
        self.rng = random.Random(seed)
        self.start_epoch = float(int(start_epoch if start_epoch is not None else time.time()))
        self.trunk = trunk
        self.trunk_context = trunk_context
        self.operator_context = operator_context
        self.cdr_linkedid = cdr_linkedid
        self.channels: dict[str, Channel] = {}
        self._owner: dict[str, CallRun] = {}
        self._seq = itertools.count(1)
        self._uid = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()
        self._t0: float | None = None

    def now(self) -> float:
        """Current simulated epoch time."""
        loop_now = asyncio.get_running_loop().time()
        if self._t0 is None:
            self._t0 = loop_now
        return self.start_epoch + (loop_now - self._t0) * self.speed

    def start_call(self, spec: CallSpec, action_id: str | None = None) -> asyncio.Task[None]:
        """Play ``spec`` (after its ``start_at``) in a background task."""
        call = CallRun(self, spec.validate(), action_id)
        task = asyncio.get_running_loop().create_task(call.run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def wait_idle(self) -> None:
        """Wait until every call started so far has finished."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def request_hangup(self, channel_name: str) -> bool:
        """Hang up a live channel as the Hangup action does; False if unknown."""
        call = self._owner.get(channel_name)
        if call is None:
            return False
        call.request_hangup(self.channels[channel_name])
        return True

    async def close(self) -> None:
        """Stop every call in progress."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def new_channel(self, call: CallRun, peer: str, context: str, exten: str) -> Channel:
        """Create and register a ``PJSIP/<peer>-<seq>`` channel of ``call``."""
        uid = f"{int(call.t)}.{next(self._uid)}"
        ch = Channel(
            name=f"PJSIP/{peer}-{next(self._seq):08x}",
            uniqueid=uid,
            linkedid=call.linkedid or uid,  # the oldest channel's id names the call
            context=context,
            exten=exten,
            caller_num="<unknown>",
            caller_name="<unknown>",
            created_at=call.t,
        )
        call.linkedid = ch.linkedid
        self.channels[ch.name] = ch
        self._owner[ch.name] = call
        return ch

    def forget(self, ch: Channel) -> None:
        """Drop a hung-up channel from the registry."""
        self.channels.pop(ch.name, None)
        self._owner.pop(ch.name, None)

    def new_bridge_id(self) -> str:
        """A deterministic (seeded) UUID4-looking bridge id."""
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))


class CallRun:
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

    # -- scenarios -----------------------------------------------------------
    async def run(self) -> None:
        """Play the call from start to CDR."""
        self._hangup = asyncio.get_running_loop().create_future()
        await asyncio.sleep(self.spec.start_at / self.pbx.speed)
        self.t = self.pbx.now()
        try:
            if self.spec.kind == "outbound":
                await self._outbound()
            else:
                await self._inbound()
            for rec in self.cdrs:
                self.emit("Cdr", rec.fields(self.pbx.cdr_linkedid), "cdr,all")
        finally:
            for ch in self.live:
                self.pbx.forget(ch)

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

    async def _inbound(self) -> None:
        spec = self.spec
        caller = self.channel(self.pbx.trunk, self.pbx.trunk_context, spec.did)
        caller.caller_num, caller.caller_name = spec.caller, spec.caller_name or "<unknown>"
        caller.state = 4
        self.emit("Newchannel", channel_fields(caller))
        if spec.answer_first:
            self.set_state(caller, 6)
        caller.application, caller.application_data = "Dial", ",".join(spec.extensions)
        ops = [self._operator(ext, caller) for ext in spec.extensions]
        if spec.kind == "busy":
            for op in ops:
                self.dial("DialBegin", caller, op, [("DialString", op.exten)])
            await self.wait(spec.ring_seconds)
            for op in ops:
                self.dial("DialEnd", caller, op, [("DialStatus", "BUSY")])
                self.hangup(op, 17)
                self.leg(caller, op, "BUSY", None)
            self.hangup(caller, 17)
            return
        self._ring(caller, ops)
        early = await self.wait(spec.ring_seconds)
        if spec.kind == "missed" or early is not None:
            abandoned = early is caller or (early is None and spec.hangup_by == "caller")
            if abandoned:
                self.emit("HangupRequest", hangup_fields(caller, 16))
            for op in ops:
                status = "CANCEL" if abandoned or op is early else "NOANSWER"
                self.dial("DialEnd", caller, op, [("DialStatus", status)])
                self.hangup(op, 16 if op is early else 0)
                self.leg(caller, op, "NO ANSWER", None)
            self.hangup(caller, 16)
            return
        name = spec.answered_by or self.pbx.rng.choice(spec.extensions)
        agent = ops[spec.extensions.index(name)]
        self.set_state(agent, 6)
        for op in ops:
            if op is not agent:
                self.dial("DialEnd", caller, op, [("DialStatus", "CANCEL")])
                self.hangup(op, 26)
                self.leg(caller, op, "NO ANSWER", None)
        self.dial("DialEnd", caller, agent, [("DialStatus", "ANSWER")])
        if not spec.answer_first:
            self.set_state(caller, 6)
        bridge = self.new_bridge()
        self.enter(bridge, agent)
        self.enter(bridge, caller)
        early = await self.wait(spec.talk_seconds)
        if early is None and spec.kind == "blind_transfer":
            await self._blind_transfer(caller, agent, bridge)
        elif early is None and spec.kind == "attended_transfer":
            await self._attended_transfer(caller, agent, bridge)
        else:
            self.leg(caller, agent, "ANSWERED", caller.answered_at)
            self._finish(early, caller, agent)

    def _finish(self, early: Channel | None, caller: Channel, agent: Channel) -> None:
        first = early or (caller if self.spec.hangup_by == "caller" else agent)
        self.teardown(first)

    async def _blind_transfer(self, caller: Channel, agent: Channel, bridge: Bridge) -> None:
        target_ext = self.spec.transfer_to or ""
        self.emit(
            "BlindTransfer",
            [
                ("Result", "Success"),
                *channel_fields(agent, "Transferer"),
                *channel_fields(caller, "Transferee"),
                *bridge_fields(bridge),
                ("IsExternal", "Yes"),
                ("Context", self.pbx.operator_context),
                ("Extension", target_ext),
            ],
        )
        self.leg(caller, agent, "ANSWERED", caller.answered_at)
        self.leave(caller)
        self.hangup(agent, 16)
        target = self._operator(target_ext, caller)
        self._ring(caller, [target])
        await self.wait(self.spec.ring_seconds)
        self.set_state(target, 6)
        self.dial("DialEnd", caller, target, [("DialStatus", "ANSWER")])
        second = self.new_bridge()
        self.enter(second, target)
        self.enter(second, caller)
        early = await self.wait(self.spec.talk_after_transfer)
        self.leg(caller, target, "ANSWERED", caller.answered_at)
        self._finish(early, caller, target)

    async def _attended_transfer(self, caller: Channel, agent: Channel, bridge: Bridge) -> None:
        self.emit("Hold", channel_fields(agent))
        target = self._operator(self.spec.transfer_to or "", agent)
        self._ring(agent, [target])
        await self.wait(self.spec.ring_seconds)
        self.set_state(target, 6)
        self.dial("DialEnd", agent, target, [("DialStatus", "ANSWER")])
        consult = self.new_bridge()
        self.enter(consult, target)
        self.leave(agent)
        self.enter(consult, agent)
        await self.wait(self.spec.consult_seconds)
        # The operator hanging up during the consultation completes the transfer.
        self.emit("HangupRequest", hangup_fields(agent, 16))
        self.leave(agent, destroy=False)
        merge = [*bridge_fields(bridge, "To"), *bridge_fields(consult, "From")]
        self.emit("BridgeMerge", merge)
        self.leave(target, destroy=False)
        self.enter(bridge, target)
        self.emit(
            "AttendedTransfer",
            [
                ("Result", "Success"),
                *channel_fields(agent, "OrigTransferer"),
                *bridge_fields(bridge, "Orig"),
                *channel_fields(agent, "SecondTransferer"),
                *bridge_fields(consult, "Second"),
                *channel_fields(caller, "Transferee"),
                *channel_fields(target, "TransferTarget"),
                ("IsExternal", "No"),
                ("DestType", "Bridge"),
                ("DestBridgeUniqueid", bridge.uniqueid),
            ],
        )
        self.emit("BridgeDestroy", bridge_fields(consult))
        self.leg(caller, agent, "ANSWERED", caller.answered_at)
        self.leg(agent, target, "ANSWERED", target.answered_at)
        self.hangup(agent, 16)
        early = await self.wait(self.spec.talk_after_transfer)
        self.leg(caller, target, "ANSWERED", caller.answered_at)
        self._finish(early, caller, target)

    async def _outbound(self) -> None:
        spec = self.spec
        ext = spec.extensions[0]
        number = spec.number or ""
        agent = self.channel(ext, self.pbx.operator_context, ext)
        agent.caller_num, agent.caller_name = number, number
        agent.connected_num, agent.connected_name = number, number
        self.emit("Newchannel", channel_fields(agent))
        self.set_state(agent, 5)
        early = await self.wait(spec.ring_seconds)
        if early is not None:
            self._originate_response(agent, "Failure", "0")
            self.hangup(agent, 19)
            return
        self.set_state(agent, 6)
        self._originate_response(agent, "Success", "4")
        if not number:  # Application/Data originate: only the operator's phone
            self._finish(await self.wait(spec.talk_seconds), agent, agent)
            return
        agent.application, agent.application_data = "Dial", f"PJSIP/{number}@{self.pbx.trunk}"
        customer = self.channel(self.pbx.trunk, self.pbx.trunk_context, number)
        customer.caller_num, customer.caller_name = number, "<unknown>"
        customer.connected_num, customer.connected_name = ext, ext
        self.emit("Newchannel", channel_fields(customer))
        self.dial("DialBegin", agent, customer, [("DialString", f"{number}@{self.pbx.trunk}")])
        self.set_state(customer, 5)
        self.dial("DialState", agent, customer, [("DialStatus", "RINGING")])
        early = await self.wait(spec.customer_ring_seconds)
        if early is not None or not spec.customer_answers:
            status = "CANCEL" if early is agent else "NOANSWER"
            self.dial("DialEnd", agent, customer, [("DialStatus", status)])
            self.hangup(customer, 0)
            self.hangup(agent, 16)
            self.leg(agent, customer, "NO ANSWER", None)
            return
        self.set_state(customer, 6)
        self.dial("DialEnd", agent, customer, [("DialStatus", "ANSWER")])
        bridge = self.new_bridge()
        self.enter(bridge, customer)
        self.enter(bridge, agent)
        early = await self.wait(spec.talk_seconds)
        self.leg(agent, customer, "ANSWERED", agent.answered_at)
        # For outbound calls the "caller" side is the customer.
        self._finish(early, customer, agent)

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
