"""Channel classification: trunks, operator extensions (PJSIP, SIP, IAX2, Local), fallbacks."""

from __future__ import annotations

import pytest

from gateway.calls import ChannelClass, ChannelRole, Topology, TopologyError
from gateway.calls.settings import PbxTopology


@pytest.fixture
def default_topology() -> Topology:
    """The topology of the default settings."""
    return Topology.from_settings(PbxTopology())


@pytest.mark.parametrize(
    ("channel", "extension"),
    [
        ("PJSIP/201-00000001", "201"),
        ("SIP/3105-0000000a", "3105"),
        ("IAX2/42-1234", "42"),
        ("Local/201@operators-0000002a;1", "201"),
        ("Local/201@operators-0000002a;2", "201"),
    ],
)
def test_operator_channels_name_their_extension(
    default_topology: Topology, channel: str, extension: str
) -> None:
    assert default_topology.classify(channel) == ChannelClass(ChannelRole.OPERATOR, extension)


@pytest.mark.parametrize(
    "channel", ["PJSIP/trunk-00000003", "SIP/trunk_kyivstar-00000001", "IAX2/trunk-77"]
)
def test_trunks(default_topology: Topology, channel: str) -> None:
    assert default_topology.classify(channel) == ChannelClass(ChannelRole.TRUNK)


@pytest.mark.parametrize(
    "channel", ["", None, "Local/caller-60@gw-inbound-00000007;1", "PJSIP/alice-00000001"]
)
def test_anything_else_is_other(default_topology: Topology, channel: str | None) -> None:
    assert default_topology.classify(channel).role is ChannelRole.OTHER


def test_trunk_wins_over_a_matching_operator_pattern() -> None:
    topology = Topology([r"^PJSIP/trunk"], [r"^PJSIP/(?P<ext>\w+)-"])
    assert topology.classify("PJSIP/trunk-0001").role is ChannelRole.TRUNK
    assert topology.classify("PJSIP/201-0001") == ChannelClass(ChannelRole.OPERATOR, "201")


def test_pattern_without_ext_falls_back_to_dest_exten_then_caller_id() -> None:
    topology = Topology([], [r"^PJSIP/op-"])
    assert topology.classify("PJSIP/op-anna-01", exten="204", caller_id_num="305").extension == (
        "204"
    )
    assert topology.classify("PJSIP/op-anna-01", exten="dial-204", caller_id_num="305") == (
        ChannelClass(ChannelRole.OPERATOR, "305")
    )
    # Not digits: the role is known, the extension is not.
    assert topology.classify("PJSIP/op-anna-01", exten="s", caller_id_num="<unknown>") == (
        ChannelClass(ChannelRole.OPERATOR, None)
    )


def test_trace_topology_keeps_the_caller_local_channel_out_of_operators() -> None:
    topology = Topology([r"^Local/200@test-"], [r"^Local/(?P<ext>20[1-3])@(?:test|ops-)"])
    assert topology.classify("Local/200@test-00000004;1").role is ChannelRole.TRUNK
    assert topology.classify("Local/201@test-00000005;1").extension == "201"
    assert topology.classify("Local/202@ops-ring-00000009;1").extension == "202"


@pytest.mark.parametrize(
    ("trunks", "operators"), [(["^(PJSIP"], []), ([], [r"^Local/(?P<ext>\d+@"])]
)
def test_bad_pattern_is_a_clear_error(trunks: list[str], operators: list[str]) -> None:
    with pytest.raises(TopologyError, match=r"invalid (trunk|operator) pattern"):
        Topology(trunks, operators)
