"""File-mode eligibility at scale: each condition evaluated once per distinct value it reads.

A partner's rule is a tree of `all`/`any`/`not` over conditions, and each condition reads
one field (a region, the products, a contract age). Contacts are grouped by the value of
that field, the condition is evaluated by the reference evaluator
(`gateway.core.rules.evaluate`) on one representative of each group, and the answer
is spread to every member as a numpy mask; the tree combines the masks with and/or/not.
Groupings are shared by every condition reading the same field. The result equals
`eligible_in_python` (a property test holds it to that): contacts in one group give the
condition the same value, of the same type, so the evaluator cannot tell them apart, and
evaluating a validated condition has no side effects, so and/or need no short-circuit.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np
import numpy.typing as npt

from gateway.allocation.model import Contact, PartnerTerms
from gateway.core.rules import evaluate
from gateway.core.rules.evaluate import field_value
from gateway.core.rules.validate import AllOf, AnyOf, Condition, Not, Rule

Mask = npt.NDArray[np.bool_]
Codes = npt.NDArray[np.int64]
# (field name, parameter): what one condition reads.
Read = tuple[str, str | None]


def eligible_grouped(
    contacts: Sequence[Contact], partners: Sequence[PartnerTerms]
) -> list[list[int]]:
    """For each contact, the indexes (ascending) of the partners whose rule holds."""
    n = len(contacts)
    masks = _Masks(contacts)
    # Partner-major, so each partner's column is one contiguous write.
    allowed = np.empty((len(partners), n), dtype=np.bool_)
    for index, partner in enumerate(partners):
        allowed[index] = True if partner.rule is None else masks.of(partner.rule)
    return _rows_as_lists(allowed)


def _rows_as_lists(allowed: Mask) -> list[list[int]]:
    """Per contact, the partner indexes set in its column of `allowed`.

    Contacts with the same eligible set (common: it depends on a few facts) share one
    list, built once; callers only read these lists.
    """
    by_contact = np.packbits(np.ascontiguousarray(allowed.T), axis=1)
    indexes = np.arange(allowed.shape[0], dtype=np.int64)
    built: dict[bytes, list[int]] = {}
    out: list[list[int]] = []
    for position, key in enumerate(map(bytes, by_contact)):
        found = built.get(key)
        if found is None:
            found = built[key] = indexes[allowed[:, position]].tolist()
        out.append(found)
    return out


class _Masks:
    """Boolean masks over the contacts for rules, with each field's grouping cached.

    Leaves are not cached by condition: conditions compare equal when their values do
    (1 == True), yet the evaluator treats those differently.
    """

    def __init__(self, contacts: Sequence[Contact]) -> None:
        self.contacts = contacts
        self.groupings: dict[Read, tuple[Codes, list[int]]] = {}

    def of(self, rule: Rule) -> Mask:
        """Where `rule` holds."""
        if isinstance(rule, AllOf):
            every: Mask = np.logical_and.reduce([self.of(item) for item in rule.rules])
            return every
        if isinstance(rule, AnyOf):
            some: Mask = np.logical_or.reduce([self.of(item) for item in rule.rules])
            return some
        if isinstance(rule, Not):
            return ~self.of(rule.rule)
        return self._leaf(rule)

    def _leaf(self, condition: Condition) -> Mask:
        read = (condition.spec.name, condition.parameter)
        grouping = self.groupings.get(read)
        if grouping is None:
            grouping = self.groupings[read] = group(column(self.contacts, condition))
        codes, representatives = grouping
        answers = np.fromiter(
            (evaluate(condition, self.contacts[r].facts) for r in representatives),
            dtype=np.bool_,
            count=len(representatives),
        )
        spread: Mask = answers[codes]
        return spread


def column(contacts: Sequence[Contact], reader: Condition) -> list[Hashable]:
    """What the field has for each contact, tagged with its type (1, 1.0 and True are
    equal in Python but not to the evaluator); unhashable values by their repr."""
    return [_tagged(field_value(reader, contact.facts)) for contact in contacts]


def _tagged(value: object) -> Hashable:
    kind = type(value)
    if kind is str or kind is int or value is None:
        return (kind, value)
    try:
        hash(value)
    except TypeError:
        return (type(value), repr(value))
    return (type(value), value)


def group(values: list[Hashable]) -> tuple[Codes, list[int]]:
    """Each contact's group code and one representative contact per group."""
    first: dict[Hashable, int] = {}
    representatives: list[int] = []
    codes = []
    for position, key in enumerate(values):
        code = first.get(key)
        if code is None:
            code = first[key] = len(representatives)
            representatives.append(position)
        codes.append(code)
    return np.array(codes, dtype=np.int64), representatives
