"""The optimal plan, by min-cost flow (OR-Tools' network solver, exact integer costs).

Contacts with the same priority and the same eligible partners are interchangeable (the
cost depends on the partner only), so they are merged into one *class* g with a supply
of |g|. The network is

    source → class g (capacity |g|) → partner p, if eligible (capacity |g|)
           → sink (capacity = p's capacity left today)

Solve 1 — most contacts, higher priority first. Arcs source → g cost −rank(g), with
ranks 1, 2, … by ascending priority, and a free source → sink bypass lets contacts stay
unserved. The sets of contacts that can be served together are the independent sets of
a transversal matroid, and in a matroid every maximum-weight basis has the same multiset
of weights (the greedy basis dominates every basis position by position). So *any*
increasing positive ranks give the same counts per level n_k as the lexicographic
objective "as many of the top level as possible, then the next, …": no big-M weight,
which would overflow or swamp the costs, is needed.

Solve 2 — least cost for those counts. Each level k becomes a node with supply n_k
feeding its classes; no bypass, so exactly n_k of level k are served; partner arcs cost
(cost − weighted performance value) scaled to whole numbers exactly (at most 8
decimals), so the optimum is exact, not within a tolerance.

Integrality: flow conservation matrices are totally unimodular; with integer capacities
and supplies every basic optimum (which a network algorithm returns) is integral, so the
flows are whole numbers of contacts. `gateway.allocation.lp` solves the same problem as
an LP with HiGHS (an independent check, and the LP bound the bench compares against).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any, Literal

import numpy as np
from ortools.graph.python import min_cost_flow  # type: ignore[import-untyped]

from gateway.allocation.model import CAPACITY_EXHAUSTED, NO_ELIGIBLE, PartnerTerms, Plan, Problem
from gateway.allocation.solver_errors import NotIntegral, SolverFailed

MAX_COST_PLACES = 8


def solve(
    problem: Problem,
    eligible: Sequence[Sequence[int]],
    *,
    method: Literal["flow", "lp"] = "flow",
) -> Plan:
    """The plan for `problem`; `eligible[i]` lists the partner indexes contact i may go to.

    `method="lp"` solves with HiGHS instead (same plan value; used to cross-check).
    """
    contacts, partners = problem.contacts, problem.partners
    if len(eligible) != len(contacts):
        raise ValueError("one eligible set per contact is needed")
    net = [partner.net_cost(problem.weights) for partner in partners]
    unassigned: dict[str, str] = {}
    open_sets: dict[tuple[int, ...], int] = {}
    # Eligible lists are often one shared object for many contacts (eligible_grouped
    # shares them): each distinct object is read once. The entry keeps the object alive,
    # so its id cannot be reused by another while this runs.
    seen: dict[int, tuple[Sequence[int], int]] = {}
    members: dict[tuple[int, int], list[int]] = {}
    for index, contact in enumerate(contacts):
        given = eligible[index]
        entry = seen.get(id(given))
        if entry is None:
            entry = seen[id(given)] = (given, _open_set(given, partners, open_sets))
        which = entry[1]
        if which < 0:
            unassigned[contact.id] = NO_ELIGIBLE if which == _NONE_ELIGIBLE else CAPACITY_EXHAUSTED
            continue
        members.setdefault((contact.priority, which), []).append(index)
    by_index = list(open_sets)
    keys = [(priority, by_index[which]) for priority, which in members]
    sizes = [len(group) for group in members.values()]
    if method == "lp":
        from gateway.allocation.lp import lp_flows

        flows, solver_value = lp_flows(keys, sizes, problem, net)
    else:
        flows, solver_value = network_flows(keys, sizes, problem, net)

    assignments: dict[str, str] = {}
    used = {partner.id: 0 for partner in partners}
    for group, amounts in zip(members.values(), flows, strict=True):
        queue = iter(group)
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
        solver_objective=solver_value,
        used=used,
        assigned_by_priority=by_priority,
        classes=len(keys),
    )


_NONE_ELIGIBLE, _ALL_FULL = -1, -2


def _open_set(
    given: Sequence[int], partners: Sequence[PartnerTerms], open_sets: dict[tuple[int, ...], int]
) -> int:
    """The index of the contact's eligible partners with capacity, or why there are none."""
    allowed = sorted(set(given))
    if not allowed:
        return _NONE_ELIGIBLE
    open_ = tuple(p for p in allowed if partners[p].capacity > 0)
    if not open_:
        return _ALL_FULL
    return open_sets.setdefault(open_, len(open_sets))


