"""Placeholder: filled in by its feature."""

from __future__ import annotations

from aiohttp import web


def setup(app: web.Application, workers: bool) -> None:
    """Add this feature's routes (and workers when `workers`)."""
