"""The app's settings class: the kernel's fields plus every plugin's section."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gateway.core.settings import Settings as KernelSettings
from gateway.core.settings import SettingsError, compose_settings
from gateway.core.settings import load_settings as load_kernel_settings
from gateway.plugins import PLUGINS

Settings: type[KernelSettings] = compose_settings(
    plugin.settings_section for plugin in PLUGINS if plugin.settings_section is not None
)

__all__ = ["Settings", "SettingsError", "load_settings"]


def load_settings(config_path: Path | None = None, **overrides: Any) -> KernelSettings:
    """Defaults, then the config file, then the environment (then `overrides`)."""
    return load_kernel_settings(Settings, config_path, **overrides)
