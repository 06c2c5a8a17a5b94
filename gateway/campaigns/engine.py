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
- `send` and `call_task` of an `occurrence: payment` journey stop it (`stopped`) once
  every payment due on its date is paid (`due_payments`).

Journeys, states and keys are in `journey`, the batched inserts in `effects`, and the
lookup of awaited events in `awaited`.

Steps after a wait run *as of the moment the wait ended* (its deadline, or the event),
not the tick that noticed it: a replayed month gives the same history whether it was
ticked every minute or once a day.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.campaigns.awaited import AwaitedEvents
from gateway.campaigns.definition import (
    END,
    BranchStep,
    CallTaskStep,
    CrmActionStep,
    SendStep,
    SetStatusStep,
    WaitStep,
    parse_duration,
)
from gateway.campaigns.due_payments import DuePayments
from gateway.campaigns.effects import Effects
from gateway.campaigns.journey import (
    Journey,
    JourneyError,
    action_event_id,
    contact_key,
    task_id_for,
)
from gateway.core.clock import as_utc, isoformat_z
from gateway.core.db.models import Customer, Enrollment
from gateway.core.db.states import (
    LIVE_ENROLLMENT_STATES,
    ContactStatus,
    EnrollmentState,
    TaskStatus,
)
from gateway.core.db.types import new_id
from gateway.core.outbox import enqueue
from gateway.core.rules import CustomerFacts, evaluate, load_facts
from gateway.core.settings import Settings
from gateway.lifecycle.public import LifecyclePolicy, StatusLocked, apply_status

# How often a wait for events looks again; the deadline is never passed by more.
WAIT_POLL = timedelta(hours=1)
# A journey that runs this many steps without waiting is looping on branches.
MAX_STEPS = 200


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
        self.awaited = AwaitedEvents()
        self.payments = DuePayments()

    async def prefetch(
        self, session: AsyncSession, batch: Sequence[tuple[Enrollment, Journey]], as_of: datetime
    ) -> None:
        """Look up what a batch's steps will ask: awaited events, payments still due."""
        await self.awaited.prefetch(session, batch, as_of)
        await self.payments.prefetch(session, batch)

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
        if enrollment.state not in LIVE_ENROLLMENT_STATES:
            return
        due = enrollment.next_run_at
        run = _Run(enrollment, journey, min(as_of, as_utc(due)) if due else as_of, as_of)
        enrollment.context = dict(enrollment.context or {})
        for _ in range(MAX_STEPS):
            if enrollment.step == END:
                self._finish(enrollment, EnrollmentState.DONE)
                return
            step = journey.steps[journey.position(enrollment.step)]
            effects.steps += 1
            following = await self._run_step(session, run, step, effects)
            if following is None:
                return  # parked in a wait, or stopped
            enrollment.step = following
            enrollment.state = EnrollmentState.ACTIVE
        raise JourneyError(
            f"{journey.campaign_name}: more than {MAX_STEPS} steps without a wait (a loop?)"
        )

    async def _run_step(
        self, session: AsyncSession, run: _Run, step: Any, effects: Effects
    ) -> str | None:
        """Do one step; the id of the step to go on with, or None to stop here."""
        if await self._payment_paid(session, run, step):
            run.enrollment.context["stopped"] = "payment paid"
            self._finish(run.enrollment, EnrollmentState.STOPPED)
            return None
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

    async def _payment_paid(self, session: AsyncSession, run: _Run, step: Any) -> bool:
        """Whether this is a contact about a payment that is no longer due."""
        if not run.journey.per_payment or not isinstance(step, SendStep | CallTaskStep):
            return False
        return not await self.payments.still_due(session, run.enrollment)

    @staticmethod
    def _next_id(journey: Journey, step_id: str) -> str:
        position = journey.position(step_id) + 1
        return journey.steps[position].id if position < len(journey.steps) else END

    @staticmethod
    def _finish(enrollment: Enrollment, state: EnrollmentState) -> None:
        enrollment.state = state
        enrollment.step = END if state == EnrollmentState.DONE else enrollment.step
        enrollment.next_run_at = None
        enrollment.wait_started_at = None

    async def _customer(self, session: AsyncSession, run: _Run) -> Customer | None:
        """The live customer, loaded once; None (and the journey stopped) when gone."""
        if run.customer is None:
            customer = await session.get(Customer, run.enrollment.customer_id)
            if customer is None or customer.deleted_at is not None:
                run.enrollment.context["stopped"] = "customer deleted"
                self._finish(run.enrollment, EnrollmentState.STOPPED)
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
                "status": ContactStatus.PENDING,
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
                "status": TaskStatus.OPEN,
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
                session,
                customer,
                step.status,
                run.now,
                reason,
                self.settings.section(LifecyclePolicy),
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
        if enrollment.state != EnrollmentState.WAITING or enrollment.wait_started_at is None:
            enrollment.state = EnrollmentState.WAITING
            enrollment.wait_started_at = run.now
        started = as_utc(enrollment.wait_started_at)
        deadline = started + parse_duration(step.duration or step.timeout or "0m")
        outcome: str | None = None
        ended_at = deadline
        if step.until:
            found = await self.awaited.first(
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
