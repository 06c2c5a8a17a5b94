"""Thin handlers: GET /api/tasks, POST /api/tasks/{id}/complete."""

from __future__ import annotations

from aiohttp import web

from gateway.core.appkeys import CLOCK, DATABASE, SETTINGS
from gateway.core.db.models import Task
from gateway.core.http.access import READ_ALL, ensure_own_call, ensure_own_task, visible_tasks
from gateway.core.http.auth import principal_of
from gateway.core.http.endpoints import (
    endpoint,
    json_response,
    keyset_page,
    read_body,
    read_query,
)
from gateway.core.http.problems import Forbidden
from gateway.lifecycle.public import LifecyclePolicy
from gateway.tasks.schemas import CompleteTask, TaskOut, TaskPage, TaskQuery
from gateway.tasks.service import complete_task, task_query


@endpoint(
    "GET",
    "/api/tasks",
    summary="Tasks, filtered by assignee (`me` for yourself), status, customer (operators: theirs)",
    roles=["operator", "supervisor"],
    query=TaskQuery,
    response=TaskPage,
    tags=["tasks"],
)
async def list_tasks(request: web.Request) -> web.Response:
    """A page of tasks."""
    params = read_query(request, TaskQuery)
    principal = principal_of(request)
    assignee = params.assignee
    if assignee == "me":
        assignee = principal.agent_id or ""
    if principal.role not in READ_ALL and assignee not in (None, principal.agent_id):
        raise Forbidden(f"operators list their own tasks only, not {assignee!r}'s")
    query = task_query(assignee=assignee, status=params.status, customer_id=params.customer_id)
    query = visible_tasks(query, principal)
    return await keyset_page(
        request, query, Task.id, lambda task: TaskOut.of(task).model_dump(), params
    )


@endpoint(
    "POST",
    "/api/tasks/{id}/complete",
    summary="Complete one of your tasks with your call that did it (customer, time, length)",
    roles=["operator", "supervisor"],
    body=CompleteTask,
    response=TaskOut,
    tags=["tasks"],
)
async def complete(request: web.Request) -> web.Response:
    """200 with the task, or 409 naming why the call does not count."""
    body = await read_body(request, CompleteTask)
    now = request.app[CLOCK].now()
    principal = principal_of(request)
    async with request.app[DATABASE].transaction() as session:
        task_row = await session.get(Task, request.match_info["id"])
        if task_row is not None:
            ensure_own_task(principal, task_row)
        await ensure_own_call(session, principal, body.call_id)
        task = await complete_task(
            session,
            request.match_info["id"],
            body.call_id,
            now,
            request.app[SETTINGS].section(LifecyclePolicy),
        )
    return json_response(TaskOut.of(task).model_dump())
