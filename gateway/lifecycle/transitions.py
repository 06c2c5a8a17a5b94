"""Status moves: one customer (`apply_status`) or everyone due at a tick (`refresh_statuses`).

Every move writes a `StatusChange`, updates `status`/`status_changed_at`, resets the call
cadence (`next_contact_at` = the move's time when the new status has a cadence, else
NULL) and enqueues `customer.status_changed` for the CRM in the same transaction.

A move is stamped with the moment its rule became true, not the tick's time, so the
history is the same however often the scheduler ticks:

1. complaint → cold: a complaint after the last status change moves an active or warm
   customer to cold at the complaint's time (the earliest such complaint). A lost
   customer stays lost: a complaint is not a purchase.
2. activity → active: activity (`customers.last_activity_at`) after the last status
   change and within `warm_after_days` moves a warm, cold or lost customer to active at
   that activity's time; from lost this is a *reactivation*. Applied after rule 1, so a
   complaint followed by an order in the same tick ends active, in time order.
3. inactivity: with the silence measured from `last_activity_at` (or, for a customer
   who never had any, from when we first stored them), a customer moves down to the
   deepest status whose threshold the silence has crossed, stamped at the crossing (never
   before their last status change). Inactivity never moves a customer up.

Rules select candidates in SQL, keyset-paged by id in batches of `policy.batch_size`, so a
million customers are never loaded at once; only the customers that move reach Python.
Ids of status changes and events derive from (customer, time, status), so a tick that is
repeated — or raced by a second instance — adds nothing twice. Activity later than
`as_of` is ignored, so a tick can be replayed `--as-of` a past time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import BindParameter, Select, Table, bindparam, func, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.core.clock import as_utc, isoformat_z
from gateway.core.db.dialect import insert_for
from gateway.core.db.models import Complaint, Customer, StatusChange
from gateway.core.db.models.customers import CUSTOMER_STATUSES
from gateway.core.db.states import CustomerStatus
from gateway.core.db.types import UtcDateTime
from gateway.core.outbox import Activity, enqueue_many
from gateway.lifecycle.policy import RANK, LifecyclePolicy

EVENT_TYPE = "customer.status_changed"
# Before any real timestamp: "no status change yet" compares as older than everything.
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
AnySelect = Select[*tuple[Any, ...]]


class LifecycleError(Exception):
    """Base of this package's errors."""


class InvalidStatus(LifecycleError, ValueError):
    """A status that is not one of the customer statuses."""


class StatusLocked(LifecycleError):
    """The customer is cancelled or deleted: only the CRM may change that."""


@dataclass(frozen=True)
class Move:
    """One status change to record."""

    customer_id: str
    external_id: str
    from_status: str | None
    to_status: str
    at: datetime
    reason: str


@dataclass
class RefreshCounts:
    """What one `refresh_statuses` tick did: moves into each status, and reactivations."""

    moves: dict[str, int] = field(default_factory=lambda: dict.fromkeys(RANK, 0))
    reactivations: int = 0
    complaints: int = 0

    @property
    def total(self) -> int:
        """Every move made."""
        return sum(self.moves.values())

    def add(self, move: Move) -> None:
        """Count one move."""
        self.moves[move.to_status] += 1
        if move.from_status == CustomerStatus.LOST and move.to_status == CustomerStatus.ACTIVE:
            self.reactivations += 1
        if move.reason == "complaint":
            self.complaints += 1


def change_id(customer_id: str, at: datetime, to_status: str) -> str:
    """Deterministic StatusChange id, so a repeated move collides instead of doubling."""
    digest = hashlib.sha256(f"{customer_id}|{isoformat_z(at)}|{to_status}".encode()).hexdigest()
    return f"stc_{digest[:24]}"


def event_id(customer_id: str, at: datetime, to_status: str) -> str:
    """Deterministic outbox event id of a move."""
    return f"{EVENT_TYPE}:{customer_id}:{isoformat_z(at)}:{to_status}"


def _next_contact(to_status: str, at: datetime, policy: LifecyclePolicy | None) -> datetime | None:
    cadence = policy.call_every_days if policy is not None else LifecyclePolicy().call_every_days
    return at if to_status in cadence else None


