"""Database mode: open call tasks nobody holds → optimal plan → tasks and CRM outbox.

Targets are active partners and active agents with a capacity (targets.py); a task given
to a partner gets `partner_id`, one given to an agent gets `assignee` (the agent_id).

One transaction holds the whole run (on PostgreSQL behind an advisory lock, on SQLite
behind BEGIN IMMEDIATE), so two runs never hand out the same capacity twice. A target's
capacity is per day (in the configured time zone): what earlier runs of that day gave it
is subtracted. A rerun finds the assigned tasks already taken and changes nothing; each
`allocation.assigned` activity has the event id `allocation.assigned:<task>:<target>`,
so even a replay could not enqueue one twice.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import Table, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.allocation.eligibility import eligible_customers
from gateway.allocation.model import Contact, Plan, Problem
from gateway.allocation.policy import AllocationPolicy
from gateway.allocation.run_detail import DETAIL, run_detail
from gateway.allocation.solve import solve
from gateway.allocation.targets import Target, load_targets, release_from_inactive
from gateway.core.clock import as_utc, isoformat_z
from gateway.core.db.dialect import advisory_lock
from gateway.core.db.engine import Database
from gateway.core.db.models import AllocationRun, Customer, Task
from gateway.core.db.states import CustomerStatus, TaskStatus
from gateway.core.db.types import new_id
from gateway.core.outbox import enqueue
from gateway.core.rules import CustomerFacts
from gateway.core.rules.fields import local_today

# pg_advisory_xact_lock key: "allocation" as a number, the same for every instance.
LOCK_KEY = 0x616C6C6F63
EVENT_TYPE = "allocation.assigned"
_TASKS = cast(Table, Task.__table__)


@dataclass(frozen=True, slots=True)
class AllocationResult:
    """What one run did: the plan over task ids, and the run's stored summary."""

    run_id: str
    as_of: datetime
    plan: Plan
    summary: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        """As the API answers and `switchboard allocate --format json` prints."""
        return {
            "run_id": self.run_id,
            "as_of": isoformat_z(self.as_of),
            **self.plan.as_json(),
            "summary": self.summary,
        }


@dataclass(frozen=True, slots=True)
class _OpenTask:
    id: str
    crm_task_id: str | None
    customer_id: str
    external_id: str | None
    priority: int


async def run_allocation(
    database: Database,
    *,
    as_of: datetime,
    now: datetime,
    timezone: str,
    policy: AllocationPolicy,
) -> AllocationResult:
    """Allocate every open call task created by `as_of` that nobody holds; commit the plan."""
    as_of = as_utc(as_of)
    day = local_today(as_of, timezone)
    async with database.transaction() as session:
        await advisory_lock(session, LOCK_KEY)
        released = await release_from_inactive(session)
        used_today = await _used_on(session, day, timezone)
        partners, targets, skipped = await load_targets(session, used_today)
        tasks = await _open_tasks(session, as_of)
        selected = await eligible_customers(
            session, partners, {task.customer_id for task in tasks}, as_of, timezone=timezone
        )
        problem = Problem(
            contacts=tuple(
                Contact(
                    id=task.id,
                    facts=CustomerFacts(customer_id=task.customer_id, status=CustomerStatus.ACTIVE),
                    priority=task.priority,
                )
                for task in tasks
            ),
            partners=partners,
            weights=dict(policy.weights),
        )
        eligible = [
            [j for j, customers in enumerate(selected) if task.customer_id in customers]
            for task in tasks
        ]
        # CPU-bound: off the event loop.
        plan = await asyncio.to_thread(solve, problem, eligible)
        run_id = new_id("alr")
        await _write(session, tasks, plan, targets, run_id, as_of, now)
        summary = _summary(plan, targets, day, skipped, len(tasks), released)
        stored = {**summary, DETAIL: run_detail(problem, eligible, plan)}
        session.add(AllocationRun(id=run_id, as_of=as_of, created_at=now, summary=stored))
    return AllocationResult(run_id=run_id, as_of=as_of, plan=plan, summary=summary)


