"""The voice channel: a contact on `voice` becomes a call task for the responsible
operator (the console's click-to-call places the call, and the task closes only with a
verified call)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from channels.base import Accepted, ChannelName, Outgoing
from gateway.core.clock import Clock
from gateway.core.db.dialect import insert_for
from gateway.core.db.engine import Database
from gateway.core.db.models import Customer, Task
from gateway.core.db.states import ContactStatus, TaskStatus

DEFAULT_MIN_CALL_SECONDS = 20


def task_id_for(contact_id: str) -> str:
    """One task per contact, whoever creates it and however often."""
    return f"tsk_{contact_id.removeprefix('msg_')}"


class VoiceTaskChannel:
    """Creates (idempotently) the call task a voice contact stands for."""

    name: ChannelName = "voice"
    sandbox = False

    def __init__(self, database: Database, clock: Clock) -> None:
        self._database, self._clock = database, clock

    async def send(self, message: Outgoing) -> Accepted:
        """Create the task for the customer's responsible agent."""
        now = self._clock.now()
        task_id = task_id_for(message.contact_id)
        async with self._database.transaction() as session:
            assignee = await session.scalar(
                select(Customer.responsible_agent).where(Customer.id == message.customer_id)
            )
            insert = insert_for(session)
            await session.execute(
                insert(Task)
                .values(
                    id=task_id,
                    kind="call",
                    customer_id=message.customer_id,
                    assignee=assignee,
                    status=TaskStatus.OPEN,
                    min_call_seconds=DEFAULT_MIN_CALL_SECONDS,
                    priority=0,
                    campaign_id=message.campaign_id,
                    created_at=now,
                )
                .on_conflict_do_nothing()
            )
        return Accepted(provider_id=task_id, status=ContactStatus.SENT)

    async def find_sent(self, message: Outgoing, since: datetime) -> Accepted | None:
        """The task, if it was created."""
        task_id = task_id_for(message.contact_id)
        async with self._database.sessions() as session:
            exists = await session.get(Task, task_id)
        return Accepted(provider_id=task_id, status=ContactStatus.SENT) if exists else None

    async def close(self) -> None:
        """Nothing to release."""
