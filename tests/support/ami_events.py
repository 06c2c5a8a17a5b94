"""Synthetic AMI events for call-tracker tests: channels, events, a queue call."""

from __future__ import annotations

from adapters.ami.protocol import AmiMessage

EPOCH = 1_800_000_000.0


TRUNK, OP1, OP2 = "PJSIP/trunk-00000001", "PJSIP/201-00000002", "PJSIP/202-00000003"


def ev(name: str, t: float | None = None, /, **headers: str) -> AmiMessage:
    """A synthetic event; `t` seconds after EPOCH become its Timestamp header."""
    pairs = [("Event", name), *headers.items()]
    if t is not None:
        pairs.append(("Timestamp", f"{EPOCH + t:.6f}"))
    return AmiMessage.from_pairs(pairs)


def chan(channel: str, uid: str, state: int, **extra: str) -> dict[str, str]:
    """Channel headers of a leg of the synthetic call 1.1."""
    return {
        "Channel": channel,
        "Uniqueid": uid,
        "Linkedid": "1.1",
        "ChannelState": str(state),
        **extra,
    }


def dest(channel: str, uid: str, state: int) -> dict[str, str]:
    """The Dest* headers of a dial to `channel`."""
    return {
        "DestChannel": channel,
        "DestUniqueid": uid,
        "DestLinkedid": "1.1",
        "DestChannelState": str(state),
    }


def queue_call(answered: bool) -> list[AmiMessage]:
    """Trunk call ringing 201 and 202 (queue); 202 answers and talks 30 s, or nobody does."""
    trunk_up = chan(TRUNK, "1.1", 6)
    events = [
        ev(
            "Newchannel",
            0,
            **chan(TRUNK, "1.1", 4, CallerIDNum="+380441112233", Exten="0442000000"),
        ),
        ev("Newstate", 1, **trunk_up),
        ev("Newchannel", 1, **chan(OP1, "1.2", 0, CallerIDNum="201")),
        ev("Newchannel", 1, **chan(OP2, "1.3", 0, CallerIDNum="202")),
        ev("DialBegin", 1, **trunk_up, **dest(OP1, "1.2", 0)),
        ev("DialBegin", 1, **trunk_up, **dest(OP2, "1.3", 0)),
        ev("Newstate", 2, **chan(OP1, "1.2", 5)),
        ev("Newstate", 2, **chan(OP2, "1.3", 5)),
    ]
    if not answered:
        return [
            *events,
            ev("DialEnd", 9, **trunk_up, **dest(OP1, "1.2", 5), DialStatus="CANCEL"),
            ev("DialEnd", 9, **trunk_up, **dest(OP2, "1.3", 5), DialStatus="CANCEL"),
            ev("Hangup", 9, **chan(OP1, "1.2", 5), Cause="16"),
            ev("Hangup", 9, **chan(OP2, "1.3", 5), Cause="16"),
            ev("Hangup", 10, **trunk_up, Cause="16"),
        ]
    return [
        *events,
        ev("Newstate", 6, **chan(OP2, "1.3", 6)),
        ev("DialEnd", 6, **trunk_up, **dest(OP1, "1.2", 5), DialStatus="CANCEL"),
        ev("DialEnd", 6, **trunk_up, **dest(OP2, "1.3", 6), DialStatus="ANSWER"),
        ev("Hangup", 6, **chan(OP1, "1.2", 5), Cause="26"),
        ev("BridgeEnter", 6, **chan(OP2, "1.3", 6), BridgeUniqueid="b1"),
        ev("BridgeEnter", 6, **trunk_up, BridgeUniqueid="b1"),
        ev("BridgeLeave", 36, **trunk_up, BridgeUniqueid="b1"),
        ev("Hangup", 36, **trunk_up, Cause="16"),
        ev("BridgeLeave", 36, **chan(OP2, "1.3", 6), BridgeUniqueid="b1"),
        ev("Hangup", 37, **chan(OP2, "1.3", 6), Cause="16"),
    ]
