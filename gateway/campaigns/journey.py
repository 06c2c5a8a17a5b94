"""Journeys: the steps one arm of a campaign version follows (its enrollments' states are
`gateway.core.db.states.EnrollmentState`)
and the deterministic keys its effects are written under (so repeats collide)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway.campaigns.definition import ValidCampaign
from gateway.core.rules import Rule

_KEY_LIMIT = 128


class JourneyError(Exception):
    """A journey that cannot go on (a loop without waits, a step that is not there)."""


@dataclass(frozen=True)
class Journey:
    """One arm's steps of one campaign version, with the branch rules they use."""

    campaign_id: str
    campaign_name: str
    arm: str
    steps: tuple[Any, ...]
    prefix: str
    rules: dict[str, Rule]
    # `occurrence: payment`: its contact steps need the payment still due.
    per_payment: bool = False

    def position(self, step_id: str) -> int:
        """Index of a step (JourneyError if the version has no such step)."""
        for index, step in enumerate(self.steps):
            if step.id == step_id:
                return index
        raise JourneyError(f"{self.campaign_name} ({self.arm}) has no step {step_id!r}")

    @property
    def first(self) -> str:
        """Id of the step a new enrollment starts at."""
        return str(self.steps[0].id)


def journey_for(campaign_id: str, valid: ValidCampaign, arm: str) -> Journey:
    """The steps an enrollment on `arm` follows (JourneyError for an unknown arm)."""
    definition = valid.definition
    per_payment = definition.occurrence == "payment"
    if definition.experiment is None:
        if arm != "default":
            raise JourneyError(f"{definition.name} has no arm {arm!r}")
        steps, prefix = tuple(definition.steps), "steps"
        return Journey(campaign_id, definition.name, arm, steps, prefix, valid.rules, per_payment)
    for number, candidate in enumerate(definition.experiment.arms):
        if candidate.name == arm:
            steps, prefix = tuple(candidate.steps), f"experiment.arms[{number}].steps"
            return Journey(
                campaign_id, definition.name, arm, steps, prefix, valid.rules, per_payment
            )
    raise JourneyError(f"{definition.name} has no arm {arm!r}")


def contact_key(campaign: str, customer_id: str, step_id: str, occurrence: str) -> str:
    """The outbound contact's idempotency key for one send step of one occurrence."""
    return f"campaign:{campaign}:{customer_id}:{step_id}:{occurrence}"


def _bounded(text: str, prefix: str) -> str:
    """`text`, or a stable digest of it when it would not fit a 128-character key."""
    if len(text) <= _KEY_LIMIT:
        return text
    return f"{prefix}:{hashlib.sha256(text.encode()).hexdigest()}"


def task_id_for(enrollment_id: str, step_id: str, at: datetime) -> str:
    """One task per enrollment, step and pass: a retried pass finds its task again,
    while a journey that loops back to the step (a call every 14 days) makes a new one."""
    digest = hashlib.sha256(f"{enrollment_id}|{step_id}|{at.isoformat()}".encode()).hexdigest()
    return f"tsk_c{digest[:30]}"


def action_event_id(campaign: str, customer_id: str, step_id: str, occurrence: str) -> str:
    """Deterministic outbox event id of a `crm_action` step."""
    return _bounded(f"campaign:{campaign}:{customer_id}:{step_id}:{occurrence}", "campaign")
