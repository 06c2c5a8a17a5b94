"""Asterisk Manager Interface adapter: wire protocol and asyncio client."""

from adapters.ami.client import AmiClient, AmiConfig, AmiState, AmiStats
from adapters.ami.errors import (
    AmiActionError,
    AmiAuthError,
    AmiConnectionError,
    AmiError,
    AmiTimeout,
)
from adapters.ami.protocol import AmiMessage, AmiParser, encode_action

__all__ = [
    "AmiActionError",
    "AmiAuthError",
    "AmiClient",
    "AmiConfig",
    "AmiConnectionError",
    "AmiError",
    "AmiMessage",
    "AmiParser",
    "AmiState",
    "AmiStats",
    "AmiTimeout",
    "encode_action",
]
