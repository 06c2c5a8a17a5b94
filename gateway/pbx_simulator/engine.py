"""The simulated PBX: plays call scenarios as the AMI events a real Asterisk emits."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
import uuid
from collections.abc import Callable

from gateway.pbx_simulator.call import CallBase
from gateway.pbx_simulator.model import (
    Channel,
    Fields,
)
from gateway.pbx_simulator.players import CallRun
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
        self._owner: dict[str, CallBase] = {}
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

    def new_channel(self, call: CallBase, peer: str, context: str, exten: str) -> Channel:
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
