"""The plugin list, written once: the app, the CLI and the settings are built from it.

Adding a feature: its folder under gateway/ with a `plugin.py` declaring `PLUGIN`, and one
line here. Order matters only for route registration and for cleanup contexts (opened in
this order, closed in reverse).
"""

from __future__ import annotations

import crm_sync.plugin
import gateway.allocation.plugin
import gateway.calls.plugin
import gateway.campaigns.plugin
import gateway.console.plugin
import gateway.costs.plugin
import gateway.customers.plugin
import gateway.lifecycle.plugin
import gateway.live.plugin
import gateway.messages.plugin
import gateway.pbx_simulator.plugin
import gateway.retention.plugin
import gateway.tasks.plugin
from gateway.core.plugin import DailyJob, PeriodicJob, Plugin

PLUGINS: tuple[Plugin, ...] = (
    gateway.customers.plugin.PLUGIN,
    crm_sync.plugin.PLUGIN,
    gateway.live.plugin.PLUGIN,
    gateway.tasks.plugin.PLUGIN,
    gateway.calls.plugin.PLUGIN,
    gateway.messages.plugin.PLUGIN,
    gateway.campaigns.plugin.PLUGIN,
    gateway.console.plugin.PLUGIN,
    gateway.costs.plugin.PLUGIN,
    gateway.allocation.plugin.PLUGIN,
    gateway.lifecycle.plugin.PLUGIN,
    gateway.retention.plugin.PLUGIN,
    gateway.pbx_simulator.plugin.PLUGIN,
)

DAILY_JOBS: tuple[DailyJob, ...] = tuple(job for p in PLUGINS for job in p.daily_jobs)
PERIODIC_JOBS: tuple[PeriodicJob, ...] = tuple(job for p in PLUGINS for job in p.periodic_jobs)
