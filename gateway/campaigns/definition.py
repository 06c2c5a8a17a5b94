"""A campaign definition: the YAML/JSON schema people edit, validated with exact paths.

Shape (YAML in `config/campaigns/`, JSON in the API)::

    name: payment-reminder
    description: SMS three days before a loan payment
    schedule: "0 10 * * *"            # cron, in SWITCHBOARD_TIMEZONE
    occurrence: payment               # once | run | payment  (see Occurrence)
    audience: {all: [{field: days_until_payment, op: "==", value: 3}, ...]}
    steps:
      - {id: remind, type: send, channel: sms, template: payment-reminder}
      - {id: wait, type: wait, until: [replied, order], timeout: 3d}
      - {id: check, type: branch, cases: [{outcome: replied, goto: thanks}], otherwise: end}
      - {id: thanks, type: send, channel: sms, template: thank-you}
    experiment: {holdout: 0.1, arms: [{name: sms, weight: 1, steps: [...]}, ...]}

Steps form a flat list with ids: each runs after the one before it unless a `branch`
jumps (`goto`); `end` finishes the journey. A flat list persists as one step id per
enrollment and shows as a readable sequence in the editor.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal

from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from gateway.core.rules import Rule, RuleError, validate_rule

END = "end"
Occurrence = Literal["once", "run", "payment"]
WaitEvent = Literal["replied", "activity", "order", "call_answered", "delivered"]
StepId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
_DURATION = re.compile(r"^\s*(\d+)\s*([mhdw])\s*$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class DefinitionError(ValueError):
    """A definition that cannot be used; `path` points at the offending part."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


def parse_duration(text: str) -> timedelta:
    """`30d`, `12h`, `45m`, `2w` → timedelta (ValueError otherwise)."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a duration like 30d, 12h, 45m or 2w")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


class _Step(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: StepId


class SendStep(_Step):
    """Send a message with a saved template."""

    type: Literal["send"]
    channel: Literal["sms", "email", "voice"]
    template: Annotated[str, Field(min_length=1, max_length=128)]


class CallTaskStep(_Step):
    """Create a call task; it closes only with a verified call."""

    type: Literal["call_task"]
    # `monitoring`: closing the task moves the customer's next monitoring date.
    kind: Literal["call", "monitoring", "recovery_call"] = "call"
    assignee: Annotated[str, Field(min_length=1, max_length=128)] = "responsible_agent"
    min_call_seconds: int = Field(default=20, ge=0, le=3600)
    due_in: str = "3d"

    @field_validator("due_in")
    @classmethod
    def _duration(cls, value: str) -> str:
        parse_duration(value)
        return value


class WaitStep(_Step):
    """Wait a fixed time, or until one of `until` happens (with a timeout)."""

    type: Literal["wait"]
    duration: str | None = None
    until: list[WaitEvent] = Field(default_factory=list)
    timeout: str | None = None

    @field_validator("duration", "timeout")
    @classmethod
    def _durations(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)
        return value

    @model_validator(mode="after")
    def _shape(self) -> WaitStep:
        if self.until and self.timeout is None:
            raise ValueError("waiting until an event needs a timeout")
        if not self.until and self.duration is None:
            raise ValueError("give a duration, or events in `until` with a timeout")
        if self.until and self.duration is not None:
            raise ValueError("give either a duration or until/timeout, not both")
        return self


class BranchCase(BaseModel):
    """One way out of a branch: on a rule, or on the previous wait's outcome."""

    model_config = ConfigDict(extra="forbid")

    when: dict[str, object] | None = None
    outcome: (
        Literal["replied", "activity", "order", "call_answered", "delivered", "timeout"] | None
    ) = None
    goto: StepId

    @model_validator(mode="after")
    def _one_condition(self) -> BranchCase:
        if (self.when is None) == (self.outcome is None):
            raise ValueError("a case needs exactly one of `when` (a rule) or `outcome`")
        return self


class BranchStep(_Step):
    """Jump to the first case that holds, else to `otherwise`."""

    type: Literal["branch"]
    cases: list[BranchCase] = Field(min_length=1, max_length=20)
    otherwise: StepId = END


class SetStatusStep(_Step):
    """Move the customer in the lifecycle."""

    type: Literal["set_status"]
    status: Literal["active", "warm", "cold", "lost"]


class CrmActionStep(_Step):
    """Ask the CRM to do something (e.g. `contract.cancel_requested`)."""

    type: Literal["crm_action"]
    action: Annotated[str, Field(pattern=r"^[a-z_]+\.[a-z_]+$")]
    data: dict[str, object] = Field(default_factory=dict)


