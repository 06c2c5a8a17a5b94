"""Thin handlers: GET /api/tasks, POST /api/tasks/{id}/complete."""

from __future__ import annotations

from aiohttp import web

from gateway.core.appkeys import CLOCK, DATABASE, SETTINGS
from gateway.core.db.models import Task
from gateway.core.http.auth import principal_of
from gateway.core.http.endpoints import (
    endpoint,
    json_response,
    keyset_page,
    read_body,
    read_query,
)
from gateway.lifecycle.public import LifecyclePolicy
from gateway.tasks.schemas import CompleteTask, TaskOut, TaskPage, TaskQuery
from gateway.tasks.service import complete_task, task_query


@endpoint(
    "GET",
    "/api/tasks",
    summary="Tasks, filtered by assignee (`me` for yourself), status, customer",
    roles=["operator"],
    query=TaskQuery,
    response=TaskPage,
    tags=["tasks"],
)
async def list_tasks(request: web.Request) -> web.Response:
    """A page of tasks."""
    params = read_query(request, TaskQuery)
    assignee = params.assignee
    if assignee == "me":
        assignee = principal_of(request).agent_id or ""
    query = task_query(assignee=assignee, status=params.status, customer_id=params.customer_id)
    return await keyset_page(
        request, query, Task.id, lambda task: TaskOut.of(task).model_dump(), params
    )


@endpoint(
    "POST",
    "/api/tasks/{id}/complete",
    summary="Complete a task with the call that did it (verified: customer, time, length)",
    roles=["operator"],
    body=CompleteTask,
    response=TaskOut,
    tags=["tasks"],
)
async def complete(request: web.Request) -> web.Response:
    """200 with the task, or 409 naming why the call does not count."""
    body = await read_body(request, CompleteTask)
    now = request.app[CLOCK].now()
    async with request.app[DATABASE].transaction() as session:
        task = await complete_task(
            session,
            request.match_info["id"],
            body.call_id,
            now,
            request.app[SETTINGS].section(LifecyclePolicy),
        )
    return json_response(TaskOut.of(task).model_dump())
