"""Hostile requests against the real server: what an anonymous client or a user with
their own password must not get past."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from media_worker.api.state import path_segment
from storage import open_storage
from tests.api.conftest import DOMAIN, Api, as_bob, wav

pytestmark = pytest.mark.integration


def chunked(size: int) -> Iterator[bytes]:
    """A JSON-looking body of ``size`` bytes without a Content-Length (sent chunked)."""
    yield b'{"mode": "'
    for _ in range(size // 4096):
        yield b"x" * 4096
    yield b'"}'


@pytest.mark.parametrize(
    "path",
    [
        # Path values that read like the greeting upload's URL must not lift the limit
        # on JSON bodies, which FastAPI reads before it asks who is calling.
        "/mailboxes/greetings/bob/settings",
        f"/mailboxes/{DOMAIN}/greetings/settings",
        f"/mailboxes/{DOMAIN}/bob/messages/greetings",
    ],
)
def test_an_anonymous_json_body_over_the_limit_is_413_whatever_the_path(
    fs_api: Api, path: str
) -> None:
    with httpx.Client(base_url=fs_api.url) as client:
        reply = client.patch(
            path, content=chunked(150_000), headers={"Content-Type": "application/json"}
        )
        assert reply.status_code == 413, reply.text


def test_a_greeting_upload_is_still_refused_before_its_body_without_credentials(
    fs_api: Api,
) -> None:
    with httpx.Client(base_url=fs_api.url) as client:
        reply = client.put(f"/mailboxes/{DOMAIN}/bob/greetings/vm", content=chunked(150_000))
        assert reply.status_code == 401


@pytest.mark.parametrize(
    ("field", "value"),
    [
        # The proxy puts these in P-App-Param; a value it cannot quote makes every call
        # to the mailbox fail with "500 Voicemail profile unusable".
        ("email", "a\"b'c@example.com"),
        ("greeting_type", "a\"b'"),
    ],
)
def test_settings_the_proxy_could_not_send_are_refused(fs_api: Api, field: str, value: str) -> None:
    with httpx.Client(base_url=fs_api.url, auth=as_bob()) as client:
        reply = client.patch(f"/mailboxes/{DOMAIN}/bob/settings", json={field: value})
        assert reply.status_code == 422, reply.text
        assert "quote" in reply.json()["detail"]
        assert client.get(f"/mailboxes/{DOMAIN}/bob").json()["settings"][field] != value


def test_a_polling_page_neither_resets_the_guess_count_nor_is_locked_out(fs_api: Api) -> None:
    # alice's page polls with her password between an attacker's guesses (limit: 3).
    url = f"/mailboxes/{DOMAIN}/alice"
    alice = (f"alice@{DOMAIN}", "alice-pw")
    with httpx.Client(base_url=fs_api.url) as client:
        assert client.get(url, auth=alice).status_code == 200
        guesses = []
        for n in range(3):
            for m in range(2):
                guesses.append(client.get(url, auth=(alice[0], f"guess{n}{m}")).status_code)
            assert client.get(url, auth=alice).status_code == 200
        assert guesses == [401, 401, 401, 429, 429, 429]


async def test_head_is_get_without_a_body_and_other_methods_are_405(fs_api: Api) -> None:
    async with open_storage(fs_api.storage_url) as store:
        name = await store.put_message(
            DOMAIN, "bob", wav(1.0), sender="sip:alice@api.example", received_at=1_700_000_000
        )
    audio = f"/mailboxes/{DOMAIN}/bob/messages/{path_segment(name)}/audio"
    async with httpx.AsyncClient(base_url=fs_api.url, auth=as_bob()) as client:
        head = await client.head(audio)
        assert head.status_code == 200
        assert head.headers["content-length"] == str(len(wav(1.0)))
        assert head.headers["content-type"] == "audio/wav"
        assert head.content == b""
        assert (await client.head(f"/mailboxes/{DOMAIN}/bob")).status_code == 200
        # Still authenticated like GET.
        assert (await client.head(audio, auth=("bob@api.example", "x"))).status_code == 401
        refused = await client.post(f"/mailboxes/{DOMAIN}/bob/messages")
        assert refused.status_code == 405
        assert "GET" in refused.headers["allow"]
        unknown = await client.head("/no-such-thing")
        assert (unknown.status_code, unknown.headers["content-type"]) == (
            404,
            "application/json",
        )


def test_another_site_cannot_embed_what_the_api_answers(fs_api: Api) -> None:
    # A browser that cached bob's Basic credentials (he once opened an API URL) sends
    # them with another site's <audio src=...>; the answer must not reach that page,
    # which could read a message's duration from it.
    with httpx.Client(base_url=fs_api.url, auth=as_bob()) as client:
        for path in (f"/mailboxes/{DOMAIN}/bob", f"/mailboxes/{DOMAIN}/bob/messages"):
            reply = client.get(path, headers={"Sec-Fetch-Site": "cross-site"})
            assert reply.headers["cross-origin-resource-policy"] == "same-origin"
        refused = client.get(f"/mailboxes/{DOMAIN}/alice")
        assert refused.headers["cross-origin-resource-policy"] == "same-origin"


@pytest.mark.parametrize(
    "body",
    [
        b'{"mode": NaN}',
        b'{"mode": 1e999}',
        b'{"mode": "\\ud800"}',
        b'{"\\ud800": "x"}',
    ],
)
def test_json_python_reads_but_no_field_takes_is_a_422(fs_api: Api, body: bytes) -> None:
    # The error says what was wrong, without echoing the value back (a value JSON
    # cannot carry, such as NaN or a lone surrogate, made the answer itself fail: 500).
    with httpx.Client(base_url=fs_api.url, auth=as_bob()) as client:
        reply = client.patch(
            f"/mailboxes/{DOMAIN}/bob/settings",
            content=body,
            headers={"Content-Type": "application/json"},
        )
        assert reply.status_code == 422, reply.text
        assert all("input" not in error for error in reply.json()["detail"])
        secret = client.put(f"/mailboxes/{DOMAIN}/bob/pin", json={"pin": 12345})
        assert secret.status_code == 422
        assert "12345" not in secret.text


def test_a_basic_header_of_non_ascii_bytes_is_a_401(fs_api: Api) -> None:
    with httpx.Client(base_url=fs_api.url) as client:
        reply = client.get(
            f"/mailboxes/{DOMAIN}/bob", headers={b"Authorization": b"Basic \xff\xfe"}
        )
        assert reply.status_code == 401  # was a 500 with a traceback in the log
    assert "Traceback" not in fs_api.server.log()
