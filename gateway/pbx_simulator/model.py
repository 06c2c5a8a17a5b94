"""Simulated channels and bridges, and the AMI header blocks Asterisk builds from them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

Fields = list[tuple[str, str]]

STATE_DESC = {0: "Down", 4: "Ring", 5: "Ringing", 6: "Up"}
CAUSE_TXT = {
    0: "Unknown",
    16: "Normal Clearing",
    17: "User busy",
    19: "User alerting, no answer",
    26: "Answered elsewhere",
}


@dataclass
class Channel:
    """One simulated PJSIP channel."""

    name: str
    uniqueid: str
    linkedid: str
    context: str
    exten: str
    caller_num: str
    caller_name: str
    connected_num: str = "<unknown>"
    connected_name: str = "<unknown>"
    state: int = 0
    priority: str = "1"
    created_at: float = 0.0  # simulated epoch seconds
    answered_at: float | None = None
    bridge: Bridge | None = None
    application: str = ""
    application_data: str = ""


@dataclass
class Bridge:
    """A basic two-party bridge."""

    uniqueid: str
    members: list[Channel] = field(default_factory=list)


def channel_fields(ch: Channel, prefix: str = "") -> Fields:
    """The standard channel snapshot block, in Asterisk's order."""
    return [
        (f"{prefix}Channel", ch.name),
        (f"{prefix}ChannelState", str(ch.state)),
        (f"{prefix}ChannelStateDesc", STATE_DESC.get(ch.state, "Unknown")),
        (f"{prefix}CallerIDNum", ch.caller_num),
        (f"{prefix}CallerIDName", ch.caller_name),
        (f"{prefix}ConnectedLineNum", ch.connected_num),
        (f"{prefix}ConnectedLineName", ch.connected_name),
        (f"{prefix}Language", "en"),
        (f"{prefix}AccountCode", ""),
        (f"{prefix}Context", ch.context),
        (f"{prefix}Exten", ch.exten),
        (f"{prefix}Priority", ch.priority),
        (f"{prefix}Uniqueid", ch.uniqueid),
        (f"{prefix}Linkedid", ch.linkedid),
    ]


def bridge_fields(br: Bridge, prefix: str = "") -> Fields:
    """The bridge snapshot block."""
    return [
        (f"{prefix}BridgeUniqueid", br.uniqueid),
        (f"{prefix}BridgeType", "basic"),
        (f"{prefix}BridgeTechnology", "simple_bridge"),
        (f"{prefix}BridgeCreator", "<unknown>"),
        (f"{prefix}BridgeName", "<unknown>"),
        (f"{prefix}BridgeNumChannels", str(len(br.members))),
        (f"{prefix}BridgeVideoSourceMode", "none"),
    ]


def hangup_fields(ch: Channel, cause: int) -> Fields:
    """Hangup / HangupRequest body."""
    return [*channel_fields(ch), ("Cause", str(cause)), ("Cause-txt", CAUSE_TXT.get(cause, ""))]


def fmt_time(epoch: float | None) -> str:
    """CDR timestamp format (``2026-11-23 19:14:02``), empty when unset."""
    if epoch is None:
        return ""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S")


@dataclass
class CdrRecord:
    """What cdr_manager reports for one leg of a call."""

    source: str
    destination: str
    destination_context: str
    caller_id: str
    channel: Channel
    destination_channel: Channel | None
    last_app: str
    last_data: str
    start: float
    answer: float | None
    end: float
    disposition: str

    def fields(self, with_linkedid: bool) -> Fields:
        """Cdr event body in cdr_manager's order (+ ``LinkedID`` mapping)."""
        duration = round(self.end - self.start)
        billable = round(self.end - self.answer) if self.answer is not None else 0
        dest = self.destination_channel.name if self.destination_channel else ""
        out: Fields = [
            ("AccountCode", ""),
            ("Source", self.source),
            ("Destination", self.destination),
            ("DestinationContext", self.destination_context),
            ("CallerID", self.caller_id),
            ("Channel", self.channel.name),
            ("DestinationChannel", dest),
            ("LastApplication", self.last_app),
            ("LastData", self.last_data),
            ("StartTime", fmt_time(self.start)),
            ("AnswerTime", fmt_time(self.answer)),
            ("EndTime", fmt_time(self.end)),
            ("Duration", str(duration)),
            ("BillableSeconds", str(billable)),
            ("Disposition", self.disposition),
            ("AMAFlags", "DOCUMENTATION"),
            ("UniqueID", self.channel.uniqueid),
            ("UserField", ""),
        ]
        if with_linkedid:
            out.append(("LinkedID", self.channel.linkedid))
        return out


def core_show_channel_fields(ch: Channel, action_id: str, now: float) -> Fields:
    """One ``CoreShowChannel`` list item."""
    secs = max(0, int(now - ch.created_at))
    duration = f"{secs // 3600:02d}:{secs // 60 % 60:02d}:{secs % 60:02d}"
    return [
        ("ActionID", action_id),
        *channel_fields(ch),
        ("Application", ch.application),
        ("ApplicationData", ch.application_data),
        ("Duration", duration),
        ("BridgeId", ch.bridge.uniqueid if ch.bridge else ""),
    ]
