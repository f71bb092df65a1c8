"""The storage error hierarchy: every backend failure is one of these, never an integer code."""

from __future__ import annotations


class StorageError(Exception):
    """Base of every error the storage layer raises."""


class BadIdentity(StorageError, ValueError):
    """A domain, user, greeting type or message name that must not reach a backend."""

    def __init__(self, kind: str, value: object, reason: str) -> None:
        super().__init__(f"bad {kind} {value!r}: {reason}")
        self.kind = kind
        self.value = value
        self.reason = reason


class InvalidMessage(StorageError, ValueError):
    """Message data the store refuses (for example empty audio)."""


class MessageNotFound(StorageError, LookupError):
    """The named message does not exist in the mailbox."""

    def __init__(self, domain: str, user: str, name: str) -> None:
        super().__init__(f"no message {name!r} in mailbox {user}@{domain}")
        self.domain = domain
        self.user = user
        self.name = name


class MailboxNotFound(MessageNotFound):
    """The mailbox itself does not exist (so neither does the message)."""

    def __init__(self, domain: str, user: str, name: str = "") -> None:
        StorageError.__init__(self, f"no mailbox {user}@{domain}")
        self.domain = domain
        self.user = user
        self.name = name


class StorageFull(StorageError, OSError):
    """The backend has no room left (disk full, quota exceeded)."""


class BackendUnavailable(StorageError, ConnectionError):
    """The backend cannot be reached or is not set up (no server, no schema, bad root)."""


class BackendNotFound(StorageError, LookupError):
    """No backend is registered for the URL's scheme, or its driver is not installed."""
