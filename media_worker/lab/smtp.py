"""The lab's SMTP catcher: accepts every mail and saves it as a .eml file.

Run as ``python -m media_worker.lab.smtp --port 2525 --dir var/lab/mail``; needs
aiosmtpd (the ``lab`` extra).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import time
from pathlib import Path

from media_worker.files import write_atomic

log = logging.getLogger("voicemail.lab.smtp")


class SaveToDirectory:
    """aiosmtpd handler: one ``<time>-<n>.eml`` file per accepted message."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.count = 0

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:  # noqa: N802 - aiosmtpd API
        raw = getattr(envelope, "original_content", None) or getattr(envelope, "content", b"")
        content: bytes = raw.encode() if isinstance(raw, str) else bytes(raw or b"")
        self.count += 1
        path = self.directory / f"{time.time_ns()}-{self.count}.eml"
        await asyncio.to_thread(write_atomic, path, content)
        log.info("saved mail for %s as %s", ",".join(getattr(envelope, "rcpt_tos", [])), path)
        return "250 OK saved"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Save every mail received as a .eml file.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2525)
    parser.add_argument("--dir", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        from aiosmtpd.controller import Controller
    except ImportError:
        print("the SMTP catcher needs aiosmtpd: pip install 'kamailio-voicemail[lab]'")
        return 1
    args.dir.mkdir(parents=True, exist_ok=True)
    controller = Controller(SaveToDirectory(args.dir), hostname=args.host, port=args.port)
    controller.start()
    log.info("SMTP catcher listening on %s:%d, saving to %s", args.host, args.port, args.dir)
    stop = asyncio.Event()

    async def wait() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()

    try:
        asyncio.run(wait())
    finally:
        controller.stop()
    log.info("stopped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
