"""What other features may use of calls: number display and the `pbx:` settings section."""

from __future__ import annotations

from gateway.calls.pops import display_number
from gateway.calls.settings import PbxTopology

__all__ = ["PbxTopology", "display_number"]
