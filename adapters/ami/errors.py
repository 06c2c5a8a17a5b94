"""Errors raised by the AMI adapter; callers translate them at their boundary."""

from __future__ import annotations


class AmiError(Exception):
    """Base class of every AMI adapter error."""


class AmiConnectionError(AmiError):
    """The TCP connection could not be opened, or it was lost."""


class AmiAuthError(AmiError):
    """Asterisk refused the login."""


class AmiTimeout(AmiError):
    """No answer in time (action, ping, banner)."""


class AmiActionError(AmiError):
    """Asterisk answered an action with ``Response: Error``."""

    def __init__(self, message: str, response: object = None) -> None:
        """Keep the raw response for callers that want its headers."""
        super().__init__(message)
        self.response = response
