"""The apps' own errors: the apps do not raise the SIP core's."""

from __future__ import annotations


class AppError(Exception):
    """Base of the apps' errors."""


class AppStateError(AppError, RuntimeError):
    """An app was given an event its state does not expect: a bug on our side."""


class AppParamError(AppError, ValueError):
    """P-App-Param cannot be served; ``status`` is the SIP answer to refuse it with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status
