"""The AMI client's read gate (back-pressure, issue 14 item 8): while the gate holds the
reader nothing is read and nothing is lost, and the keepalive does not take the Pong that
waits behind the held events for a dead peer."""

from __future__ import annotations

import asyncio

from adapters.ami import AmiClient, AmiConfig, AmiState
from adapters.ami.protocol import AmiMessage
from gateway.pbx_simulator import SimulatorServer


async def test_a_held_reader_loses_nothing_and_keeps_its_session() -> None:
    holding = asyncio.Event()
    release = asyncio.Event()

    async def held() -> None:
        holding.set()
        await release.wait()

    hold = False

    def gate() -> asyncio.Future[None] | None:
        return asyncio.ensure_future(held()) if hold else None

    async with SimulatorServer("127.0.0.1", 0, username="gw", secret="pw") as pbx:
        config = AmiConfig("127.0.0.1", pbx.port, "gw", "pw", ping_interval=0.2, ping_timeout=0.3)
        client = AmiClient(config, read_gate=gate)
        seen: list[AmiMessage] = []
        client.on("Newchannel", seen.append)
        await client.connect()
        try:
            hold = True
            pbx.inject_raw(b"Event: Newchannel\r\nUniqueid: 0\r\n\r\n")
            await asyncio.wait_for(holding.wait(), 5)
            hold = False
            frames = [f"Event: Newchannel\r\nUniqueid: {i}\r\n\r\n" for i in range(1, 200)]
            pbx.inject_raw("".join(frames).encode())
            await asyncio.sleep(1.5)  # several keepalive deadlines while held
            assert client.state is AmiState.CONNECTED and client.stats.reconnects == 0
            release.set()
            for _ in range(100):
                if len(seen) == 200:
                    break
                await asyncio.sleep(0.05)
            assert [m.get("Uniqueid") for m in seen] == [str(i) for i in range(200)]
            assert client.state is AmiState.CONNECTED and client.stats.reconnects == 0
        finally:
            await client.close()
