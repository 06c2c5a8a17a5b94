"""The optimal plan, by linear programming with HiGHS (two solves, one warm-started model).

The problem is a transportation problem. Contacts with the same priority and the same
eligible partners are interchangeable (cost depends on the partner only), so they are
merged into one *class* with a supply of their count; variables x[g, p] say how many
contacts of class g partner p takes:

    class rows    Σ_p x[g, p] ≤ |g|
    partner rows  Σ_g x[g, p] ≤ capacity[p]
    level rows    Σ_{g at priority level k} Σ_p x[g, p]   (free in solve 1, = n_k in solve 2)

Solve 1 maximises Σ rank(g)·x with rank 1, 2, … by ascending priority. The sets of
contacts that can be served together form a transversal matroid, and in a matroid every
maximum-weight basis has the same multiset of weights (the greedy basis dominates every
basis position by position). So *any* increasing positive ranks give the same counts per
level as the lexicographic objective "as many of the top level as possible, then the
next, …": no big-M weights are needed and the coefficients stay small and exact.

Solve 2 fixes those counts (level rows = n_k) and minimises Σ (cost − weighted value)·x,
warm-started from solve 1's basis.

Integrality: the constraints are the flow conservation of the network
source → level k → class g → partner p → sink (arc capacities |g| and capacity[p],
level arcs fixed to n_k); a network matrix is totally unimodular and every right-hand
side is an integer, so every vertex is integral. The dual simplex returns a vertex; the
solution is checked to be integral anyway (`NotIntegral` otherwise) and the plan is
checked against capacities and eligibility before it is returned.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

import numpy as np
from highspy import _core as highs  # the plain solver: the wrapper class prints a banner

from gateway.allocation.model import CAPACITY_EXHAUSTED, NO_ELIGIBLE, Plan, Problem

INTEGRALITY_TOLERANCE = 1e-6


class SolverFailed(RuntimeError):
    """HiGHS did not report an optimal solution (never expected: the LP is always feasible)."""


class NotIntegral(RuntimeError):
    """A solution value was fractional, which total unimodularity rules out."""


def solve(problem: Problem, eligible: Sequence[Sequence[int]]) -> Plan:
    """The plan for `problem`; `eligible[i]` lists the partner indexes contact i may go to."""
    contacts, partners = problem.contacts, problem.partners
    if len(eligible) != len(contacts):
        raise ValueError("one eligible set per contact is needed")
    net = [partner.net_cost(problem.weights) for partner in partners]
    unassigned: dict[str, str] = {}
    members: dict[tuple[int, tuple[int, ...]], list[int]] = {}
    for index, contact in enumerate(contacts):
        allowed = sorted(set(eligible[index]))
        if not allowed:
            unassigned[contact.id] = NO_ELIGIBLE
            continue
        open_ = tuple(p for p in allowed if partners[p].capacity > 0)
        if not open_:
            unassigned[contact.id] = CAPACITY_EXHAUSTED
            continue
        members.setdefault((contact.priority, open_), []).append(index)
    keys = list(members)
    flows, lp_value = _optimal_flows(keys, [len(members[k]) for k in keys], problem, net)

    assignments: dict[str, str] = {}
    used = {partner.id: 0 for partner in partners}
    for key, amounts in zip(keys, flows, strict=True):
        queue = iter(members[key])
        # Within a class every contact is alike; earlier ones (input order) go first.
        for partner_index, amount in sorted(amounts.items(), key=lambda item: item[0]):
            for _ in range(amount):
                contact = contacts[next(queue)]
                assignments[contact.id] = partners[partner_index].id
            used[partners[partner_index].id] += amount
        for rest in queue:
            unassigned[contacts[rest].id] = CAPACITY_EXHAUSTED
    _check(problem, eligible, assignments, used)
    by_id = {partner.id: i for i, partner in enumerate(partners)}
    ordered = {c.id: assignments[c.id] for c in contacts if c.id in assignments}
    by_priority: dict[int, int] = {}
    for contact in contacts:
        if contact.id in assignments:
            by_priority[contact.priority] = by_priority.get(contact.priority, 0) + 1
    return Plan(
        assignments=ordered,
        unassigned={c.id: unassigned[c.id] for c in contacts if c.id in unassigned},
        total_cost=sum((partners[by_id[p]].cost_per_contact for p in ordered.values()), Decimal(0)),
        objective=sum((net[by_id[p]] for p in ordered.values()), Decimal(0)),
        lp_objective=lp_value,
        used=used,
        assigned_by_priority=by_priority,
        classes=len(keys),
    )


def _optimal_flows(
    keys: list[tuple[int, tuple[int, ...]]],
    sizes: list[int],
    problem: Problem,
    net: list[Decimal],
) -> tuple[list[dict[int, int]], float]:
    """x[g, p] for every class g (only the nonzero ones) and solve 2's LP optimum."""
    if not keys:
        return [], 0.0
    partners = problem.partners
    levels = sorted({priority for priority, _ in keys})
    level_of = {priority: index for index, priority in enumerate(levels)}
    n_classes, n_partners = len(keys), len(partners)
    level_row0 = n_classes + n_partners
    columns = [(g, p) for g, (_, allowed) in enumerate(keys) for p in allowed]
    n_cols = len(columns)
    col_class = np.fromiter((g for g, _ in columns), dtype=np.int32, count=n_cols)
    col_partner = np.fromiter((p for _, p in columns), dtype=np.int32, count=n_cols)
    class_level = np.array([level_of[priority] for priority, _ in keys], dtype=np.int32)

    lp = highs.HighsLp()
    lp.num_col_ = n_cols
    lp.num_row_ = level_row0 + len(levels)
    lp.col_lower_ = np.zeros(n_cols)
    lp.col_upper_ = np.full(n_cols, highs.kHighsInf)
    lp.col_cost_ = (class_level[col_class] + 1).astype(np.float64)
    lp.sense_ = highs.ObjSense.kMaximize
    capacities = np.array([partner.capacity for partner in partners], dtype=np.float64)
    lp.row_lower_ = np.full(lp.num_row_, -highs.kHighsInf)
    lp.row_upper_ = np.concatenate(
        [np.array(sizes, dtype=np.float64), capacities, np.full(len(levels), highs.kHighsInf)]
    )
    # Column-wise: each column has exactly three ones (its class, partner and level rows).
    rows = np.stack([col_class, n_classes + col_partner, level_row0 + class_level[col_class]], 1)
    lp.a_matrix_.format_ = highs.MatrixFormat.kColwise
    lp.a_matrix_.num_col_ = n_cols
    lp.a_matrix_.num_row_ = lp.num_row_
    lp.a_matrix_.start_ = np.arange(0, 3 * n_cols + 1, 3, dtype=np.int32)
    lp.a_matrix_.index_ = rows.reshape(-1).astype(np.int32)
    lp.a_matrix_.value_ = np.ones(3 * n_cols)

    solver = highs._Highs()
    solver.setOptionValue("output_flag", False)
    # Simplex, not interior point: only a basic (vertex) solution is sure to be integral.
    solver.setOptionValue("solver", "simplex")
    solver.setOptionValue("random_seed", 0)
    _run(solver.passModel(lp), solver, "load")
    _run(solver.run(), solver, "solve 1 (most contacts by priority)")
    served = _integral(np.asarray(solver.getSolution().col_value))
    counts = np.bincount(class_level[col_class], weights=served, minlength=len(levels))

    for level, count in enumerate(counts.tolist()):
        solver.changeRowBounds(level_row0 + level, count, count)
    solver.changeObjectiveSense(highs.ObjSense.kMinimize)
    costs = np.array([float(value) for value in net], dtype=np.float64)[col_partner]
    solver.changeColsCost(n_cols, np.arange(n_cols, dtype=np.int32), costs)
    _run(solver.run(), solver, "solve 2 (least cost for those counts)")
    amounts = _integral(np.asarray(solver.getSolution().col_value))
    lp_value = float(solver.getInfo().objective_function_value)

    flows: list[dict[int, int]] = [{} for _ in keys]
    for column in np.flatnonzero(amounts):
        flows[int(col_class[column])][int(col_partner[column])] = int(amounts[column])
    return flows, lp_value