Step = Annotated[
    SendStep | CallTaskStep | WaitStep | BranchStep | SetStatusStep | CrmActionStep,
    Field(discriminator="type"),
]


class Arm(BaseModel):
    """One arm of an experiment: its own steps, chosen with `weight`."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")]
    weight: float = Field(gt=0)
    steps: list[Step] = Field(min_length=1, max_length=50)


class Experiment(BaseModel):
    """Split the audience into arms, keeping `holdout` as an untouched control group."""

    model_config = ConfigDict(extra="forbid")

    holdout: float = Field(default=0.0, ge=0, lt=1)
    arms: list[Arm] = Field(min_length=1, max_length=10)
    window_days: int = Field(default=30, ge=1, le=365)


class CampaignDefinition(BaseModel):
    """A whole campaign as people write it."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,127}$")]
    description: str = ""
    enabled: bool = True
    schedule: str
    occurrence: Occurrence = "once"
    audience: dict[str, object]
    steps: list[Step] = Field(default_factory=list, max_length=50)
    experiment: Experiment | None = None

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        if not croniter.is_valid(value):
            raise ValueError(f"{value!r} is not a cron expression (e.g. '0 10 * * *')")
        return value

    def journeys(self) -> dict[str, list[Any]]:
        """Step lists by arm name (`default` without an experiment)."""
        if self.experiment is None:
            return {"default": list(self.steps)}
        return {arm.name: list(arm.steps) for arm in self.experiment.arms}


class ValidCampaign:
    """A definition that passed every check, with its compiled rules."""

    def __init__(self, definition: CampaignDefinition, rules: dict[str, Rule]) -> None:
        self.definition = definition
        self.audience = rules["audience"]
        self.rules = rules  # "audience" and "<journey>.<step id>.cases[i]" → Rule


def _pydantic_path(location: tuple[int | str, ...]) -> str:
    path = ""
    for part in location:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part in {"send", "call_task", "wait", "branch", "set_status", "crm_action"}:
            continue  # the discriminator's own level says nothing to a person
        else:
            path += f".{part}" if path else str(part)
    return path


def _check_steps(steps: list[Any], prefix: str, rules: dict[str, Rule]) -> None:
    ids: dict[str, int] = {}
    for index, step in enumerate(steps):
        if step.id in ids or step.id == END:
            raise DefinitionError(f"{prefix}[{index}].id", f"step id {step.id!r} is used twice")
        ids[step.id] = index
    for index, step in enumerate(steps):
        if not isinstance(step, BranchStep):
            continue
        for case_index, case in enumerate(step.cases):
            path = f"{prefix}[{index}].cases[{case_index}]"
            if case.goto != END and case.goto not in ids:
                raise DefinitionError(f"{path}.goto", f"no step {case.goto!r} in this journey")
            if case.when is not None:
                rules[f"{prefix}.{step.id}.cases[{case_index}]"] = validate_rule(
                    case.when, path=f"{path}.when"
                )
        if step.otherwise != END and step.otherwise not in ids:
            raise DefinitionError(
                f"{prefix}[{index}].otherwise", f"no step {step.otherwise!r} in this journey"
            )


def validate_definition(raw: object) -> ValidCampaign:
    """Parse and check a definition; DefinitionError names the exact path of a problem."""
    if not isinstance(raw, dict):
        raise DefinitionError("campaign", "a definition is a mapping")
    try:
        definition = CampaignDefinition.model_validate(raw)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        raise DefinitionError(
            _pydantic_path(tuple(error["loc"])) or "campaign", error["msg"]
        ) from exc
    rules: dict[str, Rule] = {}
    try:
        rules["audience"] = validate_rule(definition.audience, path="audience")
        if definition.experiment is None:
            if not definition.steps:
                raise DefinitionError("steps", "a campaign needs at least one step")
            _check_steps(definition.steps, "steps", rules)
        else:
            if definition.steps:
                raise DefinitionError("steps", "with an experiment, steps belong to its arms")
            names = [arm.name for arm in definition.experiment.arms]
            if len(set(names)) != len(names):
                raise DefinitionError("experiment.arms", "arm names must be unique")
            for index, arm in enumerate(definition.experiment.arms):
                _check_steps(arm.steps, f"experiment.arms[{index}].steps", rules)
    except RuleError as exc:
        raise DefinitionError(exc.path, exc.message) from exc
    return ValidCampaign(definition, rules)
