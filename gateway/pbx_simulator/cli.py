"""`switchboard simulate-pbx`: the built-in AMI-speaking PBX simulator for integrators."""

from __future__ import annotations

import argparse
from pathlib import Path

from gateway.core.cli import Subparsers, UsageError, run_async
from gateway.core.settings import Settings

DEMO_AMI_SECRET = "changeme"  # noqa: S105 - a loopback-only demo login, not a credential


def register(subparsers: Subparsers) -> None:
    """Add `simulate-pbx`."""
    simulator = subparsers.add_parser(
        "simulate-pbx", help="built-in AMI-speaking PBX simulator for integrators"
    )
    simulator.add_argument("--host", default="127.0.0.1")
    simulator.add_argument("--port", type=int, default=5038)
    simulator.add_argument("--script", type=Path, help="YAML scenario script")
    simulator.add_argument("--seed", type=int, default=0)
    simulator.add_argument("--speed", type=float, default=1.0, help="time scale (10 = 10x faster)")
    simulator.add_argument("--username", default=None, help="AMI login (default: settings)")
    simulator.set_defaults(handler=_simulate_pbx)


def _simulate_pbx(args: argparse.Namespace, settings: Settings) -> int:
    from gateway.pbx_simulator import ScriptError, serve_simulator

    if args.script is not None and not args.script.is_file():
        raise UsageError(f"scenario script {args.script} does not exist")
    username, secret = simulator_login(settings, args.username)
    print(f"PBX simulator: AMI on {args.host}:{args.port}, login {username}", flush=True)
    try:
        return run_async(
            serve_simulator(
                args.host, args.port, args.script, args.seed, username, secret, speed=args.speed
            )
        )
    except ScriptError as exc:
        raise UsageError(f"scenario script {args.script}: {exc}") from exc


def simulator_login(settings: Settings, username: str | None) -> tuple[str, str]:
    """The simulator accepts the same login the gateway is configured to use."""
    return username or settings.ami_username, settings.secret("ami_secret") or DEMO_AMI_SECRET
