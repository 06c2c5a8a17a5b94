"""Settings: defaults, then the config file, then the environment; secrets only from env."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.calls.settings import PbxTopology
from gateway.settings import Settings, SettingsError, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No SWITCHBOARD_* from the outside, and no config file in the working dir."""
    import os

    for key in list(os.environ):
        if key.startswith("SWITCHBOARD_"):
            monkeypatch.delenv(key)
    # load_settings(--config) sets SWITCHBOARD_CONFIG: recorded here, so it is removed
    # again after the test instead of leaking into every later test's settings.
    monkeypatch.setenv("SWITCHBOARD_CONFIG", "")
    monkeypatch.chdir(tmp_path)


def test_defaults_match_the_contract() -> None:
    settings = Settings()
    assert settings.database_url == "sqlite+aiosqlite:///./switchboard.db"
    assert (settings.http_host, settings.http_port) == ("127.0.0.1", 8080)
    assert settings.redis_url is None and settings.ami_host is None
    assert (settings.default_region, settings.timezone) == ("UA", "Europe/Kyiv")


def test_file_overrides_defaults_and_environment_overrides_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "sb.yaml"
    config.write_text("http_port: 9000\ndefault_region: pl\npbx:\n  dial_prefix: '9'\n")
    monkeypatch.setenv("SWITCHBOARD_CONFIG", str(config))
    monkeypatch.setenv("SWITCHBOARD_HTTP_PORT", "9100")
    settings = Settings()
    assert settings.http_port == 9100
    assert settings.default_region == "PL"
    assert settings.section(PbxTopology).dial_prefix == "9"


def test_a_secret_in_the_config_file_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "sb.yaml"
    config.write_text("crm_webhook_secret: hunter2\n")
    with pytest.raises(SettingsError, match="environment"):
        load_settings(config)


def test_secrets_from_the_environment_never_show_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWITCHBOARD_CRM_WEBHOOK_SECRET", "s3cr3t-value")
    settings = Settings()
    assert settings.secret("crm_webhook_secret") == "s3cr3t-value"
    assert "s3cr3t-value" not in repr(settings)


def test_a_broken_config_file_is_a_clear_error(tmp_path: Path) -> None:
    config = tmp_path / "sb.yaml"
    config.write_text("pbx: [unclosed\n")
    with pytest.raises(SettingsError, match="cannot read config file"):
        load_settings(config)
