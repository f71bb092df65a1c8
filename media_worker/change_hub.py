"""Where a worker process's mailbox changes go: the lamps (MWI) and the webhooks.

Process 0 (the only one with ``--processes 1``) publishes MWI and sends webhooks for the
whole worker. Its MWI publisher hears its own store's changes at once; the change spool
(media_worker/changes.py) brings it everyone else's (the other worker processes,
``voicemail api``, the ``voicemail mailbox`` commands): each notice moves the lamp and
becomes webhook deliveries. With webhooks configured its own changes go through the spool
too, so that every webhook starts from a durable notice. Any other process only forwards
its changes to the spool, with the SIP addresses it learnt for uid/did mailboxes; it
publishes nothing, so each mailbox has one publication and one entity tag.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from media_worker.changes import ChangeConsumer, ChangeForwarder, Notice, process_token
from media_worker.config import WorkerConfig
from media_worker.mwi_publisher import AddressBook, LearningApplication, MwiPublisher
from media_worker.webhooks.outbox import WebhookOutbox
from media_worker.worker import Worker
from storage import ChangeEvent, Storage

log = logging.getLogger("voicemail.changes")
STOP_WAIT = 5.0  # seconds the last notices get to reach the spool at shutdown


class ChangeHub:
    def __init__(
        self,
        config: WorkerConfig,
        store: Storage,
        worker: Worker,
        data_dir: Path,
        spool: Path,
        index: int,
    ) -> None:
        self.origin = process_token()
        self.publisher: MwiPublisher | None = None
        self.outbox: WebhookOutbox | None = None
        self.consumer: ChangeConsumer | None = None
        self.forwarder: ChangeForwarder | None = None
        self._early: set[tuple[str, str]] = set()  # mailboxes changed before start()
        self._unheard: Callable[[], None] | None = None
        self._begun = False
        webhooks = config.webhooks is not None and bool(config.webhooks.endpoints)
        if index == 0:
            if config.mwi is not None:
                self.publisher = MwiPublisher(
                    config.mwi,
                    store,
                    worker.request,
                    state_dir=data_dir / "mwi",
                    secret=config.sip.secret,
                )
                worker.app = LearningApplication(worker.app, self.publisher)
            if config.webhooks is not None and webhooks:
                self.outbox = WebhookOutbox(data_dir / "webhooks", config.webhooks)
                self.forwarder = ChangeForwarder(store, spool, origin=self.origin)
            self.consumer = ChangeConsumer(spool, self._handle)
        else:
            book = AddressBook()
            worker.app = LearningApplication(worker.app, book)
            if config.mwi is not None or webhooks:
                self.forwarder = ChangeForwarder(
                    store, spool, origin=self.origin, address_of=book.address
                )

    def begin(self) -> None:
        """Hear the store's changes from now on, before the worker delivers what a crash
        left behind: those messages are changes too. Their lamps move once ``start()``
        has started the publisher."""
        self._begun = True
        if self.forwarder is not None:
            self.forwarder.start()
        if self.publisher is not None:
            self._unheard = self.publisher.store.subscribe(self._note_early)

    def _note_early(self, event: ChangeEvent) -> None:
        if event.kind.moves_lamp:
            self._early.add((event.domain, event.user))

    async def start(self) -> None:
        """Start the outbox, the publisher (it sends from the worker's socket: after the
        worker) and the spool's reader."""
        if not self._begun:
            self.begin()
        if self.outbox is not None:
            await self.outbox.start()
        if self.publisher is not None:
            await self.publisher.start()
            if self._unheard is not None:
                self._unheard()
                self._unheard = None
            for domain, user in sorted(self._early):
                self.publisher.changed(domain, user)
            self._early.clear()
        if self.consumer is not None:
            await self.consumer.start()
            log.info(
                "changes: reading the spool %s; MWI %s; webhooks to %s",
                self.consumer.directory,
                "published here" if self.publisher is not None else "off",
                ", ".join(e.name for e in self.outbox.config.endpoints) if self.outbox else "none",
            )
        elif self.forwarder is not None:
            log.info("changes: written to the spool %s for process 0", self.forwarder.directory)

    async def stop_publishing(self) -> None:
        """Stop reading the spool and publishing (notices wait for the next start)."""
        if self.consumer is not None:
            await self.consumer.stop()
        if self.publisher is not None:
            await self.publisher.stop()

    async def stop(self) -> None:
        """Write the last changes to the spool and stop the webhook outbox."""
        if self.forwarder is not None:
            # A broken disk must not hold the shutdown: what is lost is logged.
            await self.forwarder.stop(give_up_after=STOP_WAIT)
        if self.outbox is not None:
            await self.outbox.stop()

    async def _handle(self, notice: Notice) -> None:
        """One notice from the spool: the lamp, then durable webhook deliveries."""
        event = notice.event
        if self.publisher is not None and event.kind.moves_lamp and notice.origin != self.origin:
            if notice.address is not None:
                self.publisher.note_address(event.domain, event.user, notice.address)
            self.publisher.changed(event.domain, event.user)
            log.debug(
                "change %s of %s@%s from %s: lamp updated",
                event.kind.value, event.user, event.domain, notice.origin,
            )  # fmt: skip
        if self.outbox is not None:
            await self.outbox.enqueue(notice)
