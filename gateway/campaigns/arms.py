"""Experiment arms: a customer's arm is a pure function of campaign name and customer id.

The same hash is used by the preview and the journey engine, so what the preview shows
is what the run does; the engine also stores the result (`experiment_assignments`) so a
later change of weights never moves someone already enrolled.
"""

from __future__ import annotations

import hashlib

from gateway.campaigns.definition import Experiment

HOLDOUT = "holdout"
DEFAULT_ARM = "default"
_SCALE = float(1 << 64)


def bucket(campaign_name: str, customer_id: str) -> float:
    """A uniform number in [0, 1) fixed for this campaign and customer."""
    digest = hashlib.sha256(f"{campaign_name}\x1f{customer_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / _SCALE


def assign_arm(campaign_name: str, customer_id: str, experiment: Experiment | None) -> str:
    """The arm's name, `holdout` for the control group, `default` without an experiment."""
    if experiment is None:
        return DEFAULT_ARM
    point = bucket(campaign_name, customer_id)
    if point < experiment.holdout:
        return HOLDOUT
    # Rescale the part above the holdout to [0, total weight): arms keep their shares
    # of the treated customers whatever the holdout is.
    total = sum(arm.weight for arm in experiment.arms)
    position = (point - experiment.holdout) / (1.0 - experiment.holdout) * total
    reached = 0.0
    for arm in experiment.arms:
        reached += arm.weight
        if position < reached:
            return arm.name
    return experiment.arms[-1].name  # float rounding at the very top of the range