async def _record(session: AsyncSession, moves: Sequence[Move], now: datetime) -> None:
    """The StatusChange rows and CRM events of moves already applied to the customers."""
    if not moves:
        return
    rows = [
        {
            "id": change_id(m.customer_id, m.at, m.to_status),
            "customer_id": m.customer_id,
            "from_status": m.from_status,
            "to_status": m.to_status,
            "at": m.at,
            "reason": m.reason,
        }
        for m in moves
    ]
    await session.execute(
        insert_for(session)(StatusChange).on_conflict_do_nothing(index_elements=["id"]), rows
    )
    await enqueue_many(
        session,
        [
            Activity(
                type=EVENT_TYPE,
                data={
                    "external_id": m.external_id,
                    "from": m.from_status,
                    "to": m.to_status,
                    "at": m.at,
                    "reason": m.reason,
                },
                ordering_key=m.customer_id,
                occurred_at=m.at,
                event_id=event_id(m.customer_id, m.at, m.to_status),
            )
            for m in moves
        ],
        now,
    )


async def apply_status(
    session: AsyncSession,
    customer: Customer,
    new_status: str,
    at: datetime,
    reason: str,
    policy: LifecyclePolicy | None = None,
) -> bool:
    """Move one customer to `new_status` at `at`; False (and nothing written) if already there."""
    if new_status not in CUSTOMER_STATUSES:
        raise InvalidStatus(f"status: {new_status!r} is not one of {', '.join(CUSTOMER_STATUSES)}")
    if not reason or len(reason) > 128:
        raise LifecycleError("reason: must be 1 to 128 characters")
    at = as_utc(at)
    if customer.status == new_status:
        return False
    if customer.deleted_at is not None or customer.status == CustomerStatus.CANCELLED:
        raise StatusLocked(f"customer {customer.id} is {customer.status}; only the CRM moves it")
    move = Move(customer.id, customer.external_id, customer.status, new_status, at, reason)
    customer.status = new_status
    customer.status_changed_at = at
    customer.next_contact_at = _next_contact(new_status, at, policy)
    customer.updated_at = at
    await session.flush()
    await _record(session, [move], at)
    return True


async def _apply_moves(
    session: AsyncSession, moves: list[Move], policy: LifecyclePolicy, now: datetime
) -> None:
    """Apply a batch of moves with one executemany, guarded by the status each was read in."""
    table = cast(Table, Customer.__table__)
    statement = (
        update(table)
        .where(table.c.id == bindparam("b_id"), table.c.status == bindparam("b_from"))
        .values(
            status=bindparam("b_to"),
            status_changed_at=bindparam("b_at", type_=UtcDateTime()),
            next_contact_at=bindparam("b_next", type_=UtcDateTime()),
            updated_at=bindparam("b_now", type_=UtcDateTime()),
        )
    )
    await session.execute(
        statement,
        [
            {
                "b_id": m.customer_id,
                "b_from": m.from_status,
                "b_to": m.to_status,
                "b_at": m.at,
                "b_next": _next_contact(m.to_status, m.at, policy),
                "b_now": now,
            }
            for m in moves
        ],
        execution_options={"synchronize_session": False},
    )


def _at(value: datetime) -> BindParameter[datetime]:
    return literal(value, UtcDateTime())


def _complaint_candidates(as_of: datetime) -> AnySelect:
    """Active or warm customers with a complaint since their last status change."""
    since = func.coalesce(Customer.status_changed_at, _at(_EPOCH))
    return (
        select(
            Customer.id,
            Customer.external_id,
            Customer.status,
            func.min(Complaint.at).label("at"),
        )
        .join(Complaint, Complaint.customer_id == Customer.id)
        .where(
            Customer.status.in_((CustomerStatus.ACTIVE, CustomerStatus.WARM)),
            Customer.deleted_at.is_(None),
            Complaint.at > since,
            Complaint.at <= _at(as_of),
        )
        .group_by(Customer.id, Customer.external_id, Customer.status)
    )


