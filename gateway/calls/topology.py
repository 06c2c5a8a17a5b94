"""Classify an Asterisk channel name as a trunk, an operator extension or anything else.

Rules:

* Patterns are regular expressions searched (``re.search``) against the channel name as
  AMI reports it: ``PJSIP/201-00000001``, ``SIP/201-0000000a``, ``IAX2/201-1234``,
  ``Local/201@operators-0000002a;1``. They are compiled once, when the topology is built.
* Trunk patterns are tried first: a channel that is a trunk is never an operator.
* An operator pattern names the extension with the group ``ext``. When a pattern has no
  ``ext`` group (or it matched empty), the extension falls back to the event's
  ``DestExten`` (for a dialed channel), then ``CallerIDNum`` (for the phone's own
  channel), and only when that value is all digits; otherwise the extension is unknown
  but the role is still ``operator``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from gateway.calls.settings import PbxTopology


class TopologyError(ValueError):
    """A trunk or operator pattern is not a valid regular expression."""


class ChannelRole(StrEnum):
    """What a channel is, from the contact center's point of view."""

    TRUNK = "trunk"
    OPERATOR = "operator"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class ChannelClass:
    """The role of one channel and, for operators, the extension."""

    role: ChannelRole
    extension: str | None = None


_OTHER = ChannelClass(ChannelRole.OTHER)
_TRUNK = ChannelClass(ChannelRole.TRUNK)


def _compile(patterns: Sequence[str], kind: str) -> tuple[re.Pattern[str], ...]:
    compiled: list[re.Pattern[str]] = []
    for pattern in patterns:
        try:
            compiled.append(re.compile(pattern))
        except re.error as exc:
            raise TopologyError(f"invalid {kind} pattern {pattern!r}: {exc}") from exc
    return tuple(compiled)


def _digits(value: str | None) -> str | None:
    if value and value.isascii() and value.isdigit():
        return value
    return None


class Topology:
    """Compiled trunk and operator patterns; `classify` is pure and cheap."""

    __slots__ = ("_operators", "_trunks")

    def __init__(self, trunk_patterns: Sequence[str], operator_patterns: Sequence[str]) -> None:
        """Compile the patterns; raises `TopologyError` on a bad one."""
        self._trunks = _compile(trunk_patterns, "trunk")
        self._operators = _compile(operator_patterns, "operator")

    @classmethod
    def from_settings(cls, pbx: PbxTopology) -> Topology:
        """Build from the `pbx` section of the settings."""
        return cls(pbx.trunk_patterns, pbx.operator_patterns)

    def classify(
        self,
        channel: str | None,
        *,
        exten: str | None = None,
        caller_id_num: str | None = None,
    ) -> ChannelClass:
        """Role (and operator extension) of `channel`; fallbacks: `exten`, `caller_id_num`."""
        if not channel:
            return _OTHER
        for trunk in self._trunks:
            if trunk.search(channel):
                return _TRUNK
        for operator in self._operators:
            match = operator.search(channel)
            if match is None:
                continue
            ext = match.groupdict().get("ext") or _digits(exten) or _digits(caller_id_num)
            return ChannelClass(ChannelRole.OPERATOR, ext)
        return _OTHER