def network_flows(
    keys: list[tuple[int, tuple[int, ...]]],
    sizes: list[int],
    problem: Problem,
    net: list[Decimal],
) -> tuple[list[dict[int, int]], float]:
    """x[g, p] for every class g (nonzero ones) and solve 2's optimum, from two flow solves."""
    if not keys:
        return [], 0.0
    scale, costs = _whole_costs(net, sum(sizes))
    levels = sorted({priority for priority, _ in keys})
    level_of = {priority: index for index, priority in enumerate(levels)}
    n_classes = len(keys)
    source, sink, first_class = 0, 1, 2
    first_partner = first_class + n_classes
    first_level = first_partner + len(problem.partners)
    class_of = np.array([g for g, (_, allowed) in enumerate(keys) for _ in allowed], np.int64)
    partner_of = np.array([p for _, allowed in keys for p in allowed], dtype=np.int64)
    size = np.array(sizes, dtype=np.int64)
    capacity = np.array([partner.capacity for partner in problem.partners], dtype=np.int64)
    rank = np.array([level_of[priority] + 1 for priority, _ in keys], dtype=np.int64)
    class_level = rank - 1
    total = int(size.sum())

    def network(head_tails: np.ndarray, caps: np.ndarray, arc_costs: np.ndarray) -> Any:
        graph = min_cost_flow.SimpleMinCostFlow()
        graph.add_arcs_with_capacity_and_unit_cost(head_tails[0], head_tails[1], caps, arc_costs)
        return graph

    # Arcs common to both solves: class → partner, partner → sink.
    middle_tails = np.concatenate(
        [first_class + class_of, first_partner + np.arange(len(capacity))]
    )
    middle_heads = np.concatenate([first_partner + partner_of, np.full(len(capacity), sink)])
    middle_caps = np.concatenate([size[class_of], capacity])
    n_edges = len(class_of)

    # Solve 1: source → class (−rank), bypass source → sink (0).
    tails = np.concatenate([np.full(n_classes, source), middle_tails, [source]])
    heads = np.concatenate([first_class + np.arange(n_classes), middle_heads, [sink]])
    graph = network(
        np.stack([tails, heads]),
        np.concatenate([size, middle_caps, [total]]),
        np.concatenate([-rank, np.zeros(len(middle_tails) + 1, dtype=np.int64)]),
    )
    graph.set_node_supply(source, total)
    graph.set_node_supply(sink, -total)
    _solved(graph.solve(), "solve 1 (most contacts by priority)")
    served = graph.flows(np.arange(n_classes))
    counts = np.bincount(class_level, weights=served, minlength=len(levels)).astype(np.int64)

    # Solve 2: level k (supply n_k) → its classes; class → partner arcs cost net.
    tails = np.concatenate([first_level + class_level, middle_tails])
    heads = np.concatenate([first_class + np.arange(n_classes), middle_heads])
    edge_costs = np.array(costs, dtype=np.int64)[partner_of]
    graph = network(
        np.stack([tails, heads]),
        np.concatenate([size, middle_caps]),
        np.concatenate(
            [np.zeros(n_classes, np.int64), edge_costs, np.zeros(len(capacity), np.int64)]
        ),
    )
    for level, count in enumerate(counts.tolist()):
        graph.set_node_supply(first_level + level, int(count))
    graph.set_node_supply(sink, -int(counts.sum()))
    _solved(graph.solve(), "solve 2 (least cost for those counts)")
    amounts = graph.flows(np.arange(n_classes, n_classes + n_edges))
    flows: list[dict[int, int]] = [{} for _ in keys]
    for edge in np.flatnonzero(amounts):
        flows[int(class_of[edge])][int(partner_of[edge])] = int(amounts[edge])
    return flows, float(Decimal(int(graph.optimal_cost())) / scale)


def _whole_costs(net: list[Decimal], volume: int) -> tuple[int, list[int]]:
    """Net costs as exact whole numbers (×10^k, k ≤ 8) that cannot overflow the solver."""
    places = max((-v.normalize().as_tuple().exponent for v in net if v), default=0)  # type: ignore[operator]
    scale = 10 ** min(max(int(places), 0), MAX_COST_PLACES)
    costs = [int((value * scale).to_integral_value()) for value in net]
    if max((abs(c) for c in costs), default=0) * max(volume, 1) >= 2**62:
        raise SolverFailed("costs too large for exact integer arithmetic")
    return scale, costs


def _solved(status: Any, what: str) -> None:
    if status != min_cost_flow.SimpleMinCostFlow.OPTIMAL:
        raise SolverFailed(f"{what}: the flow solver returned {status}")


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
