"""What a feature (or a boundary) adds to the gateway, declared once in its `plugin.py`.

The composition root (`gateway/plugins.py`) lists the plugins; `create_app`, the CLI and
the settings class are built from that list, so adding a feature touches its own folder
and that one line.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from aiohttp import web

from gateway.core.bus import Bus
from gateway.core.cli import Subparsers
from gateway.core.db.engine import Database
from gateway.core.settings import Section, Settings

# (app, workers): add routes, background workers (cleanup_ctx), health checks.
Setup = Callable[[web.Application, bool], None]
# Adds subcommands to `switchboard`'s subparsers.
Commands = Callable[[Subparsers], None]


@dataclass(frozen=True)
class DailyJob:
    """Once-a-day work, run by one instance per local day (and by `switchboard tick`)."""

    name: str
    # Lower runs first: a job that reads another's results declares a higher order.
    order: int
    run: Callable[[Database, Settings, datetime], Awaitable[object]]


@dataclass(frozen=True)
class PeriodicJob:
    """Work run at every scheduler tick (each minute in the gateway, once per `tick`).

    It returns the fields `switchboard tick` prints (or an empty dict).
    """

    name: str
    run: Callable[[Database, Settings, datetime, Bus], Awaitable[dict[str, object]]]


def _no_setup(app: web.Application, workers: bool) -> None:
    """A plugin with nothing to serve."""


@dataclass(frozen=True)
class Plugin:
    """Everything one feature adds; each part is optional."""

    name: str
    setup: Setup = _no_setup
    commands: tuple[Commands, ...] = ()
    settings_section: type[Section] | None = None
    daily_jobs: tuple[DailyJob, ...] = ()
    periodic_jobs: tuple[PeriodicJob, ...] = ()


def add_commands(subparsers: Subparsers, plugins: tuple[Plugin, ...]) -> None:
    """Every plugin's subcommands, in the plugins' order."""
    for plugin in plugins:
        for register in plugin.commands:
            register(subparsers)
