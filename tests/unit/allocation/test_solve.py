"""The solver on hand-checkable cases, against brute force and against scipy's MILP."""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from decimal import Decimal
from typing import Any, overload

import numpy as np
import pytest
from scipy.optimize import Bounds, LinearConstraint, milp

from gateway.allocation.eligibility import eligible_in_python
from gateway.allocation.explain import UnknownContact, explain
from gateway.allocation.model import (
    CAPACITY_EXHAUSTED,
    NO_ELIGIBLE,
    Contact,
    PartnerTerms,
    Plan,
    Problem,
    parse_problem,
)
from gateway.allocation.solve import solve
from gateway.core.rules import CustomerFacts

KYIV = {"field": "region", "op": "==", "value": "kyiv"}
KYIV_LVIV = {"field": "region", "op": "in", "value": ["kyiv", "lviv"]}


def run(raw: dict[str, Any], weights: dict[str, Decimal] | None = None) -> tuple[Problem, Plan]:
    problem = parse_problem(raw, weights or {})
    return problem, solve(problem, eligible_in_python(problem.contacts, problem.partners))


def test_hand_checked_plan() -> None:
    problem, plan = run(
        {
            "contacts": [
                {"id": "c1", "region": "kyiv"},
                {"id": "c2", "region": "lviv"},
                {"id": "c3", "region": "kyiv"},
                {"id": "c4", "region": "odesa"},
            ],
            "partners": [
                {"id": "A", "capacity": 1, "cost_per_contact": "1.00", "eligibility": KYIV},
                {"id": "B", "capacity": 5, "cost_per_contact": "3.00", "eligibility": KYIV_LVIV},
            ],
        }
    )
    # One Kyiv contact goes to cheap A (its one place), the rest to B; Odesa has nobody.
    assert plan.as_json() == {
        "assignments": {"c1": "A", "c2": "B", "c3": "B"},
        "unassigned": {"c4": NO_ELIGIBLE},
        "total_cost": "7.00",
    }
    assert plan.used == {"A": 1, "B": 2}
    eligible = eligible_in_python(problem.contacts, problem.partners)
    why = explain(problem, eligible, plan, "c3")
    assert why.partner_id == "B" and why.binding == ("A",)
    assert "cheaper eligible targets are full: partner A (net 1.00, 1/1)" in why.text
    assert explain(problem, eligible, plan, "c1").binding == ()
    assert explain(problem, eligible, plan, "c4").reason == NO_ELIGIBLE
    with pytest.raises(UnknownContact):
        explain(problem, eligible, plan, "nobody")


def test_higher_priority_takes_the_last_place_whatever_the_input_order() -> None:
    problem, plan = run(
        {
            "contacts": [
                {"id": "later", "region": "kyiv", "priority": 0},
                {"id": "due-tomorrow", "region": "kyiv", "priority": 5},
            ],
            "partners": [{"id": "A", "capacity": 1, "cost_per_contact": 2, "eligibility": KYIV}],
        }
    )
    assert plan.assignments == {"due-tomorrow": "A"}
    assert plan.unassigned == {"later": CAPACITY_EXHAUSTED}
    why = explain(problem, eligible_in_python(problem.contacts, problem.partners), plan, "later")
    assert why.binding == ("A",) and "every eligible target is full (partner A 1/1)" in why.text


def test_count_comes_before_cost() -> None:
    # Greedy-by-cost would give x the cheap A and leave y (only A allowed) out.
    _, plan = run(
        {
            "contacts": [{"id": "x", "region": "lviv"}, {"id": "y", "region": "kyiv"}],
            "partners": [
                {"id": "A", "capacity": 1, "cost_per_contact": "1", "eligibility": KYIV_LVIV},
                {
                    "id": "B",
                    "capacity": 1,
                    "cost_per_contact": "9",
                    "eligibility": {"field": "region", "op": "==", "value": "lviv"},
                },
            ],
        }
    )
    assert plan.assignments == {"x": "B", "y": "A"} and plan.total_cost == Decimal(10)


def test_performance_weights_can_outweigh_price() -> None:
    raw = {
        "contacts": [{"id": "c", "region": "kyiv"}],
        "partners": [
            {"id": "cheap", "capacity": 1, "cost_per_contact": "2.00", "eligibility": {}},
            {
                "id": "good",
                "capacity": 1,
                "cost_per_contact": "2.50",
                "eligibility": {},
                "performance": {"quality_score": 0.9, "cancellation_rate": 0.05},
            },
        ],
    }
    assert run(raw)[1].assignments == {"c": "cheap"}
    weighted = {"quality_score": Decimal(1), "cancellation_rate": Decimal(-2)}
    _, plan = run(raw, weighted)
    assert plan.assignments == {"c": "good"}  # 2.50 − 0.9 + 0.1 = 1.70 < 2.00
    assert plan.objective == Decimal("1.70") and plan.total_cost == Decimal("2.50")
    raw["weights"] = {"quality_score": 0}
    assert run(raw, weighted)[1].assignments == {"c": "cheap"}  # the file's weights win


