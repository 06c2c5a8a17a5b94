"""The calls feature's settings section (`pbx:` in the config file, SWITCHBOARD_PBX__*)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

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
    # A qualifying call (right customer, long enough) closes the customer's open call
    # tasks by itself; off, an operator picks the call in the console.
    auto_complete_tasks: bool = False
    # Inbound calls from numbers no customer has become `customer.unknown_caller`
    # activities in the CRM (a lead), when on.
    report_unknown_callers: bool = False
    raw_event_retention_days: int = Field(default=30, ge=0)
    reconnect_max_seconds: float = Field(default=30.0, gt=0)