async def _used_on(session: AsyncSession, day: date, timezone: str) -> Counter[str]:
    """Contacts given to each partner by the runs of that local day."""
    zone = ZoneInfo(timezone)
    start = datetime.combine(day, time.min, zone)
    end = datetime.combine(day + timedelta(days=1), time.min, zone)
    summaries = await session.scalars(
        select(AllocationRun.summary).where(
            AllocationRun.as_of >= as_utc(start), AllocationRun.as_of < as_utc(end)
        )
    )
    used: Counter[str] = Counter()
    for summary in summaries:
        # Runs before agents were targets stored "per_partner".
        per_target = (summary or {}).get("per_target", (summary or {}).get("per_partner", {}))
        for target_id, count in per_target.items():
            used[target_id] += int(count)
    return used


async def _open_tasks(session: AsyncSession, as_of: datetime) -> list[_OpenTask]:
    """Open call tasks nobody holds (no partner, no assignee), most urgent first.

    A task the CRM or a campaign gave an assignee is that operator's: never taken away.
    """
    rows = await session.execute(
        select(Task.id, Task.task_id, Task.customer_id, Customer.external_id, Task.priority)
        .join(Customer, Customer.id == Task.customer_id)
        .where(
            Task.status == TaskStatus.OPEN,
            Task.kind == "call",
            Task.partner_id.is_(None),
            Task.assignee.is_(None),
            Task.created_at <= as_of,
        )
        .order_by(Task.priority.desc(), Task.due_at.asc().nulls_last(), Task.created_at, Task.id)
    )
    return [_OpenTask(r.id, r.task_id, r.customer_id, r.external_id, r.priority) for r in rows]


async def _write(
    session: AsyncSession,
    tasks: list[_OpenTask],
    plan: Plan,
    targets: dict[str, Target],
    run_id: str,
    as_of: datetime,
    now: datetime,
) -> None:
    if not plan.assignments:
        return
    to_partner, to_agent = [], []
    for task_id, target_id in plan.assignments.items():
        target = targets[target_id]
        if target.kind == "partner":
            to_partner.append({"task": task_id, "value": target.id})
        else:
            to_agent.append({"task": task_id, "value": target.external_id})
    # Only tasks still nobody's: the run holds the lock, this guards anything else.
    unheld = (
        (_TASKS.c.id == bindparam("task"))
        & _TASKS.c.partner_id.is_(None)
        & _TASKS.c.assignee.is_(None)
        & (_TASKS.c.status == TaskStatus.OPEN)
    )
    if to_partner:
        await session.execute(
            _TASKS.update().where(unheld).values(partner_id=bindparam("value")), to_partner
        )
    if to_agent:
        await session.execute(
            _TASKS.update().where(unheld).values(assignee=bindparam("value")), to_agent
        )
    for task in tasks:
        chosen = plan.assignments.get(task.id)
        if chosen is None:
            continue
        target = targets[chosen]
        await enqueue(
            session,
            type=EVENT_TYPE,
            data={
                "id": task.id,
                "task_id": task.crm_task_id,
                "external_id": task.external_id,
                **target.event_fields(),
                "cost_per_contact": target.cost_per_contact,
                "currency": target.currency,
                "priority": task.priority,
                "run_id": run_id,
                "as_of": as_of,
            },
            ordering_key=task.customer_id,
            occurred_at=now,
            event_id=f"{EVENT_TYPE}:{task.id}:{target.id}",
            now=now,
        )


def _summary(
    plan: Plan,
    targets: dict[str, Target],
    day: date,
    skipped: dict[str, str],
    tasks: int,
    released: int,
) -> dict[str, Any]:
    totals: dict[str, Decimal] = {}
    for target_id in plan.assignments.values():
        target = targets[target_id]
        totals[target.currency] = totals.get(target.currency, Decimal(0)) + Decimal(
            target.cost_per_contact
        )
    per_target = {t: n for t, n in plan.used.items() if n}
    return {
        "day": day.isoformat(),
        "tasks": tasks,
        "assigned": len(plan.assignments),
        "assigned_to_agents": sum(n for t, n in per_target.items() if targets[t].kind == "agent"),
        "released": released,
        "unassigned": dict(Counter(plan.unassigned.values())),
        "per_target": per_target,
        "total_cost": {currency: str(amount) for currency, amount in sorted(totals.items())},
        "objective": str(plan.objective),
        "skipped_partners": skipped,
    }
