"""Operators for tests: an agent with extensions, as agent.upserted creates one."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from gateway.core.db.engine import Database
from gateway.core.db.models import Agent, AgentExtension
from tests.support.auth import OPERATOR_TOKEN, bearer


async def add_agent(database: Database, now: Any, agent_id: str, extensions: list[str]) -> None:
    """An operator with extensions, as agent.upserted would create."""
    async with database.transaction() as session:
        session.add(
            Agent(
                id=f"agt_{agent_id}",
                agent_id=agent_id,
                name=agent_id,
                extensions=extensions,
                skills=[],
                regions=[],
                created_at=now,
                updated_at=now,
            )
        )
        await session.flush()
        for extension in extensions:
            session.add(AgentExtension(extension=extension, agent_id=f"agt_{agent_id}"))


Client = TestClient[Any, Any]


async def ticket(client: Client) -> str:
    response = await client.post("/api/ws-tickets", headers=bearer(OPERATOR_TOKEN))
    assert response.status == 201
    body = await response.json()
    assert body["expires_in"] == 60
    return str(body["ticket"])
