"""Click-to-call against the PBX simulator over TCP: operators and supervisors ring only
their own extensions, and nobody (the CRM's token included) dials outside the
allow-list — by default the default region's numbers. A refused originate writes no
call and never reaches the PBX."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select

from gateway.app import create_app
from gateway.calls.settings import PbxTopology
from gateway.core.clock import SystemClock
from gateway.core.db.engine import Database
from gateway.core.db.models import Call
from gateway.core.http.auth import TokenRegistry
from gateway.pbx_simulator import SimulatorServer
from gateway.settings import Settings
from tests.support.agents import add_agent
from tests.support.auth import (
    ADMIN_TOKEN,
    CRM_TOKEN,
    OPERATOR_AGENT,
    OPERATOR_TOKEN,
    SUPERVISOR_AGENT,
    SUPERVISOR_TOKEN,
    bearer,
)
from tests.support.factories import make_customer
from tests.support.pbx import health_ami, pbx, pbx_gateway, wait_for, wired_to

__all__ = ["pbx", "pbx_gateway"]  # fixtures

Client = TestClient[Any, Any]
DOMESTIC = "+380501234567"
FOREIGN = "+447911123456"
PREMIUM = "+380900212345"  # a Ukrainian premium-rate number


async def originate(client: Client, token: str, extension: str, **target: str) -> Any:
    response = await client.post(
        "/api/calls/originate",
        json={"agent_extension": extension, **target},
        headers=bearer(token),
    )
    return response.status, await response.json()


async def ended_calls(database: Database) -> int:
    async with database.sessions() as session:
        return int(
            await session.scalar(
                select(func.count()).select_from(Call).where(Call.state == "ended")
            )
            or 0
        )


async def all_calls(database: Database) -> int:
    async with database.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(Call)) or 0)


async def test_operators_and_supervisors_ring_only_their_own_extensions(
    gateway: Client, database: Database
) -> None:
    now = SystemClock().now()
    await add_agent(database, now, OPERATOR_AGENT, ["201"])
    await add_agent(database, now, "agent-202", ["202"])
    await add_agent(database, now, SUPERVISOR_AGENT, ["301"])
    for token, extension in (
        (OPERATOR_TOKEN, "202"),
        (OPERATOR_TOKEN, "301"),
        (OPERATOR_TOKEN, "999"),
        (SUPERVISOR_TOKEN, "201"),
    ):
        status, problem = await originate(gateway, token, extension, number=DOMESTIC)
        assert status == 403, (extension, problem)
        assert f"extension {extension} is not one of yours" in problem["detail"]
    assert await all_calls(database) == 0

    for token, extension in (
        (OPERATOR_TOKEN, "201"),
        (SUPERVISOR_TOKEN, "301"),
        (ADMIN_TOKEN, "202"),
        (CRM_TOKEN, "202"),
    ):
        status, body = await originate(gateway, token, extension, number="050 123 45 67")
        assert status == 202, (token, body)
    # Only the four accepted reached the PBX: each is recorded, nothing else is.
    await wait_for(lambda: ended_calls(database), 4)
    assert await all_calls(database) == 4


async def test_nobody_dials_outside_the_default_region_or_premium_numbers(
    gateway: Client, database: Database
) -> None:
    now = SystemClock().now()
    await add_agent(database, now, OPERATOR_AGENT, ["201"])
    abroad = await make_customer(database, now, "C-abroad", [FOREIGN])
    for token in (OPERATOR_TOKEN, CRM_TOKEN, ADMIN_TOKEN):
        for target in ({"number": FOREIGN}, {"number": PREMIUM}, {"customer_id": abroad}):
            status, problem = await originate(gateway, token, "201", **target)
            assert status == 403, (token, target, problem)
            assert problem["type"].endswith("destination-not-allowed")
    # Toll fraud with the CRM's token from any extension, in any written form.
    status, problem = await originate(gateway, CRM_TOKEN, "202", number="0044 7911 123456")
    assert status == 403 and problem["type"].endswith("destination-not-allowed")
    assert await all_calls(database) == 0

    status, _ = await originate(gateway, CRM_TOKEN, "201", number=DOMESTIC)
    assert status == 202
    await wait_for(lambda: ended_calls(database), 1)
    assert await all_calls(database) == 1


async def test_the_allow_list_is_configurable(
    settings: Settings, database: Database, tokens: TokenRegistry, pbx: SimulatorServer
) -> None:
    polish_only = settings.section(PbxTopology).model_copy(
        update={"originate_allow": [r"\+48\d{9}"]}
    )
    app = create_app(
        wired_to(settings.model_copy(update={"pbx": polish_only}), pbx),
        clock=SystemClock(),
        tokens=tokens,
        workers=True,
    )
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        await wait_for(lambda: health_ami(client), "connected")
        status, problem = await originate(client, CRM_TOKEN, "201", number=DOMESTIC)
        assert status == 403 and problem["type"].endswith("destination-not-allowed")
        status, _ = await originate(client, CRM_TOKEN, "201", number="+48 601 234 567")
        assert status == 202
        await wait_for(lambda: ended_calls(database), 1)
    assert await all_calls(database) == 1
