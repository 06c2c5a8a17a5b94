"""Customers: search, card, timeline, lifecycle."""
