"""The built-in PBX simulator: `switchboard simulate-pbx` (`serve --demo` starts it too)."""

from __future__ import annotations

from gateway.core.plugin import Plugin
from gateway.pbx_simulator import cli

PLUGIN = Plugin(name="pbx_simulator", commands=(cli.register,))
