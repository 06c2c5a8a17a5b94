"""Settings: defaults, then `config/switchboard.yaml`, then `SWITCHBOARD_*` environment."""

from __future__ import annotations

import ipaddress
import os
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

# Data-only models of other layers that the config file carries (no behaviour imported).
from channels.policy import ContactPolicy
from gateway.allocation.policy import AllocationPolicy
from gateway.lifecycle.policy import LifecyclePolicy

DEFAULT_CONFIG_PATH = Path("config/switchboard.yaml")

# Secrets may only come from the environment: a config file is checked into repos and
# copied around, so finding one of these keys there is refused outright.
SECRET_FIELDS = frozenset(
    {
        "api_tokens",
        "ami_secret",
        "twilio_auth_token",
        "smtp_password",
        "crm_webhook_secret",
        "crm_api_token",
    }
)


class SettingsError(ValueError):
    """The configuration is unusable (bad file, secret in the file, bad value)."""


class PbxTopology(BaseModel):
    """Which channels are trunks and which are operator extensions (regex patterns)."""

    trunk_patterns: list[str] = Field(default_factory=lambda: [r"^(PJSIP|SIP|IAX2)/trunk"])
    operator_patterns: list[str] = Field(
        default_factory=lambda: [
            r"^(?:PJSIP|SIP|IAX2)/(?P<ext>\d{2,6})-",
            r"^Local/(?P<ext>\d{2,6})@operators",
        ]
    )
    originate_context: str = "from-internal"
    dial_prefix: str = ""
    screen_pop_on: Literal["ring", "answer"] = "ring"
    # Click-to-call rings the operator first on this channel, then dials the customer.
    operator_channel: str = "PJSIP/{extension}"
    # A qualifying call (right customer, long enough) closes the customer's open call
    # tasks by itself; off, an operator picks the call in the console.
    auto_complete_tasks: bool = False
    # Inbound calls from numbers no customer has become `customer.unknown_caller`
    # activities in the CRM (a lead), when on.
    report_unknown_callers: bool = False
    raw_event_retention_days: int = Field(default=30, ge=0)
    # Calls tracked at once; beyond it new calls are refused (counted, and /health says
    # `shedding`): an event flood must not grow memory without bound.
    max_live_calls: int = Field(default=5000, ge=1)
    reconnect_max_seconds: float = Field(default=30.0, gt=0)


class OutboxPolicy(BaseModel):
    """How CRM push-back retries: exponential backoff with full jitter, then dead letter."""

    max_attempts: int = Field(default=12, ge=1)
    base_delay_seconds: float = Field(default=1.0, gt=0)
    max_delay_seconds: float = Field(default=600.0, gt=0)
    request_timeout_seconds: float = Field(default=10.0, gt=0)
    batch_size: int = Field(default=100, ge=1)
    poll_seconds: float = Field(default=1.0, gt=0)


class CostRates(BaseModel):
    """Configured rates, used where a provider reports no price."""

    currency: str = "UAH"
    sms_per_segment: Decimal = Decimal("0.30")
    email_per_message: Decimal = Decimal("0.01")
    call_per_minute: Decimal = Decimal("1.50")
    # Average operator handling time per call topic, minutes ("*": any other topic);
    # the savings report prefers a measurement from call records when there is one.
    handling_minutes: dict[str, Decimal] = Field(default_factory=lambda: {"*": Decimal("2.5")})
    operator_per_minute: Decimal = Decimal("1.50")
    conversion: dict[str, Decimal] = Field(default_factory=dict)


