"""``voicemail worker``: run a worker process from its configuration file."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

from media_worker.apps.service import ServiceSettings, VoicemailService
from media_worker.config import WorkerConfig
from media_worker.mail.outbox import Outbox
from media_worker.mail.template import load_templates
from media_worker.mwi_publisher import LearningApplication, MwiPublisher, MwiSettings
from media_worker.prompts import PromptLibrary
from media_worker.runtime import raise_open_file_limit, tune_for_media
from media_worker.worker import Worker, WorkerSettings
from storage import open_storage

log = logging.getLogger("voicemail")
SHIPPED_TEMPLATES = Path(__file__).parent / "templates"


async def serve(config: WorkerConfig) -> None:
    """Run until SIGTERM or SIGINT, then stop cleanly (calls get their BYE)."""
    data_dir = Path(config.data_dir)
    store = await open_storage(config.storage.url)
    templates = await asyncio.to_thread(
        load_templates,
        Path(config.email.templates) if config.email.templates else SHIPPED_TEMPLATES,
        config.email.extra_variables,
    )
    outbox = Outbox(data_dir / "outbox", config.email.smtp)
    service = VoicemailService(
        ServiceSettings(
            routing=config.apps.routing(),
            min_record_time=config.voicemail.min_record_time,
            max_record_time=config.voicemail.max_record_time,
            journal_dir=data_dir / "journal",
            extra_variables=config.email.extra_variables,
            max_call_time=config.apps.max_call_time,
            retry_delay=config.apps.retry_delay,
            retry_max_delay=config.apps.retry_max_delay,
        ),
        store,
        outbox,
        templates,
        PromptLibrary(
            default_language=config.prompts.default_language,
            generated=Path(config.prompts.built) if config.prompts.built else None,
            overrides=Path(config.prompts.overrides) if config.prompts.overrides else None,
        ),
    )
    publisher: MwiPublisher | None = None
    worker = Worker(
        WorkerSettings(
            sip_host=config.sip.listen,
            sip_port=config.sip.port,
            advertised_host=config.sip.advertised_address,
            rtp_host=config.rtp.address,
            rtp_ports=config.rtp.ports,
            trusted=config.sip.trusted,
            ring_time=config.sip.ring_time,
            secret=config.sip.secret,
            signature_max_age=config.sip.signature_max_age,
            max_calls=config.sip.max_calls,
        ),
        service,
    )
    if config.mwi is not None:
        publisher = MwiPublisher(
            MwiSettings(
                config.mwi.destination(),
                config.mwi.expires,
                data_dir / "mwi",
                secret=config.sip.secret,
            ),
            store,
            worker.request,
        )
        worker.app = LearningApplication(service, publisher, config.apps.routing())
    recovered = await service.recover()
    if recovered:
        log.info("delivered %d recording(s) left by an earlier run", recovered)
    await outbox.start()
    await service.start()  # retries deliveries that fail, while the worker runs
    await worker.start()
    if publisher is not None:
        await publisher.start()  # after the worker: it sends from the worker's socket
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
        log.info("stopping")
    finally:
        if publisher is not None:
            await publisher.stop()
        await worker.stop()
        await service.stop()
        await outbox.stop()
        await store.close()


def run_worker(config: WorkerConfig, log_level: str) -> int:
    logging.basicConfig(
        level=getattr(logging, log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    raise_open_file_limit()
    tune_for_media()
    asyncio.run(serve(config))
    return 0
