"""``voicemail worker``: run a worker process from its configuration file."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

from media_worker.apps.context import ServiceSettings
from media_worker.apps.service import VoicemailService
from media_worker.change_hub import ChangeHub
from media_worker.changes import spool_dir
from media_worker.config import WorkerConfig
from media_worker.mail.outbox import Outbox
from media_worker.mail.template import load_templates
from media_worker.prompts import PromptLibrary
from media_worker.runtime import raise_open_file_limit, tune_for_media
from media_worker.worker import Worker, WorkerSettings
from storage import open_storage

log = logging.getLogger("voicemail")
SHIPPED_TEMPLATES = Path(__file__).parent / "templates"


async def serve(config: WorkerConfig, *, index: int = 0, spool: Path | None = None) -> None:
    """Run process ``index`` until SIGTERM or SIGINT, then stop cleanly (calls get their
    BYE). ``spool`` is the change spool, in process 0's data_dir (default: this data_dir).
    """
    data_dir = Path(config.data_dir)
    spool = spool_dir(data_dir) if spool is None else spool
    store = await open_storage(config.storage.url)
    templates = await asyncio.to_thread(
        load_templates,
        Path(config.email.templates) if config.email.templates else SHIPPED_TEMPLATES,
        config.email.extra_variables,
    )
    outbox = Outbox(data_dir / "outbox", config.email.smtp)
    service = VoicemailService(
        ServiceSettings(
            journal_dir=data_dir / "journal",
            apps=config.apps,
            voicemail=config.voicemail,
            email=config.email,
        ),
        store,
        outbox,
        templates,
        PromptLibrary.configured(config.prompts),
    )
    worker = Worker(
        WorkerSettings(config.sip, config.rtp),
        service,
    )
    changes = ChangeHub(config, store, worker, data_dir, spool, index)
    changes.begin()  # the recordings delivered next are changes too
    recovered = await service.recover()
    if recovered:
        log.info("delivered %d recording(s) left by an earlier run", recovered)
    await outbox.start()
    await service.start()  # retries deliveries that fail, while the worker runs
    await worker.start()
    await changes.start()  # after the worker: MWI sends from the worker's socket
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
        log.info("stopping")
    finally:
        await changes.stop_publishing()
        await worker.stop()
        await service.stop()
        await changes.stop()  # after the service: its last changes are spooled
        await outbox.stop()
        await store.close()


def run_worker(
    config: WorkerConfig, log_level: str, *, index: int = 0, spool: Path | None = None
) -> int:
    logging.basicConfig(
        level=getattr(logging, log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    raise_open_file_limit()
    tune_for_media()
    asyncio.run(serve(config, index=index, spool=spool))
    return 0
