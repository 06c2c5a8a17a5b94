"""Who may handle what: each partner's rule, evaluated in Python or compiled to SQL."""

from __future__ import annotations

from collections.abc import Collection, Hashable, Sequence
from dataclasses import fields
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.allocation.model import Contact, PartnerTerms
from gateway.core.db.models import Customer
from gateway.core.rules import CustomerFacts, evaluate, segment

# Customer ids per IN (...) list: well below SQLite's and asyncpg's parameter limits.
_CHUNK = 5_000
_FACT_FIELDS = tuple(
    f.name
    for f in fields(CustomerFacts)
    if f.name not in ("customer_id", "attributes", "topic_calls_30d", "last_contact_days")
)


def eligible_in_python(
    contacts: Sequence[Contact], partners: Sequence[PartnerTerms]
) -> list[list[int]]:
    """For each contact, the indexes of the partners whose rule holds for its facts."""
    # Many contacts share their facts (same region, products, age…): evaluate once each.
    seen: dict[Hashable, list[int]] = {}
    out: list[list[int]] = []
    for contact in contacts:
        key = _facts_key(contact.facts)
        answer = seen.get(key)
        if answer is None:
            answer = [
                index
                for index, partner in enumerate(partners)
                if partner.rule is None or evaluate(partner.rule, contact.facts)
            ]
            seen[key] = answer
        out.append(answer)
    return out


def _facts_key(facts: CustomerFacts) -> Hashable:
    """Everything a rule can read, minus the customer id, as one hashable value."""
    values = [getattr(facts, name) for name in _FACT_FIELDS]
    for name in ("attributes", "topic_calls_30d", "last_contact_days"):
        values.append(tuple(sorted((k, repr(v)) for k, v in getattr(facts, name).items())))
    return tuple(values)


async def eligible_customers(
    session: AsyncSession,
    partners: Sequence[PartnerTerms],
    customer_ids: Collection[str],
    as_of: datetime,
    *,
    timezone: str,
) -> list[set[str]]:
    """For each partner, which of these (live) customers its rule selects as of `as_of`.

    One SQL query per partner and chunk: the rule compiled by the campaign segment
    compiler, restricted to the customers that have an open contact.
    """
    ids = sorted(set(customer_ids))
    chunks = [ids[start : start + _CHUNK] for start in range(0, len(ids), _CHUNK)]
    out: list[set[str]] = []
    for partner in partners:
        selected: set[str] = set()
        for chunk in chunks:
            if partner.rule is None:
                query = select(Customer.id).where(Customer.deleted_at.is_(None))
            else:
                query = segment(session, partner.rule, as_of, timezone=timezone)
            query = query.where(Customer.id.in_(chunk))
            selected.update((await session.scalars(query)).all())
        out.append(selected)
    return out
