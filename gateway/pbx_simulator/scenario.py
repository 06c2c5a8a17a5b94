"""Call scenarios for the PBX simulator and their YAML script form."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

KINDS = ("answered", "missed", "busy", "blind_transfer", "attended_transfer", "outbound")
HANGUP_SIDES = ("caller", "operator")


class ScriptError(ValueError):
    """A scenario script is unreadable or describes an impossible call."""


@dataclass(frozen=True)
class CallSpec:
    """One call to play; times are simulated seconds."""

    kind: str = "answered"
    caller: str = "+380501234567"
    caller_name: str = ""
    extensions: tuple[str, ...] = ("201",)
    answered_by: str | None = None  # None: picked from ``extensions`` with the seed
    ring_seconds: float = 3.0
    talk_seconds: float = 10.0
    hangup_by: str = "operator"
    start_at: float = 0.0
    did: str = "0800300300"  # number the caller dialled (trunk channel Exten)
    answer_first: bool = True  # queue/IVR answers the trunk before ringing operators
    transfer_to: str | None = None
    consult_seconds: float = 4.0  # attended transfer: operator talks to the target
    talk_after_transfer: float = 5.0
    number: str | None = None  # outbound: the customer's number (None: operator only)
    customer_ring_seconds: float = 3.0
    customer_answers: bool = True

    def validate(self) -> CallSpec:
        """Check the combination of fields; returns self for chaining."""
        if self.kind not in KINDS:
            raise ScriptError(f"unknown call kind {self.kind!r} (one of {', '.join(KINDS)})")
        if self.hangup_by not in HANGUP_SIDES:
            raise ScriptError(f"hangup_by must be caller or operator, not {self.hangup_by!r}")
        if not self.extensions:
            raise ScriptError("a call needs at least one extension")
        if self.answered_by is not None and self.answered_by not in self.extensions:
            raise ScriptError(f"answered_by {self.answered_by!r} is not among the extensions")
        if self.kind.endswith("transfer") and not self.transfer_to:
            raise ScriptError(f"{self.kind} needs transfer_to")
        for name in ("ring_seconds", "talk_seconds", "start_at", "consult_seconds"):
            if getattr(self, name) < 0:
                raise ScriptError(f"{name} must not be negative")
        return self


_FIELDS = {f.name for f in dataclasses.fields(CallSpec)}


@dataclass(frozen=True)
class Script:
    """A list of calls plus optional defaults for originated calls."""

    calls: list[CallSpec] = field(default_factory=list)
    originate: CallSpec = field(default_factory=lambda: CallSpec(kind="outbound"))


def spec_from_mapping(raw: dict[str, Any]) -> CallSpec:
    """Build a validated CallSpec from a YAML mapping."""
    unknown = set(raw) - _FIELDS
    if unknown:
        raise ScriptError(f"unknown call field(s): {', '.join(sorted(unknown))}")
    values = dict(raw)
    exts = values.get("extensions")
    if isinstance(exts, str | int):
        values["extensions"] = (str(exts),)
    elif exts is not None:
        values["extensions"] = tuple(str(e) for e in exts)
    for key in ("caller", "number", "did", "answered_by", "transfer_to"):
        if values.get(key) is not None:
            values[key] = str(values[key])
    try:
        return CallSpec(**values).validate()
    except TypeError as exc:
        raise ScriptError(str(exc)) from exc


def parse_script(text: str) -> Script:
    """Parse a YAML script: a list of calls, or ``{calls: [...], originate: {...}}``."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ScriptError(f"invalid YAML: {exc}") from exc
    if data is None:
        return Script()
    if isinstance(data, list):
        data = {"calls": data}
    if not isinstance(data, dict) or not isinstance(data.get("calls", []), list):
        raise ScriptError("a script is a list of calls or a mapping with a 'calls' list")
    calls = []
    for i, raw in enumerate(data.get("calls") or []):
        if not isinstance(raw, dict):
            raise ScriptError(f"call #{i + 1} is not a mapping")
        try:
            calls.append(spec_from_mapping(raw))
        except ScriptError as exc:
            raise ScriptError(f"call #{i + 1}: {exc}") from None
    script = Script(calls=calls)
    if isinstance(data.get("originate"), dict):
        raw = {"kind": "outbound", **data["originate"]}
        script = Script(calls=calls, originate=spec_from_mapping(raw))
    return script


def load_script(path: str | Path) -> Script:
    """Read and parse a script file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ScriptError(f"cannot read script {path}: {exc}") from exc
    return parse_script(text)
