"""The storage API every backend implements, with validation and change events shared.

Public methods validate identities, open the backend on first use and publish change
events; backends implement the ``_``-prefixed primitives and never see unchecked values.
"""

from __future__ import annotations

import abc
import asyncio
import logging
from collections.abc import Callable, Generator
from types import TracebackType
from typing import ClassVar, Self

from storage.errors import InvalidMessage, StorageError
from storage.identity import check_greeting_type, check_mailbox, check_message_name
from storage.model import (
    ChangeEvent,
    ChangeKind,
    Counts,
    Message,
    MessageInfo,
    PinRecord,
    wav_duration,
)

log = logging.getLogger("voicemail.storage")

Listener = Callable[[ChangeEvent], None]


def _known(changed: MessageInfo | bool) -> MessageInfo | None:
    return changed if isinstance(changed, MessageInfo) else None


class Storage(abc.ABC):
    """A message store: mailboxes of messages plus greetings, addressed by (domain, user)."""

    #: Backend name, as registered in the ``voicemail.storage`` entry-point group.
    backend: ClassVar[str]

    def __init__(self, url: str) -> None:
        self.url = url
        self._listeners: list[Listener] = []
        self._open_lock = asyncio.Lock()
        self._is_open = False

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"

    def describe(self) -> str:
        """The URL without secrets, for logs."""
        return self.url

    # ----- life cycle -----

    async def open(self) -> Self:
        """Connect to the backend; called implicitly by the first operation."""
        async with self._open_lock:
            if not self._is_open:
                await self._open()
                self._is_open = True
        return self

    async def close(self) -> None:
        async with self._open_lock:
            if self._is_open:
                self._is_open = False
                await self._close()

    async def init(self) -> None:
        """Prepare the medium (create the spool root, apply schema migrations)."""
        await self._init()

    def __await__(self) -> Generator[object, None, Self]:
        return self.open().__await__()

    async def __aenter__(self) -> Self:
        return await self.open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _ready(self) -> None:
        if not self._is_open:
            await self.open()

    # ----- change events -----

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` after each change this store makes; returns the unsubscriber.

        Listeners run on the event loop right after the change is durable; they must not
        block (schedule work instead). An exception in a listener is logged and ignored.
        """
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    def _emit(
        self, kind: ChangeKind, domain: str, user: str, name: str, info: MessageInfo | None = None
    ) -> None:
        event = ChangeEvent(kind, domain, user, name, info)
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                log.exception("storage change listener failed for %s", event)

    # ----- messages -----

    async def put_message(
        self, domain: str, user: str, audio: bytes, *, sender: str, received_at: int
    ) -> str:
        """Store a new message; returns its name (never overwrites an existing one)."""
        domain, user = check_mailbox(domain, user)
        if not isinstance(audio, bytes | bytearray | memoryview):
            raise InvalidMessage(f"audio must be bytes, not {type(audio).__name__}")
        if not audio:
            raise InvalidMessage("audio is empty")
        if not isinstance(sender, str):
            raise InvalidMessage(f"sender must be a string, not {type(sender).__name__}")
        if isinstance(received_at, bool) or not isinstance(received_at, int) or received_at < 0:
            raise InvalidMessage(f"received_at must be unix seconds, got {received_at!r}")
        # No SIP header carries NUL, and PostgreSQL text cannot hold it.
        sender = sender.replace("\0", "")
        await self._ready()
        audio = bytes(audio)
        name = await self._put_message(domain, user, audio, sender, received_at)
        info = MessageInfo(name, True, len(audio), received_at, sender, wav_duration(audio))
        self._emit(ChangeKind.NEW, domain, user, name, info)
        return name

    async def get_message(self, domain: str, user: str, name: str) -> Message:
        """The message with its audio; reading never changes its new/saved flag."""
        domain, user = check_mailbox(domain, user)
        name = check_message_name(name)
        await self._ready()
        return await self._get_message(domain, user, name)

    async def mark_read(self, domain: str, user: str, name: str) -> None:
        """Flag a message as read (saved); marking a read message again is harmless."""
        domain, user = check_mailbox(domain, user)
        name = check_message_name(name)
        await self._ready()
        changed = await self._mark_read(domain, user, name)
        if changed:
            self._emit(ChangeKind.READ, domain, user, name, _known(changed))

    async def mark_unread(self, domain: str, user: str, name: str) -> None:
        """Flag a read message as new again; marking a new message is harmless."""
        domain, user = check_mailbox(domain, user)
        name = check_message_name(name)
        await self._ready()
        changed = await self._mark_unread(domain, user, name)
        if changed:
            self._emit(ChangeKind.UNREAD, domain, user, name, _known(changed))

    async def delete_message(self, domain: str, user: str, name: str) -> None:
        domain, user = check_mailbox(domain, user)
        name = check_message_name(name)
        await self._ready()
        info = await self._delete_message(domain, user, name)
        self._emit(ChangeKind.DELETED, domain, user, name, info)

    async def list_mailbox(self, domain: str, user: str) -> list[MessageInfo]:
        """Messages oldest first; an absent mailbox is empty. Empty messages are left out."""
        domain, user = check_mailbox(domain, user)
        await self._ready()
        return await self._list_mailbox(domain, user)

    async def count(self, domain: str, user: str) -> Counts:
        """New and saved message counts, without reading any audio."""
        domain, user = check_mailbox(domain, user)
        await self._ready()
        return await self._count(domain, user)

    # ----- greetings -----

    async def put_greeting(self, domain: str, user: str, typ: str, audio: bytes) -> None:
        """Store (or replace) the user's greeting of type ``typ``."""
        domain, user = check_mailbox(domain, user)
        typ = check_greeting_type(typ)
        if not isinstance(audio, bytes | bytearray | memoryview) or not audio:
            raise InvalidMessage("greeting audio must be non-empty bytes")
        await self._ready()
        await self._put_greeting(domain, user, typ, bytes(audio))
        self._emit(ChangeKind.GREETING, domain, user, typ)

    async def get_greeting(self, domain: str, user: str, typ: str) -> bytes | None:
        """The greeting's audio, or None if the user has none of that type."""
        domain, user = check_mailbox(domain, user)
        typ = check_greeting_type(typ)
        await self._ready()
        return await self._get_greeting(domain, user, typ)

    async def delete_greeting(self, domain: str, user: str, typ: str) -> bool:
        """Remove a greeting; returns whether there was one."""
        domain, user = check_mailbox(domain, user)
        typ = check_greeting_type(typ)
        await self._ready()
        deleted = await self._delete_greeting(domain, user, typ)
        if deleted:
            self._emit(ChangeKind.GREETING_DELETED, domain, user, typ)
        return deleted

    # ----- mailbox PIN -----

    async def get_pin(self, domain: str, user: str) -> PinRecord:
        """The mailbox's PIN record (an empty one if it never had a PIN)."""
        domain, user = check_mailbox(domain, user)
        await self._ready()
        return await self._get_pin(domain, user)

    async def update_pin(
        self, domain: str, user: str, change: Callable[[PinRecord], PinRecord]
    ) -> PinRecord:
        """Apply ``change`` to the PIN record atomically, across processes and hosts, and
        return the new record. ``change`` must be quick and pure: it may run under a lock."""
        domain, user = check_mailbox(domain, user)
        await self._ready()
        return await self._update_pin(domain, user, change)

    # ----- backend primitives (arguments already validated) -----

    @abc.abstractmethod
    async def _open(self) -> None: ...

    @abc.abstractmethod
    async def _close(self) -> None: ...

    @abc.abstractmethod
    async def _init(self) -> None: ...

    @abc.abstractmethod
    async def _put_message(
        self, domain: str, user: str, audio: bytes, sender: str, received_at: int
    ) -> str: ...

    @abc.abstractmethod
    async def _get_message(self, domain: str, user: str, name: str) -> Message: ...

    @abc.abstractmethod
    async def _mark_read(self, domain: str, user: str, name: str) -> MessageInfo | bool:
        """Whether the flag changed (new -> read): the message's info after the change, or
        True when the backend does not know it cheaply; False when it was already read."""

    async def _mark_unread(self, domain: str, user: str, name: str) -> MessageInfo | bool:
        """As :meth:`_mark_read`, read -> new. Not abstract, so that a plugin written
        before it loads still; the contract suite asks for it."""
        raise StorageError(f"the {self.backend} storage backend cannot mark a message new")

    @abc.abstractmethod
    async def _delete_message(self, domain: str, user: str, name: str) -> MessageInfo | None:
        """Returns the info of the message deleted when known without extra work."""

    @abc.abstractmethod
    async def _list_mailbox(self, domain: str, user: str) -> list[MessageInfo]: ...

    @abc.abstractmethod
    async def _count(self, domain: str, user: str) -> Counts: ...

    @abc.abstractmethod
    async def _put_greeting(self, domain: str, user: str, typ: str, audio: bytes) -> None: ...

    @abc.abstractmethod
    async def _get_greeting(self, domain: str, user: str, typ: str) -> bytes | None: ...

    @abc.abstractmethod
    async def _delete_greeting(self, domain: str, user: str, typ: str) -> bool: ...

    @abc.abstractmethod
    async def _get_pin(self, domain: str, user: str) -> PinRecord: ...

    @abc.abstractmethod
    async def _update_pin(
        self, domain: str, user: str, change: Callable[[PinRecord], PinRecord]
    ) -> PinRecord: ...
