"""GET /api/allocation/explain/{id}: why a stored (database-mode) run did what it did.

`{id}` is a task (our id or the CRM's task_id) or a customer (our id or external_id:
every task of theirs the run considered). Without `run_id`, the newest run that
considered the task is used, looking back over the last `LOOKBACK` runs: a task is in
every run until it is assigned, so that is the run that placed it or last left it out.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.allocation.run_detail import DETAIL, explain_task
from gateway.core.appkeys import DATABASE
from gateway.core.clock import isoformat_z
from gateway.core.db.models import AllocationRun, Customer, Task
from gateway.core.http.endpoints import endpoint, json_response, read_query
from gateway.core.http.problems import NotFound

LOOKBACK = 31


class ExplainQuery(BaseModel):
    """`run_id`: which run (default: the newest that considered the task)."""

    model_config = ConfigDict(extra="forbid")

    run_id: str | None = Field(default=None, min_length=1, max_length=40)


class TargetOption(BaseModel):
    """One eligible target as the run saw it; `full`: its capacity was the binding one."""

    partner_id: str
    kind: str
    external_id: str
    cost_per_contact: str
    performance_value: str
    net_cost: str
    capacity: int
    used: int
    full: bool


class TaskExplanation(BaseModel):
    """One task's outcome: the target (kind, ids) or the reason, and what decided it."""

    task_id: str
    crm_task_id: str | None
    customer_id: str
    contact_id: str
    priority: int
    partner_id: str | None
    kind: str | None
    reason: str | None
    eligible: list[TargetOption]
    binding: list[str]
    text: str


class ExplainOut(BaseModel):
    """The run, the weights it used, and one explanation per task asked about."""

    run_id: str
    as_of: str
    weights: dict[str, str]
    items: list[TaskExplanation]


async def _tasks_for(session: AsyncSession, key: str) -> list[Task]:
    """The task `key` names, else the tasks of the customer `key` names."""
    task = (
        await session.scalars(select(Task).where(or_(Task.id == key, Task.task_id == key)))
    ).first()
    if task is not None:
        return [task]
    customer_ids = select(Customer.id).where(or_(Customer.id == key, Customer.external_id == key))
    return list(
        (
            await session.scalars(
                select(Task).where(Task.customer_id.in_(customer_ids)).order_by(Task.id)
            )
        ).all()
    )


async def _runs(session: AsyncSession, run_id: str | None) -> list[AllocationRun]:
    if run_id is not None:
        run = await session.get(AllocationRun, run_id)
        if run is None:
            raise NotFound(f"no allocation run {run_id}")
        return [run]
    query = (
        select(AllocationRun)
        .order_by(AllocationRun.created_at.desc(), AllocationRun.id.desc())
        .limit(LOOKBACK)
    )
    return list((await session.scalars(query)).all())


@endpoint(
    "GET",
    "/api/allocation/explain/{id}",
    summary="Why a run gave a task (or a customer's tasks) its target: eligible agents and "
    "partners, cost and performance terms, the binding capacities",
    roles=["admin"],
    query=ExplainQuery,
    response=ExplainOut,
    tags=["allocation"],
)
async def explain_run(request: web.Request) -> web.Response:
    """404 for an unknown task/customer/run or a task no (such) run considered."""
    key = request.match_info["id"]
    params = read_query(request, ExplainQuery)
    async with request.app[DATABASE].sessions() as session:
        tasks = await _tasks_for(session, key)
        if not tasks:
            raise NotFound(f"no task or customer {key}")
        wanted = {task.id for task in tasks}
        for run in await _runs(session, params.run_id):
            detail: dict[str, Any] = (run.summary or {}).get(DETAIL) or {}
            if wanted & detail.get("tasks", {}).keys():
                return json_response(_answer(run, detail, tasks))
    which = f"run {params.run_id}" if params.run_id else f"the last {LOOKBACK} runs"
    raise NotFound(f"{key}: not considered by {which}")


def _answer(run: AllocationRun, detail: dict[str, Any], tasks: list[Task]) -> dict[str, Any]:
    items = []
    for task in tasks:
        why = explain_task(detail, task.id)
        if why is None:
            continue
        body = why.as_json()
        for option in body["eligible"]:
            cost, net = option["cost_per_contact"], option["net_cost"]
            option["performance_value"] = _minus(cost, net)
        items.append(
            {
                "task_id": task.id,
                "crm_task_id": task.task_id,
                "customer_id": task.customer_id,
                **body,
            }
        )
    out = ExplainOut(
        run_id=run.id,
        as_of=isoformat_z(run.as_of) or "",
        weights=dict(detail.get("weights", {})),
        items=[TaskExplanation.model_validate(item) for item in items],
    )
    return out.model_dump()


def _minus(cost: str, net: str) -> str:
    return str(Decimal(cost) - Decimal(net))
