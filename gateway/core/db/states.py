"""The closed sets of states stored in rows, one `StrEnum` each.

A member is a `str` equal to its value, so rows keep exactly today's text (no migration)
and JSON output is unchanged; code compares and writes members, never bare literals.
The kernel owns them because several features and boundaries read the same rows.
"""

from __future__ import annotations

from enum import StrEnum


class ContactStatus(StrEnum):
    """Where an outbound contact (`outbound_contacts.status`) stands in the send pipeline."""

    PENDING = "pending"
    DEFERRED = "deferred"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"
    SKIPPED = "skipped"
    UNKNOWN = "unknown"


# Waiting to be claimed by the send worker (the scheduler's "due" states).
DUE_CONTACT_STATES = (ContactStatus.PENDING, ContactStatus.DEFERRED)
# The provider took it: what rules and replies count as "sent".
SENT_CONTACT_STATES = (ContactStatus.SENT, ContactStatus.DELIVERED)


class EnrollmentState(StrEnum):
    """A customer's position in a campaign journey (`enrollments.state`)."""

    ACTIVE = "active"
    WAITING = "waiting"
    DONE = "done"
    HOLDOUT = "holdout"
    STOPPED = "stopped"
    FAILED = "failed"


# An enrollment the engine still advances.
LIVE_ENROLLMENT_STATES = (EnrollmentState.ACTIVE, EnrollmentState.WAITING)


class CallState(StrEnum):
    """A call record's state (`calls.state`); it only moves forward."""

    ORIGINATING = "originating"  # click-to-call: asked of the PBX, no event seen yet
    RINGING = "ringing"
    ANSWERED = "answered"
    ENDED = "ended"


class TaskStatus(StrEnum):
    """An operator's or partner's task (`tasks.status`)."""

    OPEN = "open"
    DONE = "done"
    CANCELLED = "cancelled"


class CustomerStatus(StrEnum):
    """A customer's status (`customers.status`): the lifecycle moves the first four,
    `cancelled` belongs to the CRM."""

    ACTIVE = "active"
    WARM = "warm"
    COLD = "cold"
    LOST = "lost"
    CANCELLED = "cancelled"


class PaymentStatus(StrEnum):
    """A scheduled payment (`payments.status`), as the CRM reports it."""

    DUE = "due"
    PAID = "paid"


class OutboxState(StrEnum):
    """A CRM outbox item (`crm_outbox.state`): retried while pending, dead when given up."""

    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"
