"""Whether the payment a `payment` journey is about is still due: reminders stop once paid.

Such a journey's occurrence is the due date it was enrolled for; it covers every payment
of the customer due that day (as `payment_amount` adds them up), so it goes on while
any of them is still due. Looked up for a whole batch of enrollments in one query.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.campaigns.journey import Journey
from gateway.core.db.models import Enrollment, Payment
from gateway.core.db.states import PaymentStatus


def _due_date(occurrence: str) -> date | None:
    try:
        return date.fromisoformat(occurrence)
    except ValueError:
        return None  # "none": enrolled without a payment, nothing to check against


class DuePayments:
    """Which (customer, due date) still have a payment due; one instance per tick."""

    def __init__(self) -> None:
        self._due: dict[tuple[str, str], bool] = {}

    async def prefetch(
        self, session: AsyncSession, batch: Sequence[tuple[Enrollment, Journey]]
    ) -> None:
        """Look up the payment journeys of a batch in one query."""
        keys = {
            (enrollment.customer_id, enrollment.occurrence)
            for enrollment, journey in batch
            if journey.per_payment and _due_date(enrollment.occurrence) is not None
        }
        if not keys:
            return
        rows = await session.execute(
            select(Payment.customer_id, Payment.due_date)
            .where(
                Payment.customer_id.in_(sorted({customer for customer, _ in keys})),
                Payment.status == PaymentStatus.DUE,
            )
            .distinct()
        )
        due = {(customer, day.isoformat()) for customer, day in rows.all()}
        for key in keys:
            self._due[key] = key in due

    async def still_due(self, session: AsyncSession, enrollment: Enrollment) -> bool:
        """False once every payment the enrollment is for has been paid."""
        day = _due_date(enrollment.occurrence)
        if day is None:
            return True
        key = (enrollment.customer_id, enrollment.occurrence)
        if key not in self._due:
            found = await session.scalar(
                select(Payment.id)
                .where(
                    Payment.customer_id == enrollment.customer_id,
                    Payment.due_date == day,
                    Payment.status == PaymentStatus.DUE,
                )
                .limit(1)
            )
            self._due[key] = found is not None
        return self._due[key]
