"""The app's settings class: the kernel's fields plus every plugin's section."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.core.settings import Settings as KernelSettings
from gateway.core.settings import SettingsError, compose_settings
from gateway.core.settings import load_settings as load_kernel_settings
from gateway.plugins import PLUGINS

if TYPE_CHECKING:
    # For type checkers only: the composed class below is built at import time from the
    # plugin list, so mypy cannot see it as a class (a variable is not a valid type). It
    # is a subclass of the kernel's, so naming the kernel's class here is sound: annotations
    # and constructors (`Settings(pbx=...)`; extra keywords are allowed, the config ignores
    # extras) type-check, and a section is read the typed way, `settings.section(Kind)`.
    # We did not declare a static subclass listing every section: that would be a second
    # plugin list to keep in step, and adding a feature must touch only its own folder and
    # gateway/plugins.py.
    Settings = KernelSettings
else:
    Settings = compose_settings(
        plugin.settings_section for plugin in PLUGINS if plugin.settings_section is not None
    )

__all__ = ["Settings", "SettingsError", "load_settings"]


def load_settings(config_path: Path | None = None, **overrides: Any) -> KernelSettings:
    """Defaults, then the config file, then the environment (then `overrides`)."""
    return load_kernel_settings(Settings, config_path, **overrides)
