"""The AMI client against the built-in PBX simulator over real TCP on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from adapters.ami import (
    AmiAuthError,
    AmiClient,
    AmiConfig,
    AmiMessage,
    AmiParser,
    AmiState,
)
from gateway.pbx_simulator import CallSpec, ScriptError, SimulatorServer, parse_script

TRACES = Path(__file__).resolve().parents[1] / "fixtures" / "ami"
SPEED = 200.0  # 1 simulated second = 5 ms
EPOCH = 1_795_461_242


@pytest.fixture
async def sim() -> AsyncIterator[SimulatorServer]:
    server = SimulatorServer(speed=SPEED, seed=1, start_epoch=EPOCH)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def make_client(sim: SimulatorServer) -> AsyncIterator[Callable[..., AmiClient]]:
    clients: list[AmiClient] = []

    def make(**overrides: object) -> AmiClient:
        cfg: dict[str, object] = {
            "host": "127.0.0.1",
            "port": sim.port,
            "username": "gateway",
            "secret": "changeme",
            "ping_interval": 0,
            "backoff_initial": 0.01,
            "backoff_max": 0.05,
        }
        cfg.update(overrides)
        client = AmiClient(AmiConfig(**cfg))  # type: ignore[arg-type]
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


async def eventually(check: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


# -- login, ping, lists --------------------------------------------------------


async def test_md5_login(sim: SimulatorServer, make_client: Callable[..., AmiClient]) -> None:
    client = make_client()
    await client.connect()
    assert client.state is AmiState.CONNECTED
    assert client.banner == "Asterisk Call Manager/11.0.0"
    actions = [m.get("Action") for m in sim.actions_seen]
    assert actions == ["Challenge", "Login"]
    login = sim.actions_seen[1]
    assert login.get("AuthType") == "MD5" and login.get("Key") and login.get("Secret") is None


async def test_plain_login(sim: SimulatorServer, make_client: Callable[..., AmiClient]) -> None:
    client = make_client(auth="plain")
    await client.connect()
    assert client.state is AmiState.CONNECTED
    assert [m.get("Action") for m in sim.actions_seen] == ["Login"]
    assert sim.actions_seen[0].get("Secret") == "changeme"


@pytest.mark.parametrize("auth", ["md5", "plain"])
async def test_failed_login_raises_auth_error(
    sim: SimulatorServer, make_client: Callable[..., AmiClient], auth: str
) -> None:
    client = make_client(auth=auth, secret="wrongsecret")
    with pytest.raises(AmiAuthError):
        await client.connect()
    assert client.state is AmiState.DISCONNECTED
    await eventually(lambda: sim.client_count == 0)  # the server hung up, as Asterisk does


async def test_ping(make_client: Callable[..., AmiClient]) -> None:
    client = make_client()
    await client.connect()
    rtt = await client.ping()
    assert 0 <= rtt < 1
    reply = await client.send_action({"Action": "Ping"})
    assert reply.get("Ping") == "Pong" and reply.action_id


async def test_core_show_channels_idle_and_during_a_call(
    sim: SimulatorServer, make_client: Callable[..., AmiClient]
) -> None:
    client = make_client()
    await client.connect()
    assert await client.core_show_channels() == []
    bridged: list[AmiMessage] = []
    client.on("BridgeEnter", bridged.append)
    sim.start_call(CallSpec(ring_seconds=1, talk_seconds=60))
    await eventually(lambda: len(bridged) == 2)
    items = await client.core_show_channels()
    assert sorted(m.get("Channel", "")[:10] for m in items) == ["PJSIP/201-", "PJSIP/trun"]
    assert all(m.name == "CoreShowChannel" for m in items)
    assert {m.get("BridgeId") for m in items} == {bridged[0].get("BridgeUniqueid")}
    assert len({m.get("Linkedid") for m in items}) == 1


async def test_originate_response_is_correlated_by_action_id(
    make_client: Callable[..., AmiClient],
) -> None:
    client = make_client()
    await client.connect()
    first = await client.originate("PJSIP/201", context="from-internal", exten="0501234567")
    second = await client.originate("PJSIP/202", context="from-internal", exten="0671112233")
    assert first != second
    r2 = await client.originate_result(second, timeout=3)
    r1 = await client.originate_result(first, timeout=3)
    assert (r1.action_id, r1.get("Response"), r1.get("Reason")) == (first, "Success", "4")
    assert r1.get("Channel", "").startswith("PJSIP/201-")
    assert r2.action_id == second and r2.get("Exten") == "0671112233"


async def test_unknown_action_raises_action_error(make_client: Callable[..., AmiClient]) -> None:
    from adapters.ami import AmiActionError

    client = make_client()
    await client.connect()
    with pytest.raises(AmiActionError, match="Invalid/unknown command"):
        await client.send_action({"Action": "NoSuchThing"})
    with pytest.raises(AmiActionError, match="No such channel"):
        await client.send_action({"Action": "Hangup", "Channel": "PJSIP/999-00000000"})


# -- events, reconnect, keepalive ----------------------------------------------


async def test_event_dispatch_sync_and_async(
    sim: SimulatorServer, make_client: Callable[..., AmiClient]
) -> None:
    client = make_client()
    hangups: list[str] = []
    cdrs: list[AmiMessage] = []

    async def on_cdr(msg: AmiMessage) -> None:
        await asyncio.sleep(0)
        cdrs.append(msg)

    client.on("Hangup", lambda m: hangups.append(m.get("Channel") or ""))
    client.on("Cdr", on_cdr)
    await client.connect()
    await sim.start_call(CallSpec(ring_seconds=1, talk_seconds=2))
    await eventually(lambda: len(cdrs) == 1)
    assert len(hangups) == 2
    assert cdrs[0].get("Disposition") == "ANSWERED"
    assert client.stats.events_received >= 2 + 1
    assert client.stats.events_filtered > 0  # Newchannel & co: nobody listens
    assert client.stats.last_event_at is not None


async def test_reconnect_after_the_server_drops_connections(
    sim: SimulatorServer, make_client: Callable[..., AmiClient]
) -> None:
    resyncs: list[int] = []

    async def on_connect(c: AmiClient) -> None:
        resyncs.append(len(await c.core_show_channels()))

    client = make_client()
    client.add_connect_hook(on_connect)
    await client.connect()
    assert resyncs == [0]
    bridged: list[AmiMessage] = []
    client.on("BridgeEnter", bridged.append)
    sim.start_call(CallSpec(ring_seconds=1, talk_seconds=60))
    await eventually(lambda: len(bridged) == 2)
    assert await sim.drop_connections() == 1
    await eventually(lambda: len(resyncs) == 2)
    assert resyncs[1] == 2  # the live call is seen again through the resync
    assert client.state is AmiState.CONNECTED
    assert client.stats.reconnects == 1
    await client.ping()


async def test_keepalive_detects_a_silent_peer(
    sim: SimulatorServer, make_client: Callable[..., AmiClient]
) -> None:
    logins: list[int] = []

    async def on_connect(_: AmiClient) -> None:
        logins.append(1)

    client = make_client(ping_interval=0.05, ping_timeout=0.1, action_timeout=0.3)
    client.add_connect_hook(on_connect)
    await client.connect()
    sim.frozen = True  # TCP stays open, nothing is answered
    await eventually(lambda: client.state is not AmiState.CONNECTED)
    sim.frozen = False
    await eventually(lambda: len(logins) == 2)
    assert client.stats.reconnects == 1


async def test_garbage_and_oversized_frames_are_skipped(
    sim: SimulatorServer, make_client: Callable[..., AmiClient]
) -> None:
    client = make_client(max_frame=4096)
    hangups: list[AmiMessage] = []
    client.on("Hangup", hangups.append)
    await client.connect()
    sim.inject_raw(b"this is not AMI at all\r\n\r\n")
    sim.inject_raw(b"Event: Huge\r\n" + b"X-Pad: " + b"x" * 10_000 + b"\r\n\r\n")
    await sim.start_call(CallSpec(ring_seconds=1, talk_seconds=1))
    await eventually(lambda: len(hangups) == 2)
    assert client.stats.frames_skipped == 2
    await client.ping()


async def test_every_logged_in_client_with_events_on_gets_events(
    sim: SimulatorServer, make_client: Callable[..., AmiClient]
) -> None:
    clients = [make_client(), make_client(auth="plain"), make_client(events=False)]
    counts = [Counter[str](), Counter[str](), Counter[str]()]
    for client, counter in zip(clients, counts, strict=True):
        client.on("*", lambda m, c=counter: c.update([m.name or ""]))
        await client.connect()
    await sim.start_call(CallSpec(ring_seconds=1, talk_seconds=1))
    await eventually(lambda: counts[0]["Cdr"] == 1 and counts[1]["Cdr"] == 1)
    assert counts[0] == counts[1]
    assert counts[2] == Counter()


async def test_close_logs_off(sim: SimulatorServer, make_client: Callable[..., AmiClient]) -> None:
    client = make_client()
    await client.connect()
    await client.close()
    assert client.state is AmiState.CLOSED
    assert sim.actions_seen[-1].get("Action") == "Logoff"
    await eventually(lambda: sim.client_count == 0)


# -- simulator fidelity --------------------------------------------------------

# Events the simulator emits for calls. It does not emit the Local-channel and
# dialplan noise of the recordings: VarSet, CEL, Newexten, DeviceStateChange,
# NewCallerid, NewConnectedLine, LocalBridge, SoftHangupRequest, DTMF*.
CALL_EVENTS = {
    "Newchannel", "Newstate", "DialBegin", "DialState", "DialEnd",
    "BridgeCreate", "BridgeEnter", "BridgeLeave", "BridgeDestroy", "Hangup",
}  # fmt: skip


def reduce_call(events: list[AmiMessage]) -> list[tuple[str, str, str, str]]:
    """Call-event names with channels replaced by roles in first-seen order.

    A recorded Local channel is two halves (``;1``/``;2``) where the simulator
    has one PJSIP channel, so halves are merged: the first Newchannel/Newstate
    of a logical channel counts, and its last Hangup (the channel is gone when
    both halves are). DialBegin/DialEnd without ``Channel`` come from the
    recording's Originate of the caller itself and are dropped.
    """
    roles: dict[str, str] = {}

    def role(name: str) -> str:
        if not name:
            return ""
        logical = name.rsplit(";", 1)[0]
        return roles.setdefault(logical, "ABCDEFGH"[len(roles)])

    seq: list[tuple[str, str, str, str]] = []
    for m in events:
        name = m.name or ""
        if name not in CALL_EVENTS or (name.startswith("Dial") and not m.get("Channel")):
            continue
        state = m.get("ChannelStateDesc") or "" if name == "Newstate" else ""
        key = (name, role(m.get("Channel") or ""), role(m.get("DestChannel") or ""), state)
        if name == "Hangup":
            seq = [k for k in seq if k != key]  # keep the last one
        elif name in ("Newchannel", "Newstate") and key in seq:
            continue
        seq.append(key)
    return seq


def trace_events(name: str) -> list[AmiMessage]:
    return [m for m in AmiParser().feed((TRACES / f"{name}.txt").read_bytes()) if m.is_event]


async def play(sim: SimulatorServer, client: AmiClient, spec: CallSpec) -> list[AmiMessage]:
    seen: list[AmiMessage] = []
    off = client.on("*", seen.append)
    await sim.start_call(spec)
    await asyncio.sleep(0.01)
    off()
    return seen


@pytest.fixture
async def client(make_client: Callable[..., AmiClient]) -> AmiClient:
    c = make_client()
    await c.connect()
    return c


async def test_bridged_inbound_call_follows_the_recorded_event_order(
    sim: SimulatorServer, client: AmiClient
) -> None:
    events = await play(sim, client, CallSpec(ring_seconds=3, talk_seconds=10))
    expected = reduce_call(trace_events("bridged_dial"))
    assert reduce_call(events) == expected
    assert expected[:3] == [
        ("Newchannel", "A", "", ""), ("Newstate", "A", "", "Up"), ("Newchannel", "B", "", ""),
    ]  # fmt: skip


async def test_caller_hangup_follows_the_recorded_event_order(
    sim: SimulatorServer, client: AmiClient
) -> None:
    events = await play(sim, client, CallSpec(hangup_by="caller"))
    assert reduce_call(events) == reduce_call(trace_events("bridged_caller_hangs_up"))


async def test_channels_ids_and_cdr_of_an_answered_call(
    sim: SimulatorServer, client: AmiClient
) -> None:
    spec = CallSpec(caller="+380501234567", ring_seconds=4, talk_seconds=25, answer_first=False)
    events = await play(sim, client, spec)
    chans = [m for m in events if m.name == "Newchannel"]
    assert chans[0].get("Channel", "").startswith("PJSIP/trunk-")
    assert chans[1].get("Channel", "").startswith("PJSIP/201-")
    assert chans[0].get("CallerIDNum") == "+380501234567"
    linked = {m.get("Linkedid") for m in events if m.get("Linkedid")}
    assert linked == {chans[0].get("Uniqueid")}  # the oldest channel names the call
    assert chans[0].get("Uniqueid", "").startswith(str(EPOCH))
    (cdr,) = [m for m in events if m.name == "Cdr"]
    assert (cdr.get("Duration"), cdr.get("BillableSeconds")) == ("29", "25")
    assert cdr.get("Disposition") == "ANSWERED"
    assert cdr.get("LinkedID") == chans[0].get("Uniqueid")
    assert cdr.get("DestinationChannel") == chans[1].get("Channel")


async def test_ring_group_cancels_the_others(sim: SimulatorServer, client: AmiClient) -> None:
    spec = CallSpec(extensions=("201", "202", "203"), answered_by="202", ring_seconds=2)
    events = await play(sim, client, spec)
    ends = {
        m.get("DestChannel", "")[:9]: m.get("DialStatus") for m in events if m.name == "DialEnd"
    }
    assert ends == {"PJSIP/201": "CANCEL", "PJSIP/202": "ANSWER", "PJSIP/203": "CANCEL"}
    causes = [m.get("Cause") for m in events if m.name == "Hangup"]
    assert causes.count("26") == 2  # answered elsewhere
    assert [m.get("Disposition") for m in events if m.name == "Cdr"].count("ANSWERED") == 1


@pytest.mark.parametrize(
    ("spec", "status", "disposition"),
    [
        (CallSpec(kind="missed", ring_seconds=8), "NOANSWER", "NO ANSWER"),
        (CallSpec(kind="missed", ring_seconds=8, hangup_by="caller"), "CANCEL", "NO ANSWER"),
        (CallSpec(kind="busy", ring_seconds=0), "BUSY", "BUSY"),
    ],
)
async def test_unanswered_calls(
    sim: SimulatorServer, client: AmiClient, spec: CallSpec, status: str, disposition: str
) -> None:
    events = await play(sim, client, spec)
    names = [m.name for m in events]
    assert "BridgeEnter" not in names
    assert [m.get("DialStatus") for m in events if m.name == "DialEnd"] == [status]
    assert [m.get("Disposition") for m in events if m.name == "Cdr"] == [disposition]
    assert names.count("Newchannel") == names.count("Hangup") == 2


async def test_blind_transfer(sim: SimulatorServer, client: AmiClient) -> None:
    spec = CallSpec(kind="blind_transfer", transfer_to="202", talk_seconds=4)
    events = await play(sim, client, spec)
    names = [m.name for m in events]
    assert names.count("BlindTransfer") == 1 and names.count("BridgeCreate") == 2
    xfer = events[names.index("BlindTransfer")]
    assert xfer.get("TransfererChannel", "").startswith("PJSIP/201-")
    assert xfer.get("Extension") == "202"
    assert len({m.get("Linkedid") for m in events if m.get("Linkedid")}) == 1
    assert names.count("Newchannel") == names.count("Hangup") == 3


async def test_attended_transfer(sim: SimulatorServer, client: AmiClient) -> None:
    spec = CallSpec(kind="attended_transfer", transfer_to="202")
    events = await play(sim, client, spec)
    names = [m.name for m in events]
    order = [n for n in names if n in {"Hold", "BridgeMerge", "AttendedTransfer"}]
    assert order == ["Hold", "BridgeMerge", "AttendedTransfer"]
    done = events[names.index("AttendedTransfer")]
    assert done.get("TransferTargetChannel", "").startswith("PJSIP/202-")
    assert done.get("DestBridgeUniqueid") == done.get("OrigBridgeUniqueid")
    assert names.count("BridgeDestroy") == 2 and names.count("Hangup") == 3


async def test_hangup_action_ends_the_call_from_that_side(
    sim: SimulatorServer, client: AmiClient
) -> None:
    seen: list[AmiMessage] = []
    client.on("*", seen.append)
    task = sim.start_call(CallSpec(ring_seconds=1, talk_seconds=600))
    await eventually(lambda: sum(m.name == "BridgeEnter" for m in seen) == 2)
    trunk = next(m.get("Channel") for m in seen if m.name == "Newchannel")
    reply = await client.send_action({"Action": "Hangup", "Channel": trunk or ""})
    assert reply.get("Message") == "Channel Hungup"
    await asyncio.wait_for(task, 1)
    first_hangup = next(m for m in seen if m.name == "Hangup")
    assert first_hangup.get("Channel") == trunk


async def test_thousand_concurrent_calls(sim: SimulatorServer, client: AmiClient) -> None:
    counts: Counter[str] = Counter()
    client.on("Newchannel", lambda m: counts.update(["new"]))
    client.on("Hangup", lambda m: counts.update(["hangup"]))
    client.on("Cdr", lambda m: counts.update(["cdr"]))
    for i in range(1000):
        sim.start_call(CallSpec(caller=f"+38050{i:07d}", ring_seconds=2, talk_seconds=5))
    await sim.wait_idle()
    await eventually(lambda: counts["cdr"] == 1000, timeout=10)
    assert counts["new"] == counts["hangup"] == 2000
    assert sim.pbx.channels == {}


async def test_same_seed_gives_the_same_events() -> None:
    async def run_once() -> list[list[tuple[str, str]]]:
        async with SimulatorServer(speed=SPEED, seed=5, start_epoch=EPOCH) as s:
            c = AmiClient(AmiConfig("127.0.0.1", s.port, "gateway", "changeme", ping_interval=0))
            await c.connect()
            events = await play(s, c, CallSpec(extensions=("201", "202"), kind="blind_transfer",
                                                transfer_to="203"))  # fmt: skip
            await c.close()
        return [m.headers for m in events if m.name not in ("FullyBooted", "SuccessfulAuth")]

    assert await run_once() == await run_once()


def test_script_parsing_and_errors() -> None:
    script = parse_script(
        """
