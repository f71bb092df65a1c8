"""media_worker.lab.probes.answers_http: the lab's readiness check of the API and the
webhook catcher, against real sockets on free ports."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from media_worker.lab.probes import answers_http
from tests.support.procs import free_port

pytestmark = pytest.mark.integration


class Pages(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status = 200 if self.path == "/open" else 401
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def http_port() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Pages)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_any_status_shows_a_server_and_ok_asks_for_that_one(http_port: int) -> None:
    assert answers_http("127.0.0.1", http_port)
    assert answers_http("127.0.0.1", http_port, "/open", ok=200)
    assert not answers_http("127.0.0.1", http_port, "/closed", ok=200)


def test_nothing_listening_or_another_protocol_is_not_up() -> None:
    assert not answers_http("127.0.0.1", free_port())
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()

        def banner() -> None:
            conn, _ = listener.accept()
            with conn:
                conn.sendall(b"220 smtp ready\r\n")

        thread = threading.Thread(target=banner)
        thread.start()
        assert not answers_http("127.0.0.1", listener.getsockname()[1])
        thread.join()
