"""What other features may use of the live lane: the bus channel of an agent's sockets."""

from __future__ import annotations

from gateway.live.http import agent_channel

__all__ = ["agent_channel"]