def _run(status: object, solver: highs._Highs, what: str) -> None:
    if status != highs.HighsStatus.kOk:
        raise SolverFailed(f"{what}: HiGHS returned {status}")
    model = solver.getModelStatus()
    if what != "load" and model != highs.HighsModelStatus.kOptimal:
        raise SolverFailed(f"{what}: {solver.modelStatusToString(model)}")


def _integral(values: np.ndarray) -> np.ndarray:
    rounded = np.rint(values)
    worst = float(np.max(np.abs(values - rounded))) if values.size else 0.0
    if worst > INTEGRALITY_TOLERANCE:
        raise NotIntegral(f"a flow is {worst} away from a whole number")
    whole: np.ndarray = np.maximum(rounded, 0).astype(np.int64)
    return whole


def _check(
    problem: Problem,
    eligible: Sequence[Sequence[int]],
    assignments: dict[str, str],
    used: dict[str, int],
) -> None:
    """The plan respects every capacity and every eligibility (cheap; run every time)."""
    index_of = {partner.id: i for i, partner in enumerate(problem.partners)}
    for partner in problem.partners:
        if used[partner.id] > partner.capacity:
            raise NotIntegral(f"partner {partner.id} over capacity")
    for position, contact in enumerate(problem.contacts):
        chosen = assignments.get(contact.id)
        if chosen is not None and index_of[chosen] not in eligible[position]:
            raise NotIntegral(f"contact {contact.id} given to an ineligible partner")
