"""Database mode: open call tasks without a partner → optimal plan → tasks and CRM outbox.

One transaction holds the whole run (on PostgreSQL behind an advisory lock, on SQLite
behind BEGIN IMMEDIATE), so two runs never hand out the same capacity twice. A partner's
capacity is per day (in the configured time zone): what earlier runs of that day gave it
is subtracted. A rerun finds the assigned tasks already taken and changes nothing; each
`allocation.assigned` activity has the event id `allocation.assigned:<task>:<partner>`,
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

from sqlalchemy import Table, bindparam, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from crm_sync.outbox import enqueue
from gateway.allocation.eligibility import eligible_customers
from gateway.allocation.model import (
    AllocationInputError,
    Contact,
    PartnerTerms,
    Plan,
    Problem,
    eligibility_rule,
    performance,
)
from gateway.allocation.policy import AllocationPolicy
from gateway.allocation.solve import solve
from gateway.campaigns.rules import CustomerFacts
from gateway.campaigns.rules.fields import local_today
from gateway.clock import as_utc, isoformat_z
from gateway.db.engine import Database
from gateway.db.models import AllocationRun, Customer, Partner, Task
from gateway.db.types import new_id

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
    """Allocate every open, partnerless call task created by `as_of`; commit the plan."""
    as_of = as_utc(as_of)
    day = local_today(as_of, timezone)
    async with database.transaction() as session:
        if not database.is_sqlite:
            await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
        rows = (
            await session.scalars(
                select(Partner).where(Partner.active.is_(True)).order_by(Partner.id)
            )
        ).all()
        used_today = await _used_on(session, day, timezone)
        partners, skipped = _terms(rows, used_today)
        tasks = await _open_tasks(session, as_of)
        selected = await eligible_customers(
            session, partners, {task.customer_id for task in tasks}, as_of, timezone=timezone
        )
        problem = Problem(
            contacts=tuple(
                Contact(
                    id=task.id,
                    facts=CustomerFacts(customer_id=task.customer_id, status="active"),
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
        by_id = {row.id: row for row in rows}
        await _write(session, tasks, plan, by_id, run_id, as_of, now)
        summary = _summary(plan, by_id, day, skipped, len(tasks))
        session.add(AllocationRun(id=run_id, as_of=as_of, created_at=now, summary=summary))
    return AllocationResult(run_id=run_id, as_of=as_of, plan=plan, summary=summary)


def _terms(rows: Any, used_today: Counter[str]) -> tuple[tuple[PartnerTerms, ...], dict[str, str]]:
    """Each partner's remaining capacity today; partners with an unusable rule are skipped."""
    terms: list[PartnerTerms] = []
    skipped: dict[str, str] = {}
    for row in rows:
        try:
            rule = eligibility_rule(row.eligibility or {}, "eligibility")
            figures = performance(row.performance or {}, "performance")
        except AllocationInputError as exc:
            skipped[row.id] = str(exc)  # stored by a CRM event; refused on our own API
            continue
        left = max(0, row.capacity_per_day - used_today[row.id])
        terms.append(PartnerTerms(row.id, left, Decimal(row.cost_per_contact), rule, figures))
    return tuple(terms), skipped


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
        for partner_id, count in (summary or {}).get("per_partner", {}).items():
            used[partner_id] += int(count)
    return used


async def _open_tasks(session: AsyncSession, as_of: datetime) -> list[_OpenTask]:
    """Open call tasks with no partner yet, most urgent first (the tie-break in a class)."""
    rows = await session.execute(
        select(Task.id, Task.task_id, Task.customer_id, Customer.external_id, Task.priority)
        .join(Customer, Customer.id == Task.customer_id)
        .where(
            Task.status == "open",
            Task.kind == "call",
            Task.partner_id.is_(None),
            Task.created_at <= as_of,
        )
        .order_by(Task.priority.desc(), Task.due_at.asc().nulls_last(), Task.created_at, Task.id)
    )
    return [_OpenTask(r.id, r.task_id, r.customer_id, r.external_id, r.priority) for r in rows]


async def _write(
    session: AsyncSession,
    tasks: list[_OpenTask],
    plan: Plan,
    partners: dict[str, Partner],
    run_id: str,
    as_of: datetime,
    now: datetime,
) -> None:
    if not plan.assignments:
        return
    await session.execute(
        _TASKS.update()
        .where(
            _TASKS.c.id == bindparam("task"),
            _TASKS.c.partner_id.is_(None),
            _TASKS.c.status == "open",
        )
        .values(partner_id=bindparam("partner")),
        [{"task": task, "partner": partner} for task, partner in plan.assignments.items()],
    )
    for task in tasks:
        chosen = plan.assignments.get(task.id)
        if chosen is None:
            continue
        partner = partners[chosen]
        await enqueue(
            session,
            type=EVENT_TYPE,
            data={
                "id": task.id,
                "task_id": task.crm_task_id,
                "external_id": task.external_id,
                "partner_id": partner.partner_id,
                "partner_name": partner.name,
                "cost_per_contact": partner.cost_per_contact,
                "currency": partner.currency,
                "priority": task.priority,
                "run_id": run_id,
                "as_of": as_of,
            },
            ordering_key=task.customer_id,
            occurred_at=now,
            event_id=f"{EVENT_TYPE}:{task.id}:{partner.id}",
            now=now,
        )


def _summary(
    plan: Plan, partners: dict[str, Partner], day: date, skipped: dict[str, str], tasks: int
) -> dict[str, Any]:
    totals: dict[str, Decimal] = {}
    for partner_id in plan.assignments.values():
        partner = partners[partner_id]
        totals[partner.currency] = totals.get(partner.currency, Decimal(0)) + Decimal(
            partner.cost_per_contact
        )
    return {
        "day": day.isoformat(),
        "tasks": tasks,
        "assigned": len(plan.assignments),
        "unassigned": dict(Counter(plan.unassigned.values())),
        "per_partner": {p: n for p, n in plan.used.items() if n},
        "total_cost": {currency: str(amount) for currency, amount in sorted(totals.items())},
        "objective": str(plan.objective),
        "skipped_partners": skipped,
    }
