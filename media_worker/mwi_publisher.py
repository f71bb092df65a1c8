"""Publishes each mailbox's message-waiting state to the presence server (Kamailio).

On every change the store reports (new message, read, deleted; greetings do not count)
the publisher counts the mailbox and sends a PUBLISH (media_worker/mwi.py) to the
configured proxy. It keeps each mailbox's entity tag, refreshes the publication before it
expires, and starts over when the server no longer knows it (412).

The presentity is the SIP address phones subscribe to. A mailbox keyed by uid/did is
published under the usr@dom the proxy's P-App-Param gave for it (learnt from the calls
this worker admitted); until this worker has seen such a call, it is published under
uid@did.

With a state directory (the worker's ``data_dir/mwi``) the publication table is durable:
each mailbox's entity tag, refresh and expiry times and learnt SIP address are written
after every answer to a PUBLISH and every newly learnt address, and read back at start,
so a restarted worker refreshes the publications the presence server still holds (and
publishes again from scratch those that expired meanwhile) instead of letting the lights
go out. An unreadable record is set aside in ``corrupt/`` with a log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Protocol
from urllib.parse import quote

from media_worker.application import ActiveCall, Application
from media_worker.apps.params import AppRequest
from media_worker.config import MwiConfig
from media_worker.files import write_atomic
from media_worker.mwi import MailboxRecord, Outcome, Publication, account_uri
from media_worker.signature import sign_publish
from media_worker.sip.actions import Rejection
from media_worker.sip.address import Peer
from media_worker.sip.message import Request, Response
from storage import Storage
from storage.model import ChangeEvent

log = logging.getLogger("voicemail.mwi")

Send = Callable[[Request, Peer], Awaitable[Response | None]]
Mailbox = tuple[str, str]  # (domain, user) as the store keys it
RETRIES = 2  # extra PUBLISHes after a 412 or 423 before giving up until the next change
# PUBLISHes in flight at once: a start-up that republishes thousands of mailboxes, or a
# burst of changes, reaches the proxy as a steady stream rather than a flood.
MAX_IN_FLIGHT = 16


class PublicationTable:
    """The publication table on disk: one small msgpack file per mailbox, replaced
    atomically. A write touches only its mailbox's few hundred bytes and start-up is a
    directory scan, so there is no log to compact, and damage stays with one mailbox.
    A lost or stale record costs one PUBLISH: the server answers 412 and we start over."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, mailbox: Mailbox) -> Path:
        domain, user = mailbox
        name = f"{quote(user, safe='')}@{quote(domain, safe='')}"
        if len(name) > 200:  # NAME_MAX is 255, with the suffix and write_atomic's temp name
            name = hashlib.sha256(name.encode()).hexdigest()
        return self.directory / f"{name}.mwi"

    def load(self) -> list[MailboxRecord]:
        self.directory.mkdir(parents=True, exist_ok=True)
        records = []
        for path in sorted(self.directory.glob("*.mwi")):
            try:
                record = MailboxRecord.parse(path.read_bytes())
                if self.path((record.domain, record.user)) != path:
                    raise ValueError(f"the record of {record.user}@{record.domain}")
            except Exception as exc:  # noqa: BLE001 - any damage: set aside, never crash
                log.error("mwi record %s is unreadable (%s): moved to corrupt/", path.name, exc)
                corrupt = self.directory / "corrupt"
                corrupt.mkdir(exist_ok=True)
                os.replace(path, corrupt / path.name)
                continue
            records.append(record)
        return records

    def write(self, records: dict[Mailbox, bytes]) -> None:
        for mailbox, data in records.items():
            write_atomic(self.path(mailbox), data)


