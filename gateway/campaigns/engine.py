"""The journey engine: move one enrollment through its steps until a wait or the end.

An enrollment holds the id of the step it is at (`step`), whether it is running
(`active`), parked in a wait (`waiting`) or finished, and when it is next due
(`next_run_at`). `advance` runs steps from there at the time `as_of`:

- `send` only *writes* the outbound contact (idempotency key
  `campaign:<campaign>:<customer>:<step>:<occurrence>`, a repeat collides and writes
  nothing); the send pipeline claims and sends it. A loop back to the same send in one
  occurrence therefore sends nothing twice.
- `call_task` writes a task with an id derived from the enrollment and step.
- `crm_action` and `set_status` enqueue for the CRM with deterministic event ids.
- `wait` parks the enrollment. A duration ends at `wait_started_at + duration`; a wait
  `until` events ends at the first of them that happened after `wait_started_at` (and
  not after `as_of`), looked up when the enrollment is due (every `WAIT_POLL` at most),
  or at its timeout with the outcome `timeout`. The outcome is kept in `context` for the
  next `branch`.
- `branch` takes the first case whose rule holds (facts at that moment) or whose
  outcome is the last wait's.

Steps after a wait run *as of the moment the wait ended* (its deadline, or the event),
not the tick that noticed it: a replayed month gives the same history whether it was
ticked every minute or once a day.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from crm_sync.outbox import enqueue
from gateway.campaigns.definition import (
    END,
    BranchStep,
    CallTaskStep,
    CrmActionStep,
    SendStep,
    SetStatusStep,
    ValidCampaign,
    WaitStep,
    parse_duration,
)
from gateway.campaigns.rules import CustomerFacts, Rule, evaluate, load_facts
from gateway.clock import as_utc, isoformat_z
from gateway.db.models import Activity, Call, Customer, Enrollment, OutboundContact, Task
from gateway.db.types import new_id
from gateway.lifecycle.transitions import StatusLocked, apply_status
from gateway.settings import Settings

ACTIVE, WAITING, DONE, HOLDOUT, STOPPED, FAILED = (
    "active",
    "waiting",
    "done",
    "holdout",
    "stopped",
    "failed",
)
LIVE_STATES = (ACTIVE, WAITING)
# How often a wait for events looks again; the deadline is never passed by more.
WAIT_POLL = timedelta(hours=1)
# A journey that runs this many steps without waiting is looping on branches.
MAX_STEPS = 200
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
    if definition.experiment is None:
        if arm != "default":
            raise JourneyError(f"{definition.name} has no arm {arm!r}")
        return Journey(
            campaign_id, definition.name, arm, tuple(definition.steps), "steps", valid.rules
        )
    for number, candidate in enumerate(definition.experiment.arms):
        if candidate.name == arm:
            prefix = f"experiment.arms[{number}].steps"
            return Journey(
                campaign_id, definition.name, arm, tuple(candidate.steps), prefix, valid.rules
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


@dataclass
class Effects:
    """Rows a batch of advances writes together (one statement each, not one per row)."""

    contacts: list[dict[str, Any]] = field(default_factory=list)
    tasks: list[dict[str, Any]] = field(default_factory=list)
    steps: int = 0
    status_moves: int = 0
    crm_actions: int = 0

    async def flush(self, session: AsyncSession) -> tuple[int, int]:
        """Insert the collected contacts and tasks; returns how many of each were new."""
        insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
        created = [0, 0]
        for slot, (model, rows, key) in enumerate(
            ((OutboundContact, self.contacts, "idempotency_key"), (Task, self.tasks, "id"))
        ):
            if not rows:
                continue
            result = await session.execute(
                insert(model).on_conflict_do_nothing(index_elements=[key]).returning(model.id),  # type: ignore[attr-defined]
                rows,
            )
            created[slot] = len(result.all())
            rows.clear()
        return created[0], created[1]


@dataclass
class _Run:
    """One advance in progress: where it is and at what moment."""

    enrollment: Enrollment
    journey: Journey
    now: datetime
    as_of: datetime
    customer: Customer | None = None
    facts: CustomerFacts | None = None


class Engine:
    """Runs journeys; one per tick (it holds nothing but settings)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # (enrollment, event, wait start, as_of) → earliest such event, or None
        self._events: dict[tuple[str, str, datetime, datetime], datetime | None] = {}

    async def advance(
        self,
        session: AsyncSession,
        enrollment: Enrollment,
        journey: Journey,
        as_of: datetime,
        effects: Effects,
    ) -> None:
        """Run the enrollment's steps due by `as_of`, until a wait that is not over or the end."""
        as_of = as_utc(as_of)
        if enrollment.state not in LIVE_STATES:
            return
        due = enrollment.next_run_at
        run = _Run(enrollment, journey, min(as_of, as_utc(due)) if due else as_of, as_of)
        enrollment.context = dict(enrollment.context or {})
        for _ in range(MAX_STEPS):
            if enrollment.step == END:
                self._finish(enrollment, DONE)
                return
            step = journey.steps[journey.position(enrollment.step)]
            effects.steps += 1
            following = await self._run_step(session, run, step, effects)
            if following is None:
                return  # parked in a wait, or stopped
            enrollment.step = following
            enrollment.state = ACTIVE
        raise JourneyError(
            f"{journey.campaign_name}: more than {MAX_STEPS} steps without a wait (a loop?)"
        )

    async def _run_step(
        self, session: AsyncSession, run: _Run, step: Any, effects: Effects
    ) -> str | None:
        """Do one step; the id of the step to go on with, or None to stop here."""
        if isinstance(step, SendStep):
            self._send(run, step, effects)
        elif isinstance(step, CallTaskStep):
            if not await self._call_task(session, run, step, effects):
                return None
        elif isinstance(step, CrmActionStep):
            if not await self._crm_action(session, run, step, effects):
                return None
        elif isinstance(step, SetStatusStep):
            if not await self._set_status(session, run, step, effects):
                return None
        elif isinstance(step, WaitStep):
            if not await self._wait(session, run, step):
                return None
        elif isinstance(step, BranchStep):
            return await self._branch(session, run, step)
        return self._next_id(run.journey, step.id)

    @staticmethod
    def _next_id(journey: Journey, step_id: str) -> str:
        position = journey.position(step_id) + 1
        return journey.steps[position].id if position < len(journey.steps) else END

    @staticmethod
    def _finish(enrollment: Enrollment, state: str) -> None:
        enrollment.state = state
        enrollment.step = END if state == DONE else enrollment.step
        enrollment.next_run_at = None
        enrollment.wait_started_at = None

    async def _customer(self, session: AsyncSession, run: _Run) -> Customer | None:
        """The live customer, loaded once; None (and the journey stopped) when gone."""
        if run.customer is None:
            customer = await session.get(Customer, run.enrollment.customer_id)
            if customer is None or customer.deleted_at is not None:
                run.enrollment.context["stopped"] = "customer deleted"
                self._finish(run.enrollment, STOPPED)
                return None
            run.customer = customer
        return run.customer

    def _send(self, run: _Run, step: SendStep, effects: Effects) -> None:
        enrollment = run.enrollment
        effects.contacts.append(
            {
                "id": new_id("msg"),
                "idempotency_key": contact_key(
                    run.journey.campaign_name,
                    enrollment.customer_id,
                    step.id,
                    enrollment.occurrence,
                ),
                "channel": step.channel,
                "customer_id": enrollment.customer_id,
                "campaign_id": run.journey.campaign_id,
                "enrollment_id": enrollment.id,
                "source": "campaign",
                "template": step.template,
                "variables": {},
                "status": "pending",
                "attempts": 0,
                "sandbox": False,
                "created_at": run.now,
                "updated_at": run.now,
            }
        )

    async def _call_task(
        self, session: AsyncSession, run: _Run, step: CallTaskStep, effects: Effects
    ) -> bool:
        customer = await self._customer(session, run)
        if customer is None:
            return False
        assignee = (
            customer.responsible_agent if step.assignee == "responsible_agent" else step.assignee
        )
        effects.tasks.append(
            {
                "id": task_id_for(run.enrollment.id, step.id, run.now),
                "kind": step.kind,
                "customer_id": customer.id,
                "assignee": assignee,
                "status": "open",
                "min_call_seconds": step.min_call_seconds,
                "priority": 0,
                "campaign_id": run.journey.campaign_id,
                "enrollment_id": run.enrollment.id,
                "created_at": run.now,
                "due_at": run.now + parse_duration(step.due_in),
            }
        )
        return True

    async def _crm_action(
        self, session: AsyncSession, run: _Run, step: CrmActionStep, effects: Effects
    ) -> bool:
        customer = await self._customer(session, run)
        if customer is None:
            return False
        name, occurrence = run.journey.campaign_name, run.enrollment.occurrence
        await enqueue(
            session,
            type=step.action,
            data={
                **step.data,
                "external_id": customer.external_id,
                "campaign": name,
                "step": step.id,
                "occurrence": occurrence,
            },
            ordering_key=customer.id,
            occurred_at=run.now,
            event_id=action_event_id(name, customer.id, step.id, occurrence),
            now=run.now,
        )
        effects.crm_actions += 1
        return True

    async def _set_status(
        self, session: AsyncSession, run: _Run, step: SetStatusStep, effects: Effects
    ) -> bool:
        customer = await self._customer(session, run)
        if customer is None:
            return False
        reason = f"campaign:{run.journey.campaign_name}"[:128]
        try:
            moved = await apply_status(
                session, customer, step.status, run.now, reason, self.settings.lifecycle
            )
        except StatusLocked:
            # Cancelled customers are the CRM's to move; the journey still goes on.
            run.enrollment.context["status_refused"] = step.id
            return True
        effects.status_moves += int(moved)
        return True

    async def _wait(self, session: AsyncSession, run: _Run, step: WaitStep) -> bool:
        """True when the wait is over (the run goes on at the moment it ended)."""
        enrollment = run.enrollment
        if enrollment.state != WAITING or enrollment.wait_started_at is None:
            enrollment.state = WAITING
            enrollment.wait_started_at = run.now
        started = as_utc(enrollment.wait_started_at)
        deadline = started + parse_duration(step.duration or step.timeout or "0m")
        outcome: str | None = None
        ended_at = deadline
        if step.until:
            found = await self._first_event(
                session, enrollment, step.until, started, min(deadline, run.as_of), run.as_of
            )
            if found is not None:
                outcome, ended_at = found
        if outcome is None and deadline <= run.as_of:
            outcome = "timeout" if step.until else "elapsed"
        if outcome is None:
            poll = deadline if not step.until else min(deadline, run.as_of + WAIT_POLL)
            enrollment.next_run_at = poll
            return False
        context = enrollment.context
        context["outcome"] = outcome
        context["outcome_at"] = isoformat_z(ended_at)
        context.setdefault("outcomes", {})[step.id] = outcome
        enrollment.wait_started_at = None
        run.now = ended_at
        run.facts = None  # facts are of a moment; that moment moved
        return True

    async def prefetch(
        self, session: AsyncSession, batch: Sequence[tuple[Enrollment, Journey]], as_of: datetime
    ) -> None:
        """Look up the awaited events of a batch's parked enrollments: one query per kind."""
        wanted: dict[str, list[Enrollment]] = {}
        for enrollment, journey in batch:
            if enrollment.state != WAITING or enrollment.wait_started_at is None:
                continue
            step = next((s for s in journey.steps if s.id == enrollment.step), None)
            if isinstance(step, WaitStep):
                for awaited in step.until:
                    wanted.setdefault(awaited, []).append(enrollment)
        for kind, enrollments in wanted.items():
            await self._lookup(session, kind, enrollments, as_of)

    async def _lookup(
        self, session: AsyncSession, event: str, enrollments: Sequence[Enrollment], as_of: datetime
    ) -> None:
        """The earliest `event` in (wait_started_at, as_of] of each enrollment, cached."""
        ids = [enrollment.id for enrollment in enrollments]
        start = Enrollment.wait_started_at
        query: Select[*tuple[Any, ...]]
        if event in ("activity", "order"):
            query = (
                select(Enrollment.id, func.min(Activity.at))
                .join(Activity, Activity.customer_id == Enrollment.customer_id)
                .where(Activity.at > start, Activity.at <= as_of)
            )
            if event == "order":
                query = query.where(Activity.kind == "order")
        elif event == "replied":
            query = (
                select(Enrollment.id, func.min(OutboundContact.replied_at))
                .join(OutboundContact, OutboundContact.customer_id == Enrollment.customer_id)
                .where(OutboundContact.replied_at > start, OutboundContact.replied_at <= as_of)
            )
        elif event == "delivered":
            # Delivery of this journey's own messages, not of anything else we sent.
            query = (
                select(Enrollment.id, func.min(OutboundContact.delivered_at))
                .join(OutboundContact, OutboundContact.enrollment_id == Enrollment.id)
                .where(OutboundContact.delivered_at > start, OutboundContact.delivered_at <= as_of)
            )
        else:  # call_answered
            query = (
                select(Enrollment.id, func.min(Call.answered_at))
                .join(Call, Call.customer_id == Enrollment.customer_id)
                .where(Call.answered_at > start, Call.answered_at <= as_of)
            )
        rows = await session.execute(query.where(Enrollment.id.in_(ids)).group_by(Enrollment.id))
        found = {enrollment_id: as_utc(at) for enrollment_id, at in rows.all() if at is not None}
        for enrollment in enrollments:
            key = (enrollment.id, event, as_utc(enrollment.wait_started_at or as_of), as_of)
            self._events[key] = found.get(enrollment.id)

    async def _first_event(
        self,
        session: AsyncSession,
        enrollment: Enrollment,
        events: Sequence[str],
        after: datetime,
        until: datetime,
        as_of: datetime,
    ) -> tuple[str, datetime] | None:
        """The earliest awaited event in (after, until], with its time."""
        if after >= until:
            return None  # the wait has only just begun: nothing can have happened in it
        best: tuple[str, datetime] | None = None
        for event in events:
            key = (enrollment.id, event, after, as_of)
            if key not in self._events:
                # The wait started in this very advance: its row is flushed, look it up.
                await session.flush()
                await self._lookup(session, event, [enrollment], as_of)
            # The earliest up to as_of; past the deadline it means none within the wait.
            at = self._events.get(key)
            if at is not None and at <= until and (best is None or at < best[1]):
                best = (event, at)
        return best

    async def _branch(self, session: AsyncSession, run: _Run, step: BranchStep) -> str | None:
        outcome = run.enrollment.context.get("outcome")
        for number, case in enumerate(step.cases):
            if case.outcome is not None:
                if case.outcome == outcome:
                    return case.goto
                continue
            rule = run.journey.rules[f"{run.journey.prefix}.{step.id}.cases[{number}]"]
            if run.facts is None:
                if await self._customer(session, run) is None:
                    return None
                run.facts = await load_facts(
                    session,
                    run.enrollment.customer_id,
                    run.now,
                    timezone=self.settings.timezone,
                )
            if evaluate(rule, run.facts):
                return case.goto
        return step.otherwise
