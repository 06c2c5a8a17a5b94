"""Retention: `switchboard purge` of personal data and raw AMI events past their period."""

from __future__ import annotations

from gateway.core.plugin import Plugin
from gateway.retention import cli

PLUGIN = Plugin(name="retention", commands=(cli.register,))
