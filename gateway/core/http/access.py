"""Whose calls, extensions and tasks a caller may see and act on.

Operators see and act on their own only: the extensions their agent has, the calls
that rang or reached one of them (or were recorded as theirs), the tasks assigned to
them. Supervisors read everything but act like operators, on their own. Admins see and
act on everything; the CRM's server reads every call and originates (within the
destination allow-list, gateway/calls/originate.py). The WebSocket keeps to the same
extensions (gateway/live/http.py).
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, Select, and_, exists, false, or_, select, union
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.core.db.models import Agent, AgentExtension, Call, CallLeg, Task
from gateway.core.db.states import CallState
from gateway.core.http.auth import Principal
from gateway.core.http.problems import Forbidden

# Act only for themselves (their own extensions, calls and tasks), whatever they read.
SELF_ONLY = frozenset({"operator", "supervisor"})
# Read every call and task; operators read their own only.
READ_ALL = frozenset({"admin", "supervisor", "crm"})


def own_extensions(agent_id: str) -> Select[str]:
    """The extensions of the agent with CRM id `agent_id` (a subquery)."""
    return (
        select(AgentExtension.extension)
        .join(Agent, Agent.id == AgentExtension.agent_id)
        .where(Agent.agent_id == agent_id)
    )


async def owns_extension(session: AsyncSession, principal: Principal, extension: str) -> bool:
    """Whether `extension` belongs to the caller's agent (admins: every extension)."""
    if principal.role == "admin":
        return True
    if principal.role not in SELF_ONLY or not principal.agent_id:
        return False
    query = own_extensions(principal.agent_id).where(AgentExtension.extension == extension)
    return (await session.execute(query)).first() is not None


def _own_call(agent_id: str | None) -> ColumnElement[bool]:
    """Calls recorded as the agent's, or that rang or reached one of its extensions
    (a leg: a transfer's second operator took part too)."""
    if not agent_id:
        return false()
    extensions = own_extensions(agent_id).scalar_subquery()
    return or_(
        Call.agent_id == agent_id,
        Call.extension.in_(extensions),
        exists().where(CallLeg.call_id == Call.id, CallLeg.extension.in_(extensions)),
    )


async def visible_calls(
    session: AsyncSession,
    query: Select[Call],
    principal: Principal,
    *,
    after: str | None,
    limit: int,
) -> Select[Call]:
    """`query` (calls, filtered) narrowed to what the caller may read, for one page of
    `limit` rows newest first after the cursor `after`."""
    if principal.role in READ_ALL:
        return query
    agent_id = principal.agent_id
    if not agent_id:
        return query.where(false())
    # One OR of the three ways a call is the operator's made PostgreSQL walk the whole
    # table, newest first, for an operator with few calls (its estimate of the OR is
    # half the table): 110 ms a page on 200,000 calls (bench/bench_call_listing.py).
    # Each way alone is an index lookup; the page is the newest `limit` of the union
    # of each way's newest `limit`, the cursor and filters applied in each. The
    # extensions go in as values, not a subquery: only then does the planner know how
    # many calls they have (an unknown one looks average, and it walked the table).
    extensions = list((await session.scalars(own_extensions(agent_id))).all())

    def newest(ids: Select[str]) -> Select[str]:
        if query.whereclause is not None:
            ids = ids.where(query.whereclause)
        if after is not None:
            ids = ids.where(Call.id < after)
        return select(ids.order_by(Call.id.desc()).limit(limit).subquery().c.id)

    ways = union(
        newest(select(Call.id).where(Call.extension.in_(extensions))),
        newest(select(Call.id).where(Call.agent_id == agent_id)),
        newest(
            select(Call.id)
            .join(CallLeg, CallLeg.call_id == Call.id)
            .where(CallLeg.extension.in_(extensions))
            .distinct()
        ),
    )
    return select(Call).where(Call.id.in_(ways))


def _unattributed_live_call() -> ColumnElement[bool]:
    """A call still ringing: no extension has taken it yet.

    Which extensions it rings is known only to the instance holding the AMI link (the
    rows get the extension on answer and the legs at the end), and every operator it
    rings may act on its pop meanwhile (report an unknown caller, pick a topic).
    """
    return and_(Call.state != CallState.ENDED, Call.extension.is_(None), Call.agent_id.is_(None))


async def ensure_own_call(session: AsyncSession, principal: Principal, call_id: str) -> None:
    """Refuse (403) acting on a call that is not the operator's or supervisor's own."""
    if principal.role not in SELF_ONLY:
        return
    mine = or_(_own_call(principal.agent_id), _unattributed_live_call())
    query = select(Call.id).where(Call.id == call_id, mine)
    if (await session.execute(query)).first() is None:
        exists_at_all = (await session.execute(select(Call.id).where(Call.id == call_id))).first()
        if exists_at_all is not None:
            raise Forbidden(f"call {call_id} is not one of yours")


def visible_tasks(query: Select[Task], principal: Principal) -> Select[Task]:
    """`query` over tasks narrowed to what the caller may read."""
    if principal.role in READ_ALL:
        return query
    return query.where(Task.assignee == (principal.agent_id or ""), Task.assignee.is_not(None))


def ensure_own_task(principal: Principal, task: Task) -> None:
    """Refuse (403) acting on a task assigned to someone else (or to nobody)."""
    if principal.role in SELF_ONLY and (
        not principal.agent_id or task.assignee != principal.agent_id
    ):
        raise Forbidden(f"task {task.id} is not assigned to you")
