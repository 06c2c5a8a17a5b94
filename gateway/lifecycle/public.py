"""What other features may use of the lifecycle: its settings section, status moves and
the monitoring cadence."""

from __future__ import annotations

from gateway.lifecycle.cadence import after_monitoring_call
from gateway.lifecycle.policy import LifecyclePolicy
from gateway.lifecycle.transitions import StatusLocked, apply_status

__all__ = ["LifecyclePolicy", "StatusLocked", "after_monitoring_call", "apply_status"]
