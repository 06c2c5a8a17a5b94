"""What a database run keeps so any of its choices can be explained later.

Stored in the run's summary under `detail` (no table of its own): the targets as the run
saw them (cost, net cost, capacity left that day, how many it gave each), the distinct
eligible sets, and per task [set, chosen target or -1, priority]. Tasks share eligible
sets heavily, so this stays small: a few dozen bytes a task.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from gateway.allocation.explain import Explanation, Option, describe
from gateway.allocation.model import CAPACITY_EXHAUSTED, NO_ELIGIBLE, Plan, Problem

DETAIL = "detail"


def run_detail(
    problem: Problem, eligible: Sequence[Sequence[int]], plan: Plan
) -> dict[str, object]:
    """The detail of one run (JSON-ready)."""
    index_of = {target.id: i for i, target in enumerate(problem.partners)}
    targets = [
        {
            "id": target.id,
            "kind": target.kind,
            "external_id": target.external_id or target.id,
            "cost_per_contact": str(target.cost_per_contact),
            "net_cost": str(target.net_cost(problem.weights)),
            "capacity_left": target.capacity,
            "used": plan.used.get(target.id, 0),
        }
        for target in problem.partners
    ]
    sets: dict[tuple[int, ...], int] = {}
    tasks: dict[str, list[int]] = {}
    for contact, allowed in zip(problem.contacts, eligible, strict=True):
        which = sets.setdefault(tuple(sorted(set(allowed))), len(sets))
        chosen = plan.assignments.get(contact.id)
        tasks[contact.id] = [which, -1 if chosen is None else index_of[chosen], contact.priority]
    return {
        "weights": {name: str(weight) for name, weight in problem.weights.items()},
        "targets": targets,
        "sets": [list(members) for members in sets],
        "tasks": tasks,
    }


def explain_task(detail: Mapping[str, Any], task_id: str) -> Explanation | None:
    """Why the run gave `task_id` what it gave; None if the task was not in that run."""
    entry = detail.get("tasks", {}).get(task_id)
    if entry is None:
        return None
    which, chosen, priority = entry
    targets = detail["targets"]
    options = [
        Option(
            partner_id=targets[i]["id"],
            cost_per_contact=Decimal(targets[i]["cost_per_contact"]),
            net_cost=Decimal(targets[i]["net_cost"]),
            capacity=int(targets[i]["capacity_left"]),
            used=int(targets[i]["used"]),
            kind=targets[i]["kind"],
            external_id=targets[i]["external_id"],
        )
        for i in detail["sets"][which]
    ]
    if chosen >= 0:
        return describe(task_id, priority, options, targets[chosen]["id"], None)
    reason = CAPACITY_EXHAUSTED if options else NO_ELIGIBLE
    return describe(task_id, priority, options, None, reason)
