"""What other features may use of tasks: closing call tasks a finished call satisfies."""

from __future__ import annotations

from gateway.tasks.service import auto_complete_tasks

__all__ = ["auto_complete_tasks"]
