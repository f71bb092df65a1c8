"""Pluggable voicemail message store: SEMS-compatible file spool, PostgreSQL, or a plugin.

>>> store = await open_storage("fs:///var/spool/voicebox")
>>> name = await store.put_message("example.com", "bob", wav, sender="alice", received_at=ts)
"""

from storage.base import Listener, Storage
from storage.errors import (
    BackendNotFound,
    BackendUnavailable,
    BadIdentity,
    InvalidMessage,
    MailboxNotFound,
    MessageNotFound,
    StorageError,
    StorageFull,
)
from storage.identity import check_greeting_type, check_identity, check_mailbox
from storage.model import ChangeEvent, ChangeKind, Counts, Message, MessageInfo, PinRecord
from storage.registry import ENTRY_POINT_GROUP, load_backend, open_storage

__all__ = [
    "ENTRY_POINT_GROUP",
    "BackendNotFound",
    "BackendUnavailable",
    "BadIdentity",
    "ChangeEvent",
    "ChangeKind",
    "Counts",
    "InvalidMessage",
    "Listener",
    "MailboxNotFound",
    "Message",
    "MessageInfo",
    "MessageNotFound",
    "PinRecord",
    "Storage",
    "StorageError",
    "StorageFull",
    "check_greeting_type",
    "check_identity",
    "check_mailbox",
    "load_backend",
    "open_storage",
]
