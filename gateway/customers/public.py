"""What other features may use of customers: the caller lookup, the card, money display."""

from __future__ import annotations

from gateway.customers.schemas import CustomerCard, CustomerSummary, Match, money
from gateway.customers.service import PhoneMatch, card, find_by_phone, summary

__all__ = [
    "CustomerCard",
    "CustomerSummary",
    "Match",
    "PhoneMatch",
    "card",
    "find_by_phone",
    "money",
    "summary",
]