class Settings(BaseSettings):
    """Everything the gateway reads at start; one instance per app, no globals."""

    model_config = SettingsConfigDict(
        env_prefix="SWITCHBOARD_", env_nested_delimiter="__", extra="ignore"
    )

    config: Path | None = None
    database_url: str = "sqlite+aiosqlite:///./switchboard.db"
    # Connections kept open: at least the expected concurrency (webhooks, pops, workers);
    # overflow connections are closed when returned, which costs a new backend each burst.
    database_pool_size: int = Field(default=24, ge=1)
    redis_url: str | None = None
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    api_tokens: SecretStr | None = None
    # Reverse proxies (addresses or CIDRs) whose X-Forwarded-For we believe; none by
    # default, so a client cannot pick the address the auth brake and logs see.
    # Environment: comma-separated (SWITCHBOARD_TRUSTED_PROXIES=10.0.0.0/8,192.0.2.7).
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)

    ami_host: str | None = None
    ami_port: int = 5038
    ami_username: str = "switchboard"
    ami_secret: SecretStr | None = None

    twilio_account_sid: str | None = None
    twilio_auth_token: SecretStr | None = None
    twilio_from: str | None = None
    twilio_api_base: str | None = None
    public_url: str = "http://127.0.0.1:8080"

    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_from: str = "switchboard@localhost"
    smtp_starttls: bool = True

    crm_webhook_secret: SecretStr | None = None
    crm_api_url: str | None = None
    crm_api_token: SecretStr | None = None

    default_region: str = "UA"
    timezone: str = "Europe/Kyiv"

    log_json: bool = False
    log_level: str = "INFO"
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    webhook_tolerance_seconds: int = 300
    pbx: PbxTopology = Field(default_factory=PbxTopology)
    outbox: OutboxPolicy = Field(default_factory=OutboxPolicy)
    costs: CostRates = Field(default_factory=CostRates)
    policy: ContactPolicy = Field(default_factory=ContactPolicy)
    lifecycle: LifecyclePolicy = Field(default_factory=LifecyclePolicy)
    allocation: AllocationPolicy = Field(default_factory=AllocationPolicy)
    # Provider send rates per channel (messages per second), shared across instances
    # through Redis when it is configured.
    send_rates: dict[str, float] = Field(default_factory=lambda: {"sms": 50.0, "email": 20.0})
    call_topics: list[str] = Field(
        default_factory=lambda: ["payment_amount", "card_blocked", "complaint", "other"]
    )

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _proxy_networks(cls, value: Any) -> Any:
        entries = value.split(",") if isinstance(value, str) else value
        if not isinstance(entries, list):
            return entries
        entries = [str(entry).strip() for entry in entries if str(entry).strip()]
        for entry in entries:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError as exc:
                raise ValueError(f"trusted_proxies: {entry!r} is not an address or CIDR") from exc
        return entries

    @field_validator("default_region")
    @classmethod
    def _upper_region(cls, value: str) -> str:
        return value.upper()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Order of precedence: explicit arguments, environment, config file, defaults."""
        return (init_settings, env_settings, _YamlFileSource(settings_cls))

    def secret(self, name: str) -> str | None:
        """Return a secret's plain value (or None) without it ever sitting in a repr."""
        value = getattr(self, name)
        return value.get_secret_value() if isinstance(value, SecretStr) else None


class _YamlFileSource(PydanticBaseSettingsSource):
    """Reads the YAML config file named by SWITCHBOARD_CONFIG (or the default path)."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        """Unused: the whole file is returned by __call__."""
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        """Load the file, refusing secrets in it."""
        return load_config_file(config_path_from_env())


def config_path_from_env() -> Path | None:
    """The config file to read: SWITCHBOARD_CONFIG, else the default when it exists."""
    explicit = os.environ.get("SWITCHBOARD_CONFIG")
    if explicit:
        return Path(explicit)
    return DEFAULT_CONFIG_PATH if DEFAULT_CONFIG_PATH.exists() else None


def load_config_file(path: Path | None) -> dict[str, Any]:
    """Parse a YAML config file into settings values; secrets in it are an error."""
    if path is None:
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise SettingsError(f"cannot read config file {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise SettingsError(f"config file {path} must hold a mapping at the top level")
    leaked = sorted(SECRET_FIELDS & set(data))
    if leaked:
        raise SettingsError(
            f"config file {path} holds secrets {leaked}: set them as SWITCHBOARD_* "
            "environment variables instead"
        )
    return data


def load_settings(config_path: Path | None = None, **overrides: Any) -> Settings:
    """Build settings; `config_path` (the CLI's --config) replaces SWITCHBOARD_CONFIG."""
    if config_path is not None:
        os.environ["SWITCHBOARD_CONFIG"] = str(config_path)
    return Settings(**overrides)
