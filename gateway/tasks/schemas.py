"""Request and response shapes of the tasks API."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from gateway.core.clock import isoformat_z
from gateway.core.db.models import Task
from gateway.core.http.endpoints import PageQuery


class TaskOut(BaseModel):
    """A task as the API shows it."""

    id: str
    task_id: str | None
    kind: str
    customer_id: str
    assignee: str | None
    partner_id: str | None
    status: str
    min_call_seconds: int
    created_at: str
    due_at: str | None
    completed_at: str | None
    completed_by_call_id: str | None

    @classmethod
    def of(cls, task: Task) -> TaskOut:
        """Serialise a row."""
        return cls(
            id=task.id,
            task_id=task.task_id,
            kind=task.kind,
            customer_id=task.customer_id,
            assignee=task.assignee,
            partner_id=task.partner_id,
            status=task.status,
            min_call_seconds=task.min_call_seconds,
            created_at=isoformat_z(task.created_at) or "",
            due_at=isoformat_z(task.due_at),
            completed_at=isoformat_z(task.completed_at),
            completed_by_call_id=task.completed_by_call_id,
        )


class TaskPage(BaseModel):
    """A page of tasks."""

    items: list[TaskOut]
    next_cursor: str | None


class TaskQuery(PageQuery):
    """Filters of GET /api/tasks; `assignee=me` means the calling operator's agent."""

    assignee: str | None = None
    status: Literal["open", "done", "cancelled"] | None = None
    customer_id: str | None = None


class CompleteTask(BaseModel):
    """The call that did the task."""

    call_id: str = Field(min_length=1, max_length=40)
