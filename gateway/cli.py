"""`switchboard` command line: serve, db, import, demo, outbox, simulate-pbx…"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from gateway.settings import Settings, SettingsError, load_settings

# Each module adds its subcommands with `register(subparsers)`; a handler returns the
# exit status (0 ok, 2 bad arguments or unreadable input, 1 otherwise, 3 partial import).
COMMAND_MODULES = (
    "gateway.cli_core",
    "crm_sync.import_cli",
    "crm_sync.outbox_cli",
    "gateway.calls.cli",
    "gateway.costs.cli",
    "gateway.campaigns.cli",
    "gateway.campaigns.runner_cli",
    "gateway.allocation.cli",
    "gateway.retention_cli",
)

Handler = Callable[[argparse.Namespace, Settings], int]


class UsageError(Exception):
    """Bad arguments or unreadable input: exit status 2 with a message."""


def build_parser() -> argparse.ArgumentParser:
    """The full parser with every module's subcommands."""
    parser = argparse.ArgumentParser(prog="switchboard", description=__doc__)
    parser.add_argument("--config", type=Path, help="config file (default config/switchboard.yaml)")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.config)
    except (SettingsError, ValueError) as exc:
        print(f"switchboard: configuration error: {exc}", file=sys.stderr)
        return 2
    from gateway.logs import configure_logging

    configure_logging(settings.log_level, settings.log_json)
    handler: Handler = args.handler
    try:
        return handler(args, settings)
    except UsageError as exc:
        print(f"switchboard: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def run_async(coro: Coroutine[Any, Any, int | None]) -> int:
    """Run a command's coroutine to completion and return its exit status."""
    return int(asyncio.run(coro) or 0)


if __name__ == "__main__":
    sys.exit(main())
