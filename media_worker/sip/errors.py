"""The two kinds of SIP error: ours and the peer's."""

from __future__ import annotations


class SipError(Exception):
    """Base of the SIP core's errors."""


class LocalProtocolError(SipError, RuntimeError):
    """We misused the SIP core (a bug on our side, never caused by the network)."""


class RemoteProtocolError(SipError, ValueError):
    """The peer sent something we cannot accept; ``status`` is the SIP answer to give."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status
