"""The lab's webhook catcher: takes each webhook POST and saves it as
``<dir>/<delivery id>.json`` (its headers, its body and whether its signature held), as
the SMTP catcher saves mail in var/lab/mail.

Run as ``python -m media_worker.lab.webhooks --listen 127.0.0.1 --port 8090 --dir
var/lab/webhooks [--secret S]``. With the secret, a POST whose X-Voicemail-Signature does
not match is answered 401 and not saved. A delivery sent again (same delivery id)
replaces its file: the directory holds each delivery once. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import signal
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType

from media_worker.files import write_atomic
from media_worker.webhooks.events import DELIVERY_HEADER, SIGNATURE_HEADER, verify

log = logging.getLogger("voicemail.lab.webhooks")

MAX_BODY = 1024 * 1024
DELIVERY_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")


class Catcher(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], directory: Path, secret: str | None) -> None:
        super().__init__(address, CatcherHandler)
        self.directory = directory
        self.secret = secret
        self.saved = 0


class CatcherHandler(BaseHTTPRequestHandler):
    server: Catcher
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        length = self.headers.get("Content-Length", "")
        if not (length.isascii() and length.isdigit()) or len(length) > 12:
            self._answer(411, "Content-Length required")
            return
        if int(length) > MAX_BODY:
            self._answer(413, "body too large")
            return
        body = self.rfile.read(int(length))
        delivery = self.headers.get(DELIVERY_HEADER, "")
        if not DELIVERY_ID.fullmatch(delivery):
            self._answer(400, f"missing or bad {DELIVERY_HEADER}")
            return
        secret = self.server.secret
        signed = (
            None if secret is None else verify(secret, body, self.headers.get(SIGNATURE_HEADER))
        )
        if signed is False:
            log.warning("delivery %s: bad signature, refused", delivery)
            self._answer(401, "bad signature")
            return
        try:
            parsed: object = json.loads(body)
        except ValueError:
            parsed = body.decode("utf-8", "replace")
        record = {
            "path": self.path,
            "headers": {name: value for name, value in self.headers.items()},
            "signature_verified": signed,
            "body": parsed,
        }
        path = self.server.directory / f"{delivery}.json"
        write_atomic(path, json.dumps(record, indent=2, ensure_ascii=False).encode() + b"\n")
        self.server.saved += 1
        log.info(
            "saved %s delivery %s as %s", self.headers.get("X-Voicemail-Event"), delivery, path
        )
        self._answer(200, "saved")

    def _answer(self, status: int, text: str) -> None:
        data = f"{text}\n".encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s %s", self.address_string(), format % args)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m media_worker.lab.webhooks",
        description="Save every webhook delivery received as <dir>/<delivery id>.json.",
    )
    parser.add_argument("--listen", default="127.0.0.1", help="address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8090, help="TCP port (default 8090)")
    parser.add_argument("--dir", type=Path, required=True, help="where deliveries are saved")
    parser.add_argument(
        "--secret", help="the endpoint's secret: refuse (401) deliveries not signed with it"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    args.dir.mkdir(parents=True, exist_ok=True)
    server = Catcher((args.listen, args.port), args.dir, args.secret)
    log.info(
        "webhook catcher listening on http://%s:%d/, saving to %s (signatures %s)",
        args.listen, server.server_address[1], args.dir,
        "checked" if args.secret else "not checked",
    )  # fmt: skip

    def stop(signum: int, frame: FrameType | None) -> None:
        # shutdown() waits for serve_forever() to return: not from its own thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, stop)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
    log.info("webhook catcher stopped after %d delivery(ies)", server.saved)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