class MwiPublisher:
    def __init__(
        self,
        config: MwiConfig,
        store: Storage,
        send: Send,
        *,
        state_dir: Path | None = None,  # the durable publication table; None: memory only
        secret: str | None = None,  # sip.secret: each PUBLISH is signed with it
        clock: Callable[[], float] = time.time,  # wall clock: record times outlive the loop
    ) -> None:
        self.config = config
        # Where PUBLISH goes: Kamailio, which must know us as a worker.
        self.proxy: Peer = config.destination()
        self.secret = secret
        self.store = store
        self._send = send
        self._clock = clock
        self._table = None if state_dir is None else PublicationTable(state_dir)
        self._publications: dict[Mailbox, Publication] = {}
        self._accounts: dict[Mailbox, tuple[str, str]] = {}  # mailbox -> (user, domain)
        self._running: dict[Mailbox, asyncio.Task[None]] = {}
        self._slots = asyncio.Semaphore(MAX_IN_FLIGHT)
        self._dirty: set[Mailbox] = set()
        self._wake = asyncio.Event()
        self._refresher: asyncio.Task[None] | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._unsaved: set[Mailbox] = set()
        self._save_wake = asyncio.Event()
        self._saver: asyncio.Task[None] | None = None
        self._closing = False

    # ----- life cycle -----

    async def start(self) -> None:
        stale: list[Mailbox] = []
        if self._table is not None:
            records = await asyncio.to_thread(self._table.load)
            stale = self._restore(records)
            self._closing = False
            self._saver = asyncio.create_task(self._save_loop(), name="mwi-save")
        self._unsubscribe = self.store.subscribe(self._on_change)
        self._refresher = asyncio.create_task(self._refresh_loop(), name="mwi-refresh")
        for domain, user in stale:
            self.changed(domain, user)
        if self._table is not None:
            log.info(
                "mwi: %d publication(s) restored, %d to publish again",
                len(self._publications) - len(stale), len(stale),
            )  # fmt: skip

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        tasks = [*self._running.values(), *([self._refresher] if self._refresher else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._running.clear()
        self._refresher = None
        if self._saver is not None:  # let it write the last state, then end
            self._closing = True
            self._save_wake.set()
            await self._saver
            self._saver = None

    async def idle(self) -> None:
        """Wait until no PUBLISH is in flight or due to a change (for tests)."""
        while self._running:
            await asyncio.gather(*self._running.values(), return_exceptions=True)

    # ----- what triggers a PUBLISH -----

    def learn(self, request: AppRequest) -> None:
        """Note the SIP address of the mailbox a call is about (uid/did mailboxes)."""
        learnt = _address(request)
        if learnt is not None:
            self.note_address(request.domain, request.user, learnt)

    def note_address(self, domain: str, user: str, address: tuple[str, str]) -> None:
        """Publish mailbox (domain, user) under SIP address ``address`` = (user, domain),
        as learnt from a call here or in another worker process."""
        mailbox = (domain, user)
        if self._accounts.get(mailbox) != address:
            self._accounts[mailbox] = address
            self._save(mailbox)

    def _on_change(self, event: ChangeEvent) -> None:
        if event.kind.moves_lamp:
            self.changed(event.domain, event.user)

    def changed(self, domain: str, user: str) -> None:
        """Publish the mailbox's state soon (once more if a PUBLISH is in flight)."""
        mailbox = (domain, user)
        running = self._running.get(mailbox)
        # A finished task may still be listed (its done callback comes later): it would
        # not see the change.
        if running is not None and not running.done():
            self._dirty.add(mailbox)
            return
        task = asyncio.create_task(self._publish(mailbox), name=f"mwi {user}@{domain}")
        self._running[mailbox] = task
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        for mailbox, running in list(self._running.items()):
            if running is task:
                del self._running[mailbox]

    # ----- publishing -----

    def _publication(self, mailbox: Mailbox) -> Publication:
        publication = self._publications.get(mailbox)
        domain, user = mailbox
        account = account_uri(*self._accounts.get(mailbox, (user, domain)))
        # A SIP address learnt since (or changed): publish under it from now on; the
        # publication under the old address expires on its own.
        if publication is None or publication.account != account:
            publication = Publication(account, self.config.expires)
            self._publications[mailbox] = publication
        return publication

    async def _publish(self, mailbox: Mailbox) -> None:
        publication = self._publication(mailbox)
        retries = RETRIES
        while True:
            async with self._slots:
                self._dirty.discard(mailbox)  # a change from here on is counted again
                try:
                    counts = await self.store.count(*mailbox)
                except Exception:  # a store outage must not stop later updates
                    log.exception("mwi %s: cannot count the mailbox", publication.account)
                    return
                request = publication.request(counts.new, counts.saved)
                if self.secret is not None:
                    # The proxy takes message-summary PUBLISH only signed: anyone can
                    # spoof a UDP source address.
                    sign_publish(self.secret, request, self._clock())
                response = await self._send(request, self.proxy)
            outcome = publication.on_response(response, asyncio.get_running_loop().time())
            self._wake.set()
            self._save(mailbox)
            status = "timeout" if response is None else f"{response.status} {response.reason}"
            if outcome is Outcome.DONE:
                log.debug(
                    "mwi %s: published %d new, %d saved",
                    publication.account, counts.new, counts.saved,
                )  # fmt: skip
            elif outcome is not Outcome.FAILED and retries > 0:
                retries -= 1
                log.info("mwi %s: %s, publishing again", publication.account, status)
                continue
            else:
                log.warning("mwi %s: PUBLISH failed: %s", publication.account, status)
            if mailbox not in self._dirty:
                return

    async def _refresh_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._wake.clear()
            now = loop.time()
            due = [m for m, p in self._publications.items() if p.refresh_at and p.refresh_at <= now]
            for mailbox in due:
                self._publications[mailbox].refresh_at = None  # set again by the answer
                self.changed(*mailbox)
            pending = [p.refresh_at for p in self._publications.values() if p.refresh_at]
            delay = max(min(pending) - now, 0) if pending else None
            # asyncio.timeout, not wait_for: 3.11's wait_for loses a cancellation that
            # arrives as the event is set, and stop() would wait for this loop in vain.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()

    # ----- the durable table -----

    def _restore(self, records: list[MailboxRecord]) -> list[Mailbox]:
        """Take the records read at start; returns the mailboxes to publish from scratch."""
        now, wall_now = asyncio.get_running_loop().time(), self._clock()
        stale = []
        for record in records:
            mailbox = (record.domain, record.user)
            if record.address is not None:
                self._accounts[mailbox] = record.address
            if record.publication is not None:
                publication = Publication.restore(record.publication, now=now, wall_now=wall_now)
                self._publications[mailbox] = publication
                if publication.etag is None:
                    stale.append(mailbox)
        return stale

    def _save(self, mailbox: Mailbox) -> None:
        if self._table is not None:
            self._unsaved.add(mailbox)
            self._save_wake.set()

    async def _save_loop(self) -> None:
        """One writer, off the event loop, always writing each mailbox's latest state:
        writes never overtake one another, and a burst of changes costs one write."""
        assert self._table is not None
        while True:
            await self._save_wake.wait()
            self._save_wake.clear()
            offset = self._clock() - asyncio.get_running_loop().time()
            batch = {mailbox: self._record(mailbox, offset) for mailbox in self._unsaved}
            self._unsaved.clear()
            if batch:
                try:
                    await asyncio.to_thread(self._table.write, batch)
                except OSError:  # the table lags; a stale entity tag costs a 412, no more
                    log.exception("mwi: cannot write %d publication record(s)", len(batch))
            if self._closing and not self._unsaved:
                return

    def _record(self, mailbox: Mailbox, wall_offset: float) -> bytes:
        publication = self._publications.get(mailbox)
        return MailboxRecord(
            domain=mailbox[0],
            user=mailbox[1],
            address=self._accounts.get(mailbox),
            publication=None if publication is None else publication.saved(wall_offset),
        ).serialize()


def _address(request: AppRequest) -> tuple[str, str] | None:
    """The (user, domain) SIP address of a uid/did mailbox; None when it is its own key."""
    user, domain = request.usr or request.user, request.dom or request.domain
    if (user, domain) == (request.user, request.domain):
        return None
    return (user, domain)


class Learner(Protocol):
    def learn(self, request: AppRequest) -> None: ...


class AddressBook:
    """The SIP addresses of uid/did mailboxes learnt by a worker process that does not
    publish (all but process 0): its change notices carry them to the publisher."""

    def __init__(self) -> None:
        self._accounts: dict[Mailbox, tuple[str, str]] = {}

    def learn(self, request: AppRequest) -> None:
        learnt = _address(request)
        if learnt is not None:
            self._accounts[(request.domain, request.user)] = learnt

    def address(self, domain: str, user: str) -> tuple[str, str] | None:
        return self._accounts.get((domain, user))


class LearningApplication:
    """Wraps the worker's application so that the publisher (or the address book) learns
    the SIP address of each mailbox a call reaches (usr/dom besides uid/did)."""

    def __init__(self, app: Application[AppRequest], publisher: Learner) -> None:
        self.app = app
        self.publisher = publisher

    def admit(self, invite: Request) -> AppRequest | Rejection:
        request = self.app.admit(invite)
        if not isinstance(request, Rejection):
            self.publisher.learn(request)
        return request

    async def run(self, call: ActiveCall, request: AppRequest) -> None:
        await self.app.run(call, request)
