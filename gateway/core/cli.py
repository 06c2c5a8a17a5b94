"""What every `switchboard` subcommand shares: its handler type, usage errors, asyncio."""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import TYPE_CHECKING, Any

from gateway.core.clock import SystemClock, TimeInputError, parse_time_input
from gateway.core.settings import Settings

# What `register(subparsers)` functions add their commands to (argparse's action is
# generic only to type checkers: subscripting it fails at run time on Python 3.11).
if TYPE_CHECKING:
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]
else:
    Subparsers = argparse._SubParsersAction
# A handler returns the exit status (0 ok, 2 bad arguments or unreadable input, 1
# otherwise, 3 partial import).
Handler = Callable[[argparse.Namespace, Settings], int]


class UsageError(Exception):
    """Bad arguments or unreadable input: exit status 2 with a message."""


def run_async(coro: Coroutine[Any, Any, int | None]) -> int:
    """Run a command's coroutine to completion and return its exit status."""
    return int(asyncio.run(coro) or 0)


def as_of_argument(args: argparse.Namespace, settings: Settings) -> datetime:
    """The `--as-of` time of a command (now when absent), in the configured time zone."""
    if not args.as_of:
        return SystemClock().now()
    try:
        return parse_time_input(args.as_of, settings.timezone)
    except TimeInputError as exc:
        raise UsageError(f"--as-of: {exc}") from exc


def print_report(data: dict[str, object], fmt: str) -> None:
    """A command's report as indented JSON, or one `key: value` line per field."""
    if fmt == "json":
        print(json.dumps(data, indent=2))
        return
    for key, value in data.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k} {v}" for k, v in value.items())
        elif isinstance(value, list):
            value = "; ".join(_item_text(item) for item in value)
        print(f"{key}: {value if value is not None else '-'}")


def _item_text(item: object) -> str:
    if isinstance(item, dict):
        return ", ".join(f"{k} {v}" for k, v in item.items() if not isinstance(v, dict | list))
    return str(item)