def _activity_candidates(as_of: datetime, policy: LifecyclePolicy) -> AnySelect:
    """Warm, cold or lost customers with recent activity since their last status change."""
    since = func.coalesce(Customer.status_changed_at, _at(_EPOCH))
    return select(
        Customer.id, Customer.external_id, Customer.status, Customer.last_activity_at
    ).where(
        Customer.status.in_((CustomerStatus.WARM, CustomerStatus.COLD, CustomerStatus.LOST)),
        Customer.deleted_at.is_(None),
        Customer.last_activity_at > since,
        Customer.last_activity_at <= _at(as_of),
        Customer.last_activity_at > _at(as_of - timedelta(days=policy.warm_after_days)),
    )


def _inactivity_candidates(as_of: datetime, policy: LifecyclePolicy) -> AnySelect:
    """Customers whose silence has crossed a threshold deeper than their status."""
    ref = func.coalesce(Customer.last_activity_at, Customer.created_at)
    warm = _at(as_of - timedelta(days=policy.warm_after_days))
    cold = _at(as_of - timedelta(days=policy.cold_after_days))
    lost = _at(as_of - timedelta(days=policy.lost_after_days))
    return select(
        Customer.id,
        Customer.external_id,
        Customer.status,
        ref.label("ref"),
        Customer.status_changed_at,
    ).where(
        Customer.deleted_at.is_(None),
        ((Customer.status == CustomerStatus.ACTIVE) & (ref <= warm))
        | ((Customer.status == CustomerStatus.WARM) & (ref <= cold))
        | ((Customer.status == CustomerStatus.COLD) & (ref <= lost)),
    )


def _inactivity_move(row: Any, as_of: datetime, policy: LifecyclePolicy) -> Move:
    ref = as_utc(row.ref)
    silence = as_of - ref
    for status, days in (
        ("lost", policy.lost_after_days),
        ("cold", policy.cold_after_days),
        ("warm", policy.warm_after_days),
    ):
        if silence >= timedelta(days=days):
            at = ref + timedelta(days=days)
            if row.status_changed_at is not None:
                at = max(at, as_utc(row.status_changed_at))
            return Move(row.id, row.external_id, row.status, status, at, "inactivity")
    raise AssertionError("selected without crossing a threshold")  # pragma: no cover


async def _run_rule(
    session: AsyncSession,
    query: AnySelect,
    to_move: Any,
    policy: LifecyclePolicy,
    as_of: datetime,
    counts: RefreshCounts,
) -> None:
    """Page through a rule's candidates by id and apply their moves batch by batch."""
    after = ""
    while True:
        page = query.where(Customer.id > after).order_by(Customer.id).limit(policy.batch_size)
        rows = (await session.execute(page)).all()
        if not rows:
            return
        moves = [to_move(row) for row in rows]
        await _apply_moves(session, moves, policy, as_of)
        await _record(session, moves, as_of)
        for move in moves:
            counts.add(move)
        after = rows[-1].id


async def refresh_statuses(
    session: AsyncSession, as_of: datetime, policy: LifecyclePolicy
) -> RefreshCounts:
    """Apply the complaint, activity and inactivity rules as of `as_of`; counts the moves."""
    as_of = as_utc(as_of)
    counts = RefreshCounts()
    await session.flush()  # the statements below bypass the unit of work
    if policy.complaint_to_cold:
        await _run_rule(
            session,
            _complaint_candidates(as_of),
            lambda r: Move(r.id, r.external_id, r.status, "cold", as_utc(r.at), "complaint"),
            policy,
            as_of,
            counts,
        )
    await _run_rule(
        session,
        _activity_candidates(as_of, policy),
        lambda r: Move(
            r.id,
            r.external_id,
            r.status,
            CustomerStatus.ACTIVE,
            as_utc(r.last_activity_at),
            "reactivation" if r.status == CustomerStatus.LOST else "activity",
        ),
        policy,
        as_of,
        counts,
    )
    await _run_rule(
        session,
        _inactivity_candidates(as_of, policy),
        lambda r: _inactivity_move(r, as_of, policy),
        policy,
        as_of,
        counts,
    )
    return counts