calls:
  - {kind: answered, caller: "+380501234567", extensions: [201, 202], ring_seconds: 2}
  - {kind: missed, caller: "0671112233", extensions: 203, start_at: 5}
originate: {ring_seconds: 1, talk_seconds: 30}
"""
    )
    assert [c.kind for c in script.calls] == ["answered", "missed"]
    assert script.calls[0].extensions == ("201", "202")
    assert script.calls[1].extensions == ("203",) and script.calls[1].start_at == 5
    assert script.originate.talk_seconds == 30
    assert parse_script("- {kind: busy}").calls[0].kind == "busy"
    for bad in ("- {kind: teleport}", "- {colour: red}", "- {kind: blind_transfer}", "{calls: 3}"):
        with pytest.raises(ScriptError):
            parse_script(bad)


async def test_scripted_calls_start_with_the_server() -> None:
    script = parse_script("- {kind: answered, ring_seconds: 1, talk_seconds: 1, start_at: 1}")
    async with SimulatorServer(speed=SPEED, script=script) as s:
        c = AmiClient(AmiConfig("127.0.0.1", s.port, "gateway", "changeme", ping_interval=0))
        cdrs: list[AmiMessage] = []
        c.on("Cdr", cdrs.append)
        await c.connect()
        await eventually(lambda: len(cdrs) == 1)
        await c.close()
