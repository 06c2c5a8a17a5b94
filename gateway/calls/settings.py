"""The calls feature's settings section (`pbx:` in the config file, SWITCHBOARD_PBX__*)."""

from __future__ import annotations

import re
from typing import ClassVar, Literal

from pydantic import Field, field_validator

from gateway.core.settings import Section


class PbxTopology(Section):
    """Which channels are trunks and which are operator extensions (regex patterns)."""

    section_name: ClassVar[str] = "pbx"

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
    # Numbers any originate may dial: regexes over the E.164 number (`\+380\d{9}`),
    # each matching the whole number. Empty: the default region's numbers only, so a
    # leaked token cannot dial premium or foreign numbers (toll fraud).
    originate_allow: list[str] = Field(default_factory=list)
    # A qualifying call (right customer, long enough) closes the customer's open call
    # tasks by itself; off, an operator picks the call in the console.
    auto_complete_tasks: bool = False
    # Inbound calls from numbers no customer has become `customer.unknown_caller`
    # activities in the CRM (a lead), when on.
    report_unknown_callers: bool = False
    raw_event_retention_days: int = Field(default=30, ge=0)
    reconnect_max_seconds: float = Field(default=30.0, gt=0)
    # Calls tracked at once; beyond it new calls are refused (counted, and /health says
    # `shedding`): an event flood must not grow memory without bound.
    max_live_calls: int = Field(default=5000, ge=1)

    @field_validator("originate_allow")
    @classmethod
    def _compiles(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"originate_allow: {pattern!r} is not a regex: {exc}") from exc
        return patterns
