"""What a batch of journey advances writes: contacts and tasks, one insert each."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.core.db.dialect import insert_for
from gateway.core.db.models import OutboundContact, Task


@dataclass
class Effects:
    """Rows a batch of advances writes together (one statement each, not one per row)."""

    contacts: list[dict[str, object]] = field(default_factory=list)
    tasks: list[dict[str, object]] = field(default_factory=list)
    steps: int = 0
    status_moves: int = 0
    crm_actions: int = 0

    async def flush(self, session: AsyncSession) -> tuple[int, int]:
        """Insert the collected contacts and tasks; returns how many of each were new."""
        insert = insert_for(session)
        created = [0, 0]
        for slot, (model, rows, key) in enumerate(
            ((OutboundContact, self.contacts, "idempotency_key"), (Task, self.tasks, "id"))
        ):
            if not rows:
                continue
            result = await session.execute(
                insert(model).on_conflict_do_nothing(index_elements=[key]).returning(model.id),  # type: ignore[attr-defined]
                rows,
            )
            created[slot] = len(result.all())
            rows.clear()
        return created[0], created[1]
