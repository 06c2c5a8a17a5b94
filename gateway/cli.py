"""`switchboard` command line: the kernel's commands, serve and demo, every plugin's."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import gateway.serve
from gateway.core.cli import Handler, UsageError
from gateway.core.db import cli as db_cli
from gateway.core.plugin import add_commands
from gateway.core.scheduler import register_tick
from gateway.plugins import DAILY_JOBS, PERIODIC_JOBS, PLUGINS
from gateway.settings import SettingsError, load_settings


def build_parser() -> argparse.ArgumentParser:
    """The full parser with every plugin's subcommands."""
    parser = argparse.ArgumentParser(prog="switchboard", description=__doc__)
    parser.add_argument("--config", type=Path, help="config file (default config/switchboard.yaml)")
    subparsers = parser.add_subparsers(dest="command", required=True)
    gateway.serve.register(subparsers)
    db_cli.register(subparsers)
    register_tick(subparsers, DAILY_JOBS, PERIODIC_JOBS)
    add_commands(subparsers, PLUGINS)
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
    from gateway.core.logs import configure_logging

    configure_logging(settings.log_level, settings.log_json)
    handler: Handler = args.handler
    try:
        return handler(args, settings)
    except UsageError as exc:
        print(f"switchboard: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
