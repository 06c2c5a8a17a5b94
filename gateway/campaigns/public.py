"""What other features may use of campaigns: the holdout arm's name (savings reports)."""

from __future__ import annotations

from gateway.campaigns.arms import HOLDOUT

__all__ = ["HOLDOUT"]
