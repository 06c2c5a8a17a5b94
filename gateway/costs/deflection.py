"""Measured deflection: how much less the treated group called than the holdout.

Deflection is the difference of two proportions, p_control − p_treated, where each
is the share of a group's customers who made at least one inbound call on the topic
in the window (intention to treat: every customer assigned to an arm counts, reached
or not). The confidence interval is Newcombe's hybrid score interval (his method 10,
built from two Wilson intervals): unlike the textbook normal approximation it stays
inside [−1, 1], does not collapse to zero width when a group has no callers, and keeps
close to its nominal coverage with the small holdouts campaigns actually use. It
needs only a normal quantile, which `statistics.NormalDist` gives, so no SciPy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

DEFAULT_CONFIDENCE = 0.95


class DeflectionError(ValueError):
    """Counts that cannot be proportions."""


@dataclass(frozen=True)
class Deflection:
    """p_control − p_treated with its confidence interval."""

    treated: int
    treated_callers: int
    control: int
    control_callers: int
    value: float
    low: float
    high: float
    confidence: float

    @property
    def treated_rate(self) -> float:
        """Share of treated customers who called."""
        return self.treated_callers / self.treated if self.treated else 0.0

    @property
    def control_rate(self) -> float:
        """Share of control customers who called."""
        return self.control_callers / self.control if self.control else 0.0

    def as_dict(self) -> dict[str, object]:
        """Figures for reports; shares rounded to 6 places (they are not money)."""
        return {
            "source": "measured",
            "value": round(self.value, 6),
            "low": round(self.low, 6),
            "high": round(self.high, 6),
            "confidence": self.confidence,
            "treated": self.treated,
            "treated_callers": self.treated_callers,
            "treated_rate": round(self.treated_rate, 6),
            "control": self.control,
            "control_callers": self.control_callers,
            "control_rate": round(self.control_rate, 6),
        }


def z_for(confidence: float) -> float:
    """Two-sided normal quantile for a confidence level (1.96 for 0.95)."""
    if not 0.0 < confidence < 1.0:
        raise DeflectionError("confidence must be strictly between 0 and 1")
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def wilson(successes: int, n: int, z: float) -> tuple[float, float]:
    """Wilson score interval of a proportion."""
    if n <= 0:
        raise DeflectionError("a group needs at least one customer")
    if not 0 <= successes <= n:
        raise DeflectionError("callers must be between 0 and the group size")
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def measure(
    control: int,
    control_callers: int,
    treated: int,
    treated_callers: int,
    confidence: float = DEFAULT_CONFIDENCE,
) -> Deflection:
    """Deflection p_control − p_treated with Newcombe's hybrid score interval."""
    z = z_for(confidence)
    p_c, p_t = control_callers / max(control, 1), treated_callers / max(treated, 1)
    l_c, u_c = wilson(control_callers, control, z)
    l_t, u_t = wilson(treated_callers, treated, z)
    difference = p_c - p_t
    low = difference - math.sqrt((p_c - l_c) ** 2 + (u_t - p_t) ** 2)
    high = difference + math.sqrt((u_c - p_c) ** 2 + (p_t - l_t) ** 2)
    return Deflection(
        treated=treated,
        treated_callers=treated_callers,
        control=control,
        control_callers=control_callers,
        value=difference,
        low=max(-1.0, low),
        high=min(1.0, high),
        confidence=confidence,
    )
