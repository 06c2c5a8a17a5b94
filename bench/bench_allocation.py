"""Allocation at scale: 100,000 contacts × 200 partners with realistic eligibility rules.

Prints: the eligible share, the time to evaluate eligibility and to solve, the number of
contact classes the LP runs on, the optimality gap (exact plan objective − the LP's own
optimum, and the same against a second, independent LP over the non-aggregated
transportation problem when it fits), and the plan against a greedy baseline (cheapest
eligible partner with capacity left, highest priority first) built in the same run.

    .venv/bin/python -m bench.bench_allocation [--contacts N] [--partners M] [--seed S]
"""

from __future__ import annotations

import argparse
import os
import random
import time
from collections import Counter
from decimal import Decimal
from typing import Any

from gateway.allocation.eligibility import eligible_in_python
from gateway.allocation.eligibility_fast import eligible_grouped
from gateway.allocation.model import Contact, PartnerTerms, Plan, Problem, eligibility_rule
from gateway.allocation.policy import DEFAULT_WEIGHTS
from gateway.allocation.solve import solve
from gateway.core.rules import CustomerFacts

REGIONS = [f"region-{i:02d}" for i in range(25)]
PRODUCTS = ["mobile", "internet", "tv", "landline", "insurance"]
HOLD = {"mobile": 0.7, "internet": 0.5, "tv": 0.35, "landline": 0.15, "insurance": 0.1}


def make_contacts(rng: random.Random, n: int) -> tuple[Contact, ...]:
    """Customers with a region, products, contract age; priority = payment due soon."""
    contacts = []
    for i in range(n):
        products = tuple(p for p in PRODUCTS if rng.random() < HOLD[p])
        due = rng.choice([None, None, 0, 1, 2, 3, 5, 7, 14])
        # Due today → 3, tomorrow → 2, within a week → 1, otherwise 0.
        priority = 0 if due is None else 3 if due == 0 else 2 if due == 1 else 1 if due <= 7 else 0
        contacts.append(
            Contact(
                id=f"c{i:06d}",
                facts=CustomerFacts(
                    customer_id=f"c{i:06d}",
                    status="active",
                    region=rng.choice(REGIONS),
                    products=products,
                    contract_age_days=30 * rng.randint(0, 100),
                    days_until_payment=due,
                ),
                priority=priority,
            )
        )
    return tuple(contacts)


def make_partners(rng: random.Random, m: int, n_contacts: int) -> tuple[PartnerTerms, ...]:
    """Regional, product and tenure specialists; total capacity ≈ 120% of the contacts."""
    partners = []
    for j in range(m):
        kind = j % 3
        if kind == 0:  # regional call centre: 5 of 25 regions
            raw: dict[str, Any] = {"field": "region", "op": "in", "value": rng.sample(REGIONS, 5)}
        elif kind == 1:  # product specialist in a wider area
            raw = {
                "all": [
                    {"field": "products", "op": "contains", "value": rng.choice(PRODUCTS[:3])},
                    {"field": "region", "op": "in", "value": rng.sample(REGIONS, 8)},
                ]
            }
        else:  # retention: established contracts within its bounds, in its regions
            low = 30 * rng.randint(3, 24)
            raw = {
                "all": [
                    {"field": "contract_age_days", "op": ">=", "value": low},
                    {"field": "contract_age_days", "op": "<", "value": low + 30 * 60},
                    {"field": "region", "op": "in", "value": rng.sample(REGIONS, 8)},
                ]
            }
        partners.append(
            PartnerTerms(
                id=f"p{j:03d}",
                capacity=rng.randint(int(n_contacts / m * 0.5), int(n_contacts / m * 1.9)),
                cost_per_contact=Decimal(rng.randint(150, 600)) / 100,
                rule=eligibility_rule(raw, f"partners[{j}].eligibility"),
                performance={
                    "quality_score": Decimal(rng.randint(60, 99)) / 100,
                    "cancellation_rate": Decimal(rng.randint(1, 15)) / 100,
                    "upsell_rate": Decimal(rng.randint(0, 20)) / 100,
                },
            )
        )
    return tuple(partners)