def test_empty_and_degenerate_inputs() -> None:
    assert run({"contacts": [], "partners": []})[1].as_json() == {
        "assignments": {},
        "unassigned": {},
        "total_cost": "0",
    }
    _, plan = run({"contacts": [{"id": "a"}], "partners": []})
    assert plan.unassigned == {"a": NO_ELIGIBLE}
    _, plan = run(
        {
            "contacts": [{"id": "a"}],
            "partners": [{"id": "P", "capacity": 0, "cost_per_contact": 1, "eligibility": {}}],
        }
    )
    assert plan.unassigned == {"a": CAPACITY_EXHAUSTED} and plan.used == {"P": 0}


def random_problem(rng: random.Random, n_contacts: int, n_partners: int) -> Problem:
    regions = ["a", "b", "c"]
    contacts = tuple(
        Contact(
            id=f"c{i}",
            facts=CustomerFacts(customer_id=f"c{i}", status="active", region=rng.choice(regions)),
            priority=rng.choice([0, 0, 1, 3]),
        )
        for i in range(n_contacts)
    )
    partners = tuple(
        PartnerTerms(
            id=f"p{j}",
            capacity=rng.randint(0, max(1, n_contacts // 2)),
            cost_per_contact=Decimal(rng.randint(100, 900)) / 100,
            rule=parse_problem(
                {
                    "contacts": [],
                    "partners": [
                        {
                            "id": "x",
                            "capacity": 0,
                            "cost_per_contact": 0,
                            "eligibility": {
                                "field": "region",
                                "op": "in",
                                "value": rng.sample(regions, rng.randint(1, 2)),
                            },
                        }
                    ],
                },
                {},
            )
            .partners[0]
            .rule,
            performance={"quality_score": Decimal(rng.randint(0, 10)) / 10},
        )
        for j in range(n_partners)
    )
    return Problem(contacts, partners, {"quality_score": Decimal("0.5")})


def lexicographic_key(
    problem: Problem, plan_counts: dict[int, int], cost: Decimal
) -> tuple[Any, ...]:
    levels = sorted({c.priority for c in problem.contacts}, reverse=True)
    return (*[plan_counts.get(level, 0) for level in levels], -cost)


def check_invariants(problem: Problem, eligible: list[list[int]], plan: Plan) -> None:
    index = {p.id: i for i, p in enumerate(problem.partners)}
    for partner in problem.partners:
        taken = sum(1 for chosen in plan.assignments.values() if chosen == partner.id)
        assert taken == plan.used[partner.id] <= partner.capacity
    for position, contact in enumerate(problem.contacts):
        assert (contact.id in plan.assignments) != (contact.id in plan.unassigned)
        if contact.id in plan.assignments:
            assert index[plan.assignments[contact.id]] in eligible[position]
        why = explain(problem, eligible, plan, contact.id)
        # Optimality, locally: whatever the contact would have preferred is full.
        assert all(option.full for option in why.options if option.partner_id in why.binding)
        if plan.unassigned.get(contact.id) == CAPACITY_EXHAUSTED:
            assert why.options and all(option.full for option in why.options)


@pytest.mark.parametrize("method", ["flow", "lp"])
@pytest.mark.parametrize("seed", range(40))
def test_matches_brute_force_on_tiny_instances(seed: int, method: Any) -> None:
    rng = random.Random(seed)
    problem = random_problem(rng, rng.randint(1, 6), rng.randint(1, 3))
    eligible = eligible_in_python(problem.contacts, problem.partners)
    plan = solve(problem, eligible, method=method)
    check_invariants(problem, eligible, plan)
    net = [p.net_cost(problem.weights) for p in problem.partners]
    best: tuple[Any, ...] | None = None
    for choice in itertools.product(*[[None, *options] for options in eligible]):
        load = [0] * len(problem.partners)
        counts: dict[int, int] = {}
        cost = Decimal(0)
        for contact, partner in zip(problem.contacts, choice, strict=True):
            if partner is not None:
                load[partner] += 1
                counts[contact.priority] = counts.get(contact.priority, 0) + 1
                cost += net[partner]
        if all(used <= p.capacity for used, p in zip(load, problem.partners, strict=True)):
            key = lexicographic_key(problem, counts, cost)
            best = key if best is None or key > best else best
    assert lexicographic_key(problem, plan.assigned_by_priority, plan.objective) == best


def scipy_lexicographic(problem: Problem, eligible: list[list[int]]) -> tuple[list[int], float]:
    """Per-contact MILP, one stage per priority level then cost: an independent model."""
    edges = [(i, p) for i, options in enumerate(eligible) for p in options]
    n = len(edges)
    rows: list[np.ndarray] = []
    upper: list[float] = []
    lower: list[float] = []
    for i in range(len(problem.contacts)):
        rows.append(np.array([1.0 if e[0] == i else 0.0 for e in edges]))
        lower.append(0)
        upper.append(1)
    for p, partner in enumerate(problem.partners):
        rows.append(np.array([1.0 if e[1] == p else 0.0 for e in edges]))
        lower.append(0)
        upper.append(partner.capacity)
    counts = []
    for level in sorted({c.priority for c in problem.contacts}, reverse=True):
        mask = np.array([1.0 if problem.contacts[e[0]].priority == level else 0.0 for e in edges])
        result = milp(
            -mask,
            constraints=LinearConstraint(np.array(rows), lower, upper),
            integrality=np.ones(n, dtype=np.int_),
            bounds=Bounds(0, 1),
        )
        assert result.fun is not None
        best = round(-result.fun)
        counts.append(best)
        rows.append(mask)
        lower.append(best)
        upper.append(best)
    cost = np.array([float(problem.partners[e[1]].net_cost(problem.weights)) for e in edges])
    result = milp(
        cost,
        constraints=LinearConstraint(np.array(rows), lower, upper),
        integrality=np.ones(n, dtype=np.int_),
        bounds=Bounds(0, 1),
    )
    assert result.fun is not None
    return counts, float(result.fun)


@pytest.mark.parametrize("seed", range(12))
def test_matches_scipy_milp_on_small_instances(seed: int) -> None:
    rng = random.Random(1000 + seed)
    problem = random_problem(rng, rng.randint(20, 60), rng.randint(2, 7))
    eligible = eligible_in_python(problem.contacts, problem.partners)
    counts, cost = scipy_lexicographic(problem, eligible)
    levels = sorted({c.priority for c in problem.contacts}, reverse=True)
    for method in ("flow", "lp"):
        plan = solve(problem, eligible, method=method)
        check_invariants(problem, eligible, plan)
        assert [plan.assigned_by_priority.get(level, 0) for level in levels] == counts
        assert float(plan.objective) == pytest.approx(cost, abs=1e-6)
        assert plan.solver_objective == pytest.approx(float(plan.objective), abs=1e-6)


def test_costs_with_many_decimals_stay_exact() -> None:
    contacts = tuple(
        Contact(id=f"c{i}", facts=CustomerFacts(customer_id=f"c{i}", status="active"))
        for i in range(3)
    )
    partners = (
        PartnerTerms("a", 2, Decimal("1.0001"), performance={"q": Decimal("0.12345")}),
        PartnerTerms("b", 2, Decimal("1.0000"), performance={"q": Decimal("0.12344")}),
    )
    problem = Problem(contacts, partners, {"q": Decimal("0.0001")})
    plan = solve(problem, [[0, 1]] * 3)
    # Net a = 1.000087655, b = 0.999987656: b is cheaper by 0.0000999…, filled first.
    assert plan.used == {"a": 1, "b": 2}
    assert plan.objective == Decimal("1.000087655") + 2 * Decimal("0.999987656")


class FreshLists(Sequence[list[int]]):
    """Eligible sets handed out as a new list on every read (freed after use, so a
    later one may get the same id): the solver must not confuse them."""

    def __init__(self, rows: list[list[int]]) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    @overload
    def __getitem__(self, index: int) -> list[int]: ...
    @overload
    def __getitem__(self, index: slice) -> list[list[int]]: ...
    def __getitem__(self, index: int | slice) -> list[int] | list[list[int]]:
        if isinstance(index, slice):
            return [list(row) for row in self.rows[index]]
        return list(self.rows[index])


@pytest.mark.parametrize("seed", range(4))
def test_shared_fresh_and_copied_eligible_lists_give_one_plan(seed: int) -> None:
    rng = random.Random(seed)
    problem = random_problem(rng, 60, 5)
    shared = eligible_in_python(problem.contacts, problem.partners)
    copies = [list(row) for row in shared]
    assert len({id(row) for row in shared}) < len(shared)  # some lists are shared
    plan = solve(problem, shared)
    assert solve(problem, copies) == plan
    assert solve(problem, FreshLists(copies)) == plan
