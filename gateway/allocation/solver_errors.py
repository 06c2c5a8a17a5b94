"""What both solvers (min-cost flow and the LP) share: their failures and tolerance."""

from __future__ import annotations

INTEGRALITY_TOLERANCE = 1e-6


class SolverFailed(RuntimeError):
    """The solver did not report an optimum (never expected: the problem is always feasible)."""


class NotIntegral(RuntimeError):
    """A solution value was fractional, which total unimodularity rules out."""
