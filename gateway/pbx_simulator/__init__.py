"""Built-in AMI-speaking PBX simulator (``switchboard simulate-pbx``)."""

from gateway.pbx_simulator.engine import Pbx
from gateway.pbx_simulator.scenario import CallSpec, Script, ScriptError, load_script, parse_script
from gateway.pbx_simulator.server import SimulatorServer, serve_simulator

__all__ = [
    "CallSpec",
    "Pbx",
    "Script",
    "ScriptError",
    "SimulatorServer",
    "load_script",
    "parse_script",
    "serve_simulator",
]
