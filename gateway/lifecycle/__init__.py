"""Customer lifecycle: status moves, call cadence and behaviour detectors, driven by `as_of`."""

from gateway.lifecycle.cadence import (
    CadenceTask,
    add_months,
    after_monitoring_call,
    cadence_task_id,
    due_call_tasks,
)
from gateway.lifecycle.detectors import (
    NewActiveFlag,
    RecessionFlag,
    detect_new_active,
    detect_recession,
    recovery_task_id,
)
from gateway.lifecycle.policy import InvalidLifecyclePolicy, LifecyclePolicy
from gateway.lifecycle.transitions import (
    InvalidStatus,
    LifecycleError,
    RefreshCounts,
    StatusLocked,
    apply_status,
    refresh_statuses,
)

__all__ = [
    "CadenceTask",
    "InvalidLifecyclePolicy",
    "InvalidStatus",
    "LifecycleError",
    "LifecyclePolicy",
    "NewActiveFlag",
    "RecessionFlag",
    "RefreshCounts",
    "StatusLocked",
    "add_months",
    "after_monitoring_call",
    "apply_status",
    "cadence_task_id",
    "detect_new_active",
    "detect_recession",
    "due_call_tasks",
    "recovery_task_id",
    "refresh_statuses",
]
