"""Newcombe's hybrid score interval for the difference of two proportions."""

from __future__ import annotations

import random

import pytest

from gateway.costs.deflection import DeflectionError, measure, wilson, z_for


def test_matches_newcombes_published_example() -> None:
    """Newcombe (1998), Statistics in Medicine 17:873, example (a), method 10."""
    result = measure(control=70, control_callers=56, treated=80, treated_callers=48)
    assert result.value == pytest.approx(0.2)
    assert result.low == pytest.approx(0.0524, abs=5e-5)
    assert result.high == pytest.approx(0.3339, abs=5e-5)


def test_no_callers_in_either_group_still_gives_an_interval() -> None:
    result = measure(10, 0, 20, 0)
    assert result.value == 0.0 and result.low < 0.0 < result.high


def test_wilson_interval_of_a_textbook_case() -> None:
    low, high = wilson(81, 263, z_for(0.95))
    assert (round(low, 4), round(high, 4)) == (0.2553, 0.3662)


def test_coverage_is_close_to_nominal() -> None:
    """Seeded: 40 % vs 15 %, groups of 200 and 600; the 95 % interval covers 0.25."""
    rng = random.Random(7)
    covered, runs = 0, 400
    for _ in range(runs):
        control = sum(rng.random() < 0.40 for _ in range(200))
        treated = sum(rng.random() < 0.15 for _ in range(600))
        result = measure(200, control, 600, treated)
        covered += result.low <= 0.25 <= result.high
    assert 0.92 <= covered / runs <= 0.99


@pytest.mark.parametrize(
    ("args", "message"),
    [((0, 0, 10, 1), "at least one"), ((10, 11, 10, 1), "between"), ((10, -1, 10, 1), "between")],
)
def test_impossible_counts_are_refused(args: tuple[int, int, int, int], message: str) -> None:
    with pytest.raises(DeflectionError, match=message):
        measure(*args)


def test_confidence_must_be_a_probability() -> None:
    with pytest.raises(DeflectionError):
        measure(10, 1, 10, 1, confidence=1.0)
