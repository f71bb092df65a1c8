"""Slow clients (slowloris) against the real server: a connection that does not finish
its request's headers, or an anonymous JSON body, in api.request_timeout is closed."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from tests.api.conftest import USERS
from tests.support.api import ApiServer, kamailio_database

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    directory = tmp_path_factory.mktemp("slow")
    db = kamailio_database(directory / "kamailio.sqlite", USERS)
    settings = {"kamailio_db": db, "request_timeout": 1}
    with ApiServer(directory, f"fs://{directory / 'spool'}", settings) as running:
        yield running


def answer(server: ApiServer, sent: bytes) -> bytes:
    """What the server sends on a connection given ``sent`` and then nothing more,
    until it closes it (b"" if it closes without a word). Fails if it holds on."""
    with socket.create_connection(("127.0.0.1", server.port)) as conn:
        conn.settimeout(15)  # far above request_timeout: this is only a hang guard
        conn.sendall(sent)
        received = b""
        try:
            while chunk := conn.recv(4096):
                received += chunk
        except TimeoutError:
            pytest.fail(f"the server held the connection: {received[:200]!r}")
        except ConnectionResetError:
            pass
        return received


@pytest.mark.parametrize(
    "sent",
    [b"", b"GET /api/v1/openapi.json HTTP/1.1\r\n", b"GET /api/v1/x HTTP/1.1\r\nHost: a\r\nX-A: "],
)
def test_a_request_whose_headers_never_end_is_closed(server: ApiServer, sent: bytes) -> None:
    assert answer(server, sent) == b""


def test_an_anonymous_body_that_never_ends_is_408(server: ApiServer) -> None:
    head = (
        b"PATCH /api/v1/mailboxes/api.example/bob/settings HTTP/1.1\r\nHost: a\r\n"
        b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
    )
    assert answer(server, head).startswith(b"HTTP/1.1 408 ")


def test_a_prompt_client_is_served(server: ApiServer) -> None:
    request = b"GET /api/v1/openapi.json HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
    assert answer(server, request).startswith(b"HTTP/1.1 200 ")
