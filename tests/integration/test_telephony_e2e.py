"""The gateway against the built-in PBX simulator over real TCP (AMI), end to end:
ring → screen-pop on the operator's socket → answer → hang-up → record → task."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp import ClientWebSocketResponse

from gateway.core.clock import SystemClock
from gateway.core.db.engine import Database
from gateway.pbx_simulator import CallSpec, SimulatorServer
from tests.support.agents import add_agent
from tests.support.auth import ADMIN_TOKEN, OPERATOR_AGENT, OPERATOR_TOKEN, bearer
from tests.support.factories import make_customer, make_task
from tests.support.pbx import health_ami, pbx, pbx_gateway, wait_for
from tests.support.telephony import OLENA, Client, ended_calls

__all__ = ["health_ami", "pbx", "pbx_gateway", "wait_for"]  # fixtures, and helpers reused


async def operator_socket(client: Client, extension: str) -> ClientWebSocketResponse:
    ticket = await client.post("/api/ws-tickets", headers=bearer(OPERATOR_TOKEN))
    socket = await client.ws_connect(
        f"/ws/agents/{extension}?ticket={(await ticket.json())['ticket']}"
    )
    assert (await socket.receive_json(timeout=5))["type"] == "hello"
    return socket


async def next_message(socket: ClientWebSocketResponse, kind: str) -> dict[str, Any]:
    while True:
        message: dict[str, Any] = await socket.receive_json(timeout=10)
        if message["type"] == kind:
            return message


async def test_pop_answer_hangup_record_and_a_task_closed_only_by_the_long_call(
    gateway: Client, database: Database, pbx: SimulatorServer
) -> None:
    now = SystemClock().now()
    customer = await make_customer(database, now, "C-1", [OLENA], name="Олена Коваль")
    await add_agent(database, now, OPERATOR_AGENT, ["201"])
    task = await make_task(database, customer_id=customer, created_at=now, assignee=OPERATOR_AGENT)
    socket = await operator_socket(gateway, "201")

    pbx.start_call(CallSpec(caller=OLENA, extensions=("201",), ring_seconds=2, talk_seconds=10))
    pop = await next_message(socket, "screen_pop")
    assert pop["match"] == "exact" and pop["caller"] == OLENA
    assert pop["customer"]["name"] == "Олена Коваль"
    assert [t["id"] for t in pop["open_tasks"]] == [task]
    assert (await next_message(socket, "call_update"))["state"] == "answered"
    ended = await next_message(socket, "call_update")
    assert ended["state"] == "ended" and 9 <= ended["talk_seconds"] <= 11
    short_call = ended["call_id"]

    pbx.start_call(CallSpec(caller=OLENA, extensions=("201",), ring_seconds=1, talk_seconds=25))
    await next_message(socket, "screen_pop")
    await next_message(socket, "call_update")
    long_call = (await next_message(socket, "call_update"))["call_id"]
    await socket.close()

    records = {call["id"]: call for call in await ended_calls(gateway, 2)}
    assert records[long_call]["customer_id"] == customer
    assert records[long_call]["extension"] == "201"
    assert records[long_call]["disposition"] == "answered"
    assert 24 <= records[long_call]["talk_seconds"] <= 26

    refused = await gateway.post(
        f"/api/tasks/{task}/complete", json={"call_id": short_call}, headers=bearer(OPERATOR_TOKEN)
    )
    assert refused.status == 409
    assert (await refused.json())["type"].endswith("call-too-short")
    done = await gateway.post(
        f"/api/tasks/{task}/complete", json={"call_id": long_call}, headers=bearer(OPERATOR_TOKEN)
    )
    assert done.status == 200 and (await done.json())["status"] == "done"


async def test_queue_call_pops_both_operators_and_closes_the_other_pop(
    gateway: Client, database: Database, pbx: SimulatorServer
) -> None:
    now = SystemClock().now()
    await make_customer(database, now, "C-1", [OLENA])
    sockets = {}
    for extension in ("201", "202"):
        sockets[extension] = await gateway.ws_connect(
            f"/ws/agents/{extension}", headers=bearer(ADMIN_TOKEN)
        )
        await sockets[extension].receive_json(timeout=5)
    pbx.start_call(
        CallSpec(caller=OLENA, extensions=("201", "202"), answered_by="202", talk_seconds=5)
    )
    for extension in ("201", "202"):
        assert (await next_message(sockets[extension], "screen_pop"))["match"] == "exact"
    assert (await next_message(sockets["201"], "call_update"))["state"] == "answered_elsewhere"
    assert (await next_message(sockets["202"], "call_update"))["state"] == "answered"
    (record,) = await ended_calls(gateway, 1)
    assert record["extension"] == "202" and record["disposition"] == "answered"
    for socket in sockets.values():
        await socket.close()


async def test_click_to_call_links_the_record_to_the_request(
    gateway: Client, database: Database
) -> None:
    customer = await make_customer(database, SystemClock().now(), "C-1", [OLENA])
    await add_agent(database, SystemClock().now(), OPERATOR_AGENT, ["201"])  # my extension
    response = await gateway.post(
        "/api/calls/originate",
        json={"agent_extension": "201", "customer_id": customer},
        headers=bearer(OPERATOR_TOKEN),
    )
    assert response.status == 202
    call_id = (await response.json())["call_id"]
    (record,) = await ended_calls(gateway, 1)
    assert record["id"] == call_id
    assert record["direction"] == "outbound" and record["customer_id"] == customer
    assert record["cost"] is not None


async def test_a_dropped_ami_connection_is_recovered_and_the_call_still_recorded(
    gateway: Client, database: Database, pbx: SimulatorServer
) -> None:
    await make_customer(database, SystemClock().now(), "C-1", [OLENA])
    pbx.start_call(CallSpec(caller=OLENA, extensions=("201",), ring_seconds=1, talk_seconds=40))
    await asyncio.sleep(0.3)  # the call is up (simulated ~12 s in)
    assert await pbx.drop_connections() >= 1
    await wait_for(lambda: health_ami(gateway), "connected")
    (record,) = await ended_calls(gateway, 1)
    assert record["disposition"] == "answered" and record["customer_id"] is not None


async def test_garbage_and_oversized_frames_do_not_break_the_stream(
    gateway: Client, database: Database, pbx: SimulatorServer
) -> None:
    await make_customer(database, SystemClock().now(), "C-1", [OLENA])
    pbx.inject_raw(b"this is not AMI\r\nnor this\r\n\r\n")
    pbx.inject_raw(b"Event: Huge\r\nData: " + b"x" * 200_000 + b"\r\n\r\n")
    pbx.start_call(CallSpec(caller=OLENA, extensions=("201",), ring_seconds=1, talk_seconds=3))
    (record,) = await ended_calls(gateway, 1)
    assert record["disposition"] == "answered"
    assert await health_ami(gateway) == "connected"


@pytest.mark.parametrize("kind", ["blind_transfer", "attended_transfer"])
async def test_transfers_attribute_talk_time_to_each_operator(
    gateway: Client, database: Database, pbx: SimulatorServer, kind: str
) -> None:
    await make_customer(database, SystemClock().now(), "C-1", [OLENA])
    pbx.start_call(
        CallSpec(
            kind=kind,
            caller=OLENA,
            extensions=("201",),
            transfer_to="202",
            ring_seconds=1,
            talk_seconds=12,
            talk_after_transfer=8,
        )
    )
    (record,) = await ended_calls(gateway, 1)
    assert record["extension"] == "201" and record["disposition"] == "answered"
    async with database.sessions() as session:
        from gateway.core.db.models import Call

        call = await session.get(Call, record["id"])
    assert call is not None
    shares = call.details["talk_seconds_by_extension"]
    assert set(shares) == {"201", "202"}
    assert 11 <= shares["201"] <= 13 and 7 <= shares["202"] <= 9


async def test_the_call_s_raw_events_are_stored_for_rebuilds(
    gateway: Client, database: Database, pbx: SimulatorServer
) -> None:
    pbx.start_call(CallSpec(caller=OLENA, extensions=("201",), ring_seconds=1, talk_seconds=3))
    (record,) = await ended_calls(gateway, 1)
    linkedid = record["pbx_linkedid"]

    async def stored() -> list[tuple[str, str | None]]:
        from sqlalchemy import select

        from gateway.core.db.models import AmiRawEvent

        async with database.sessions() as session:
            rows = await session.scalars(
                select(AmiRawEvent).where(AmiRawEvent.linkedid == linkedid)
            )
            return [(row.name, row.fields.get("Event")) for row in rows]

    async def hung_up() -> bool:
        return sum(1 for name, _ in await stored() if name == "Hangup") == 2

    await wait_for(hung_up, True)
    rows = await stored()
    assert {"Newchannel", "DialBegin", "BridgeEnter", "Hangup"} <= {name for name, _ in rows}
    assert all(name == event for name, event in rows)  # the fields, as received
