"""The originate allow-list, and the rule that every Originate goes through
gateway/calls/originate.py (click-to-call now, the dialer and a CRM's click-to-call
later), so the allow-list and the own-extension rule cannot be bypassed."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from pydantic import ValidationError

from gateway.calls.originate import DestinationPolicy
from gateway.settings import Settings

ROOT = Path(__file__).resolve().parents[3]
PACKAGES = ("gateway", "crm_sync", "channels", "adapters")
# Where `originate` is the PBX's own action rather than the service: the AMI client
# (adapters), the link that wraps it, the service itself and the PBX simulator.
LOW_LEVEL = {
    Path("adapters/ami/actions.py"),
    # The AMI client hands Originate to the actions object it holds (the same adapter).
    Path("adapters/ami/client.py"),
    Path("gateway/calls/link.py"),
    Path("gateway/calls/originate.py"),
}


@pytest.mark.parametrize(
    ("number", "allowed"),
    [
        ("+380501234567", True),  # UA mobile
        ("+380442223344", True),  # UA landline
        ("+380900212345", False),  # UA premium rate
        ("+447911123456", False),
        ("+48601234567", False),
        ("not a number", False),
    ],
)
def test_by_default_only_the_default_region_s_numbers(number: str, allowed: bool) -> None:
    assert DestinationPolicy([], "ua").allows(number) is allowed


def test_configured_patterns_replace_the_default_and_match_whole_numbers() -> None:
    policy = DestinationPolicy([r"\+48\d{9}", r"\+38050\d{7}"], "UA")
    assert policy.allows("+48601234567")
    assert policy.allows("+380501234567")
    assert not policy.allows("+380671234567")
    assert not policy.allows("+486012345678")  # a prefix match is not enough


def test_a_pattern_that_is_no_regex_is_refused_at_start() -> None:
    with pytest.raises(ValidationError, match="originate_allow"):
        Settings(pbx={"originate_allow": [r"\+48(\d{9}"]})


def _originate_calls(path: Path) -> list[tuple[int, str]]:
    """(line, receiver) of every `<receiver>.originate(...)` call in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "originate"
        ):
            found.append((node.lineno, ast.unparse(node.func.value)))
    return found


def test_every_originate_goes_through_the_originate_service() -> None:
    offenders = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT)
            if relative in LOW_LEVEL or relative.parts[:2] == ("gateway", "pbx_simulator"):
                continue
            for line, receiver in _originate_calls(path):
                # The service is held as `originator` (app[ORIGINATOR]); anything else
                # (a PbxLink, an AMI client) would dial around the allow-list.
                if "originator" not in receiver.lower():
                    offenders.append(f"{relative}:{line}: {receiver}.originate(...)")
    assert offenders == []
    # And the check sees the one caller there is today.
    assert _originate_calls(ROOT / "gateway/calls/http.py")