def greedy(problem: Problem, eligible: list[list[int]]) -> tuple[Counter[int], Decimal, Decimal]:
    """Highest priority first; each to its cheapest eligible partner with room left."""
    net = [p.net_cost(problem.weights) for p in problem.partners]
    left = [p.capacity for p in problem.partners]
    order = sorted(range(len(problem.contacts)), key=lambda i: -problem.contacts[i].priority)
    served: Counter[int] = Counter()
    cost = objective = Decimal(0)
    for i in order:
        options = [p for p in eligible[i] if left[p] > 0]
        if options:
            best = min(options, key=lambda p: net[p])
            left[best] -= 1
            served[problem.contacts[i].priority] += 1
            cost += problem.partners[best].cost_per_contact
            objective += net[best]
    return served, cost, objective


def by_level(counts: dict[int, int]) -> str:
    return ", ".join(f"p{level}: {counts.get(level, 0)}" for level in (3, 2, 1, 0))


def main() -> None:
    """Build, solve, compare, print (with the load average: the machine is shared)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--partners", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--no-lp-bound", action="store_true", help="skip the HiGHS LP check")
    parser.add_argument(
        "--reference-sample",
        type=int,
        default=5_000,
        help="contacts the reference evaluator re-checks (0: none, -1: all; ~30 s per 100k)",
    )
    args = parser.parse_args()
    rng = random.Random(args.seed)
    problem = Problem(
        make_contacts(rng, args.contacts),
        make_partners(rng, args.partners, args.contacts),
        dict(DEFAULT_WEIGHTS),
    )
    started = time.perf_counter()
    eligible = eligible_grouped(problem.contacts, problem.partners)
    rules_s = time.perf_counter() - started
    sample = problem.contacts
    if args.reference_sample >= 0:
        sample = sample[: args.reference_sample]
    reference_s = 0.0
    if sample:
        started = time.perf_counter()
        reference = eligible_in_python(sample, problem.partners)
        reference_s = time.perf_counter() - started
        if reference != eligible[: len(sample)]:
            raise SystemExit("grouped eligibility differs from the reference evaluation")
    edges = sum(len(e) for e in eligible)
    share = edges / (len(problem.contacts) * len(problem.partners))
    started = time.perf_counter()
    plan: Plan = solve(problem, eligible)
    solve_s = time.perf_counter() - started
    lp_bound, lp_s = None, 0.0
    if not args.no_lp_bound:
        started = time.perf_counter()
        lp_bound = solve(problem, eligible, method="lp").solver_objective
        lp_s = time.perf_counter() - started
    g_served, g_cost, g_objective = greedy(problem, eligible)

    capacity = sum(p.capacity for p in problem.partners)
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"contacts {args.contacts:,} × partners {args.partners}: eligible pairs {edges:,}")
    print(f"  eligible share {share:.1%}; total capacity {capacity:,}")
    print(f"  eligibility (grouped by the fields each condition reads): {rules_s:.2f} s")
    if sample:
        print(
            f"  reference evaluator on {len(sample):,} contacts: {reference_s:.2f} s "
            f"(≈ {reference_s * len(problem.contacts) / len(sample):.1f} s for all), same answer"
        )
    print(f"  solve (classes + two min-cost flows + plan): {solve_s:.2f} s")
    print(f"  total (eligibility + solve): {rules_s + solve_s:.2f} s")
    print(f"  classes (priority, eligible set): {plan.classes:,}")
    print(f"  optimal: {len(plan.assignments):,} assigned ({by_level(plan.assigned_by_priority)})")
    print(f"           cost {plan.total_cost}, objective (cost − value) {plan.objective}")
    if lp_bound is not None:
        gap = float(plan.objective) - lp_bound
        print(f"  LP bound (HiGHS, same lexicographic LP): {lp_bound:.6f} in {lp_s:.2f} s")
        print(f"  gap to the LP bound: {gap:.6f} (relative {gap / max(abs(lp_bound), 1):.2e})")
    print(f"  greedy:  {sum(g_served.values()):,} assigned ({by_level(g_served)})")
    print(f"           cost {g_cost}, objective {g_objective}")
    print(
        f"  optimal vs greedy: {len(plan.assignments) - sum(g_served.values()):+,} contacts, "
        f"objective {plan.objective - g_objective:+} "
        f"({float((plan.objective - g_objective) / g_objective):+.2%})"
    )
    reasons = Counter(plan.unassigned.values())
    print(f"  unassigned: {dict(reasons)}")


if __name__ == "__main__":
    main()
