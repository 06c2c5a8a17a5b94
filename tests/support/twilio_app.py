"""The app's side of Twilio in tests: settings with Twilio configured (so that its callbacks
check signatures) and the signature Twilio would put on a callback."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import SecretStr
from twilio.request_validator import RequestValidator  # type: ignore[import-untyped]

from gateway.settings import Settings

TWILIO_TOKEN = "twilio-token-for-tests"


def twilio_configured(settings: Settings, **more: Any) -> Settings:
    """`settings` with a Twilio account whose auth token is TWILIO_TOKEN."""
    return settings.model_copy(
        update={
            "twilio_account_sid": "AC" + "0" * 32,
            "twilio_auth_token": SecretStr(TWILIO_TOKEN),
            "twilio_from": "+380670000000",
            **more,
        }
    )


def twilio_signed(path_and_query: str, form: Mapping[str, str]) -> dict[str, str]:
    """The header Twilio signs a callback with: over the public URL and the form, with the
    SDK's own validator (so our check is tested against Twilio's algorithm, not ours)."""
    url = Settings().public_url + path_and_query  # what the gateway checks the signature against
    return {"X-Twilio-Signature": RequestValidator(TWILIO_TOKEN).compute_signature(url, form)}
