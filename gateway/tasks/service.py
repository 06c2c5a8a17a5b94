"""Completing a task by a real call: the call must be with that customer (any of their
numbers), start after the task was created and last longer than the task's minimum."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Select, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.core.db.models import Call, Customer, CustomerPhone, Task
from gateway.core.db.states import TaskStatus
from gateway.core.http.problems import Conflict, NotFound
from gateway.core.outbox import enqueue
from gateway.core.phones import last_digits
from gateway.lifecycle.public import LifecyclePolicy, after_monitoring_call


class CallNotMatching(Conflict):
    """The call was not with the task's customer."""

    type_name, title = "call-not-matching", "Call is not with this customer"


class CallBeforeTask(Conflict):
    """The call started before the task existed."""

    type_name, title = "call-before-task", "Call started before the task was created"


class CallTooShort(Conflict):
    """The conversation was not longer than the task's minimum."""

    type_name, title = "call-too-short", "Call too short"


class TaskNotOpen(Conflict):
    """The task is already done or cancelled."""

    type_name, title = "task-not-open", "Task is not open"


async def _call_is_with_customer(session: AsyncSession, call: Call, customer_id: str) -> bool:
    """Matched to the customer, or dialled from/to one of their numbers.

    The number check covers calls whose match was ambiguous (a shared family number):
    such a call was with this customer too, as far as the task is concerned.
    """
    if call.customer_id == customer_id:
        return True
    suffixes = {last_digits(n) for n in (call.caller, call.callee) if n and last_digits(n)}
    suffixes = {s for s in suffixes if len(s) >= 7}
    if not suffixes:
        return False
    query = select(CustomerPhone.id).where(
        CustomerPhone.customer_id == customer_id, CustomerPhone.last_digits.in_(suffixes)
    )
    return (await session.execute(query)).first() is not None


async def verify_call_for_task(session: AsyncSession, task: Task, call: Call) -> None:
    """Raise the precise refusal when `call` cannot complete `task`."""
    if not await _call_is_with_customer(session, call, task.customer_id):
        raise CallNotMatching(f"call {call.id} was not with customer {task.customer_id}")
    if call.started_at is None or call.started_at < task.created_at:
        raise CallBeforeTask(f"call {call.id} started before task {task.id} was created")
    talk = call.talk_seconds or 0
    if talk <= task.min_call_seconds:
        raise CallTooShort(
            f"call {call.id} talked {talk} s; task {task.id} needs more than "
            f"{task.min_call_seconds} s",
            talk_seconds=talk,
            min_call_seconds=task.min_call_seconds,
        )


async def complete_task(
    session: AsyncSession,
    task_id: str,
    call_id: str,
    now: datetime,
    lifecycle: LifecyclePolicy | None = None,
) -> Task:
    """Close an open task with a verifying call and tell the CRM (same transaction).

    A monitoring task also moves the customer's next monitoring date (+1 month when
    Active, +3 otherwise), so the monitoring campaign doesn't ask again tomorrow.
    """
    task = await session.get(Task, task_id)
    if task is None:
        raise NotFound(f"no task {task_id}")
    call = await session.get(Call, call_id)
    if call is None:
        raise NotFound(f"no call {call_id}")
    if task.status != TaskStatus.OPEN:
        raise TaskNotOpen(f"task {task_id} is {task.status}")
    await verify_call_for_task(session, task, call)
    # Conditional update: of two concurrent completions only one finds the task open.
    result = await session.execute(
        update(Task)
        .where(Task.id == task_id, Task.status == TaskStatus.OPEN)
        .values(status=TaskStatus.DONE, completed_at=now, completed_by_call_id=call_id)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise TaskNotOpen(f"task {task_id} was completed concurrently")
    await session.refresh(task)
    if task.kind == "monitoring":
        customer = await session.get(Customer, task.customer_id)
        if customer is not None:
            await after_monitoring_call(session, customer, now, lifecycle or LifecyclePolicy())
    await enqueue(
        session,
        type="task.completed",
        data={
            "task_id": task.task_id,
            "id": task.id,
            "customer_id": task.customer_id,
            "call_id": call_id,
            "talk_seconds": call.talk_seconds,
            "completed_at": now,
        },
        ordering_key=task.customer_id,
        occurred_at=now,
        event_id=f"task.completed:{task.id}",
        now=now,
    )
    return task


async def auto_complete_tasks(
    session: AsyncSession, call_id: str, now: datetime, lifecycle: LifecyclePolicy | None = None
) -> list[Task]:
    """Close every open call task that `call_id` satisfies (settings.pbx.auto_complete_tasks)."""
    call = await session.get(Call, call_id)
    if call is None or call.customer_id is None or call.started_at is None:
        return []
    candidates = await session.execute(
        select(Task.id).where(
            Task.customer_id == call.customer_id,
            Task.status == TaskStatus.OPEN,
            Task.kind.in_(("call", "monitoring", "recovery_call")),
            Task.created_at <= call.started_at,
            Task.min_call_seconds < (call.talk_seconds or 0),
        )
    )
    return [
        await complete_task(session, task_id, call_id, now, lifecycle)
        for task_id in candidates.scalars()
    ]


def task_query(
    *, assignee: str | None, status: str | None, customer_id: str | None
) -> Select[Task]:
    """The filtered task listing (paged in id, that is creation, order by the caller)."""
    query = select(Task)
    if assignee is not None:
        query = query.where(Task.assignee == assignee)
    if status is not None:
        query = query.where(Task.status == status)
    if customer_id is not None:
        query = query.where(Task.customer_id == customer_id)
    return query
