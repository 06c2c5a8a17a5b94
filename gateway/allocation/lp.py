"""The same plan as an LP solved by HiGHS: the LP bound and an independent check.

Variables x[g, p] (contacts of class g to partner p) under class rows Σ_p x ≤ |g|,
partner rows Σ_g x ≤ capacity and one row per priority level. Solve 1 maximises
Σ rank·x (levels free); solve 2 fixes the level rows to solve 1's counts and minimises
Σ (cost − value)·x from solve 1's basis. The matrix is that of a network (source →
level → class → partner → sink), hence totally unimodular: the simplex vertex is
integral, and that is checked. Slower than the network algorithm in `solve` on large
instances, so the service uses that one; this gives the bench its LP bound.
"""

from __future__ import annotations

from decimal import Decimal

import numpy as np
from highspy import _core as highs  # the plain solver: the wrapper class prints a banner

from gateway.allocation.model import Problem
from gateway.allocation.solver_errors import INTEGRALITY_TOLERANCE, NotIntegral, SolverFailed


def lp_flows(
    keys: list[tuple[int, tuple[int, ...]]],
    sizes: list[int],
    problem: Problem,
    net: list[Decimal],
) -> tuple[list[dict[int, int]], float]:
    """x[g, p] for every class g (nonzero ones) and solve 2's LP optimum (the LP bound)."""
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
    # Primal simplex: on these flow problems far fewer pivots than the default dual.
    solver.setOptionValue("simplex_strategy", 4)
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
