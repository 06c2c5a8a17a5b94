"""The call scenarios (inbound, busy, missed, transfers, outbound) played as AMI events."""

from __future__ import annotations

import asyncio

from gateway.pbx_simulator.call import CallBase
from gateway.pbx_simulator.model import (
    Bridge,
    Channel,
    bridge_fields,
    channel_fields,
    hangup_fields,
)


class CallRun(CallBase):
    """A call played from start to CDR according to its ``CallSpec``."""

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
            await self._busy(caller, ops)
            return
        self._ring(caller, ops)
        early = await self.wait(spec.ring_seconds)
        if spec.kind == "missed" or early is not None:
            self._not_answered(caller, ops, early)
            return
        await self._answered(caller, ops)

    async def _busy(self, caller: Channel, ops: list[Channel]) -> None:
        for op in ops:
            self.dial("DialBegin", caller, op, [("DialString", op.exten)])
        await self.wait(self.spec.ring_seconds)
        for op in ops:
            self.dial("DialEnd", caller, op, [("DialStatus", "BUSY")])
            self.hangup(op, 17)
            self.leg(caller, op, "BUSY", None)
        self.hangup(caller, 17)

    def _not_answered(self, caller: Channel, ops: list[Channel], early: Channel | None) -> None:
        """Missed, or hung up while ringing (by the caller, or an operator declining)."""
        abandoned = early is caller or (early is None and self.spec.hangup_by == "caller")
        if abandoned:
            self.emit("HangupRequest", hangup_fields(caller, 16))
        for op in ops:
            status = "CANCEL" if abandoned or op is early else "NOANSWER"
            self.dial("DialEnd", caller, op, [("DialStatus", status)])
            self.hangup(op, 16 if op is early else 0)
            self.leg(caller, op, "NO ANSWER", None)
        self.hangup(caller, 16)

    async def _answered(self, caller: Channel, ops: list[Channel]) -> None:
        spec = self.spec
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
